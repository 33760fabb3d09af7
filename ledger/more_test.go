package ledger_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

func TestRunBookkeeping(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC()
	mustPlan(t, db, "r1", now, sfmcRow("p1", privsync.DoNotTrack, 0, now), sfmcRow("p2", 0, privsync.EraseDelete, now))
	if err := db.SetRunInputs(ctx, "r1", []map[string]string{{"path": "a.csv"}}); err != nil {
		t.Fatal(err)
	}
	raw, err := db.RunInputs(ctx, "r1")
	var got []map[string]string
	if err != nil || json.Unmarshal(raw, &got) != nil || len(got) != 1 || got[0]["path"] != "a.csv" {
		t.Fatalf("RunInputs = %s, %v", raw, err)
	}
	counts, err := db.OpenBatchCounts(ctx)
	if err != nil || len(counts) != 1 || counts[0].Items != 2 || counts[0].State != ledger.BatchPlanned {
		t.Fatalf("OpenBatchCounts = %+v, %v", counts, err)
	}
	bs := mustSubmit(t, db)
	if len(bs) != 2 {
		t.Fatalf("%d batches, want restrict and rtbf_delete", len(bs))
	}
	for i, o := range []privsync.Outcome{privsync.OutcomeCompleted, privsync.OutcomeFailed} {
		if _, err := db.Resolve(ctx, "r1", bs[i], all(bs[i], o)); err != nil {
			t.Fatal(err)
		}
	}
	oc := map[string]int{}
	err = db.Events(ctx, "r1", 0, func(e *ledger.Event) error { oc[e.Outcome]++; return nil })
	if err != nil || oc["completed"] != 1 || oc["failed"] != 1 {
		t.Fatalf("outcomes of r1's events = %v, %v", oc, err)
	}
	if n, err := db.Problems(ctx, "r1"); err != nil || n != 1 {
		t.Fatalf("Problems = %d, %v", n, err)
	}
	var evs []*ledger.Event
	if err := db.SubjectEvents(ctx, "p1", func(e *ledger.Event) error { evs = append(evs, e); return nil }); err != nil || len(evs) != 1 {
		t.Fatalf("SubjectEvents = %v, %v", evs, err)
	}
	if err := db.DropRun(ctx, "r1"); err == nil {
		t.Fatal("DropRun removed a run with outcomes")
	}
	mustStartRun(t, db, "r2")
	if err := db.DropRun(ctx, "r2"); err != nil {
		t.Fatalf("DropRun of an empty run: %v", err)
	}
	if runs, _ := db.Runs(ctx, 10); len(runs) != 1 || runs[0].ID != "r1" {
		t.Fatalf("runs after DropRun: %v", runs)
	}
}

// A snapshot clears the restrictions of subjects it does not name.
func TestSnapshotClearsRestrictions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC()
	mustPlan(t, db, "r1", now, sfmcRow("p1", privsync.DoNotTrack, 0, now))
	b := mustSubmit(t, db)[0]
	if _, err := db.Resolve(ctx, "r1", b, all(b, privsync.OutcomeCompleted)); err != nil {
		t.Fatal(err)
	}
	mustStartRun(t, db, "r2")
	var stats *planner.Stats
	err := db.WritePlan(ctx, "r2", func(l planner.Ledger, s planner.Sink) error {
		var err error
		stats, err = planner.Plan(ctx, rows{sfmcRow("other", 0, 0, now)}, l, s, planner.Options{Vendors: sfmcOnly, Snapshot: true,
			Limits: map[string]int{"sfmc": 1000}, Rules: planner.Rules{Now: now.Add(time.Hour), SuppressionWindow: 14 * 24 * time.Hour}})
		return err
	})
	if err != nil || stats.Operations["sfmc"][privsync.OpRestrict] != 1 {
		t.Fatalf("snapshot plan %v, %v; want p1's restrictions cleared", stats, err)
	}
}

// Every call on a closed ledger fails with an error, none panics.
func TestClosedLedgerErrors(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC()
	mustPlan(t, db, "r1", now, sfmcRow("p1", privsync.DoNotTrack, 0, now))
	bs, err := db.OpenBatches(ctx, "sfmc")
	if err != nil || len(bs) != 1 {
		t.Fatal(err)
	}
	b := bs[0]
	db.Close()
	for name, err := range map[string]error{
		"OpenBatches":   func() error { _, err := db.OpenBatches(ctx, "sfmc"); return err }(),
		"MarkSending":   db.MarkSending(ctx, b),
		"MarkSubmitted": db.MarkSubmitted(ctx, b, "x"),
		"NoteError":     db.NoteError(ctx, b, "x"),
		"Unsend":        db.Unsend(ctx, b, "x"),
		"Split":         func() error { _, err := db.Split(ctx, &ledger.Batch{ID: 1, Items: make([]ledger.Item, 2)}); return err }(),
		"Resolve":       func() error { _, err := db.Resolve(ctx, "r1", b, all(b, privsync.OutcomeCompleted)); return err }(),
		"FinishRun":     func() error { _, err := db.FinishRun(ctx, "r1", nil); return err }(),
		"Problems":      func() error { _, err := db.Problems(ctx, "r1"); return err }(),
		"OpenBatchCnt":  func() error { _, err := db.OpenBatchCounts(ctx); return err }(),
		"Inspect":       func() error { _, err := db.Inspect(ctx); return err }(),
		"Runs":          func() error { _, err := db.Runs(ctx, 1); return err }(),
		"UnfinishedRun": func() error { _, err := db.UnfinishedRun(ctx); return err }(),
		"StartRun":      db.StartRun(ctx, &ledger.Run{ID: "r9"}, nil),
		"SetRunState":   db.SetRunState(ctx, "r1", ledger.RunFinished, nil),
		"SetRunInputs":  db.SetRunInputs(ctx, "r1", nil),
		"DropRun":       db.DropRun(ctx, "r1"),
		"Events":        db.Events(ctx, "r1", 0, func(*ledger.Event) error { return nil }),
		"Compact":       db.Compact(ctx),
		"WritePlan":     db.WritePlan(ctx, "r1", func(planner.Ledger, planner.Sink) error { return nil }),
		"Lookup": func() error {
			_, err := db.Reader().Lookup(ctx, []privsync.Key{{Vendor: "sfmc", SubjectID: "p1"}})
			return err
		}(),
		"Settled": func() error { _, err := db.Reader().Settled(ctx); return err }(),
	} {
		if err == nil {
			t.Errorf("%s on a closed ledger: no error", name)
		}
	}
}
