package ledger_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// A statement that fails anywhere in a ledger operation fails the whole
// operation with an error and leaves nothing of it behind: a trigger makes
// every write to one table fail, and each operation is tried under it.
func TestFailingStatementsRollBack(t *testing.T) {
	ctx := context.Background()
	for _, table := range []string{"runs", "subjects", "batches", "items", "events", "fp_delta", "fp_buckets"} {
		for _, op := range []string{"INSERT", "UPDATE", "DELETE"} {
			t.Run(table+" "+op, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "l.db")
				db := mustOpenAt(t, path)
				now := time.Now().UTC()
				// A ledger with work in every state: a suppression confirmed
				// (its cancellation follows), a batch of two to split.
				mustPlan(t, db, "r1", now, sfmcRow("A", 0, privsync.EraseSuppress, now), sfmcRow("B", 0, privsync.EraseSuppress, now))
				b := mustSubmit(t, db)[0]
				if _, err := db.Resolve(ctx, "r1", b, all(b, privsync.OutcomeCompleted)); err != nil {
					t.Fatal(err)
				}
				raw, err := sql.Open("sqlite", "file:"+path)
				if err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
				events := func() int {
					var n int
					raw.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n)
					return n
				}
				before := events()
				if _, err := raw.Exec(fmt.Sprintf(`CREATE TRIGGER fail BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, 'injected'); END`, op, table)); err != nil {
					t.Fatal(err)
				}
				later := now.Add(time.Hour)
				failures := 0
				try := func(err error) {
					if err != nil {
						failures++
					}
				}
				try(db.StartRun(ctx, &ledger.Run{ID: "r2", StartedAt: later, Mode: "incremental"}, nil))
				try(db.WritePlan(ctx, "r2", func(l planner.Ledger, s planner.Sink) error {
					_, err := planner.Plan(ctx, rows{sfmcRow("A", privsync.DoNotTrack, 0, later), sfmcRow("B", privsync.DoNotTrack, 0, later),
						sfmcRow("C", privsync.DoNotTrack, 0, later)}, l, s, planner.Options{Vendors: sfmcOnly, Limits: map[string]int{"sfmc": 1000},
						Rules: planner.Rules{Now: later, SuppressionWindow: 14 * 24 * time.Hour}})
					return err
				}))
				try(db.SetRunInputs(ctx, "r2", []string{"x"}))
				open, err := db.OpenBatches(ctx, "sfmc")
				try(err)
				for _, b := range open {
					try(db.LoadItems(ctx, b))
					try(db.MarkSending(ctx, b))
					try(db.NoteError(ctx, b, "x"))
					try(db.Unsend(ctx, b, "x"))
					try(db.MarkSubmitted(ctx, b, "ref"))
					if len(b.Items) > 1 {
						halves, err := db.Split(ctx, b)
						try(err)
						for i, h := range halves {
							o := []privsync.Outcome{privsync.OutcomeCompleted, privsync.OutcomeExpired}[i]
							released, err := db.Resolve(ctx, "r2", h, all(h, o))
							try(err)
							for _, nb := range released {
								_, err := db.Resolve(ctx, "r2", nb, all(nb, privsync.OutcomeFailed))
								try(err)
							}
						}
						continue
					}
					_, err := db.Resolve(ctx, "r2", b, all(b, privsync.OutcomeCompleted))
					try(err)
				}
				_, err = db.FinishRun(ctx, "r2", nil)
				try(err)
				try(db.DropRun(ctx, "r2"))
				try(db.Compact(ctx))
				if failures == 0 {
					t.Fatalf("nothing failed with every %s on %s failing", op, table)
				}
				if table == "events" && op == "INSERT" && events() != before {
					t.Fatalf("events written while writing events fails: %d, were %d", events(), before)
				}
			})
		}
	}
}

// Defect 8: an error writing a plan does not carry a subject id (errors
// are logged at every level; subject ids only at debug).
func TestPlanErrorsNameNoSubject(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	db := mustOpenAt(t, path)
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER fail BEFORE INSERT ON subjects BEGIN SELECT RAISE(ABORT, 'injected'); END`); err != nil {
		t.Fatal(err)
	}
	mustStartRun(t, db, "r1")
	now := time.Now().UTC()
	err = db.WritePlan(ctx, "r1", func(l planner.Ledger, s planner.Sink) error {
		_, err := planner.Plan(ctx, rows{sfmcRow("person-4711", privsync.DoNotTrack, 0, now)}, l, s,
			planner.Options{Vendors: sfmcOnly, Limits: map[string]int{"sfmc": 1000}, Rules: planner.Rules{Now: now}})
		return err
	})
	if err == nil {
		t.Fatal("the plan was written with every subject insert failing")
	}
	if strings.Contains(err.Error(), "person-4711") {
		t.Fatalf("the error names the subject: %v", err)
	}
}
