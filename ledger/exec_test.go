package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

type rows []privsync.Row

func (rs rows) Read(ctx context.Context, h planner.RowHandler) error {
	for i := range rs {
		r := rs[i]
		if err := h.Row(&r); err != nil {
			return err
		}
	}
	return nil
}

var sfmcOnly = map[string]privsync.Kind{"sfmc": privsync.KindSFMC}

// mustPlan plans rs in a new run as of now and returns the plan's figures.
func mustPlan(t testing.TB, db *ledger.DB, runID string, now time.Time, rs ...privsync.Row) *planner.Stats {
	t.Helper()
	mustStartRun(t, db, runID)
	var stats *planner.Stats
	err := db.WritePlan(context.Background(), runID, func(l planner.Ledger, s planner.Sink) error {
		var err error
		stats, err = planner.Plan(context.Background(), rows(rs), l, s, planner.Options{Vendors: sfmcOnly, Limits: map[string]int{"sfmc": 1000},
			Rules: planner.Rules{Now: now, SuppressionWindow: 14 * 24 * time.Hour}})
		return err
	})
	if err != nil {
		t.Fatalf("planning: %v", err)
	}
	return stats
}

// mustOpenBatches returns sfmc's open batches with their items read.
func mustOpenBatches(t testing.TB, db *ledger.DB) []*ledger.Batch {
	t.Helper()
	ctx := context.Background()
	bs, err := db.OpenBatches(ctx, "sfmc")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if err := db.LoadItems(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return bs
}

// mustSubmit returns the vendor's open batches, submitted.
func mustSubmit(t testing.TB, db *ledger.DB) []*ledger.Batch {
	t.Helper()
	ctx := context.Background()
	bs := mustOpenBatches(t, db)
	for _, b := range bs {
		if err := db.MarkSending(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkSubmitted(ctx, b, "ref"); err != nil {
			t.Fatal(err)
		}
	}
	return bs
}

func all(b *ledger.Batch, o privsync.Outcome) []ledger.Result {
	var out []ledger.Result
	for _, it := range b.Items {
		out = append(out, ledger.Result{ItemID: it.ID, Outcome: o})
	}
	return out
}

func sfmcRow(id string, restr privsync.Restrictions, e privsync.Erasure, at time.Time) privsync.Row {
	return privsync.Row{Key: privsync.Key{Vendor: "sfmc", SubjectID: id}, Restrictions: restr, Erasure: e, UpdatedAt: at}
}

// Defect 1: an erasure the vendor forgot (expired) is not settled: it is
// planned again after the back-off of failures, and counts as a problem.
func TestExpiredErasureIsPlannedAgain(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC()
	row := sfmcRow("p1", 0, privsync.EraseDelete, now.Add(-time.Hour))
	mustPlan(t, db, "r1", now, row)
	b := mustSubmit(t, db)[0]
	if _, err := db.Resolve(ctx, "r1", b, all(b, privsync.OutcomeExpired)); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Problems(ctx, "r1"); err != nil || n != 1 {
		t.Fatalf("Problems = %d, %v; want the expired erasure", n, err)
	}
	st, err := db.Reader().Lookup(ctx, []privsync.Key{row.Key})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Settled != 0 || st[0].Erasure != planner.NotErased || st[0].RetryAt.IsZero() {
		t.Fatalf("after expiry: %+v; want not settled, not erased, a retry time", st[0])
	}
	if stats := mustPlan(t, db, "r2", now.Add(30*time.Minute), row); stats.Changes() != 0 {
		t.Fatalf("planned %d operations within the back-off", stats.Changes())
	}
	if stats := mustPlan(t, db, "r3", now.Add(2*time.Hour), row); stats.Operations["sfmc"][privsync.OpRTBFDelete] != 1 {
		t.Fatalf("after the back-off: %v, want the rtbf_delete again", stats.Operations)
	}
}

// Defect 2: after a split, a follow-up waits for the half that holds its
// own predecessor, not for the second half.
func TestSplitKeepsFollowUpsBehindTheirOwnPredecessor(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC()
	mustPlan(t, db, "r1", now, sfmcRow("A", 0, privsync.EraseSuppress, now.Add(-time.Hour)), sfmcRow("B", 0, privsync.EraseSuppress, now.Add(-time.Hour)))
	b := mustSubmit(t, db)[0]
	if _, err := db.Resolve(ctx, "r1", b, all(b, privsync.OutcomeCompleted)); err != nil {
		t.Fatal(err)
	}
	// Cancel both suppressions and restrict: remove_rtbf_suppress, then restrict.
	later := now.Add(time.Hour)
	mustPlan(t, db, "r2", later, sfmcRow("A", privsync.DoNotTrack, 0, later), sfmcRow("B", privsync.DoNotTrack, 0, later))
	open := mustOpenBatches(t, db)
	if len(open) != 1 || len(open[0].Items) != 2 {
		t.Fatalf("open batches %v; want the removals", open)
	}
	halves, err := db.Split(ctx, open[0])
	if err != nil {
		t.Fatal(err)
	}
	var second *ledger.Batch
	for _, h := range halves {
		if h.Items[0].SubjectID == "B" {
			second = h
		}
	}
	released, err := db.Resolve(ctx, "r2", second, all(second, privsync.OutcomeCompleted))
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range released {
		for _, it := range nb.Items {
			if it.SubjectID == "A" {
				t.Fatalf("restrict A released while A's remove_rtbf_suppress is pending")
			}
		}
	}
	if len(released) != 1 || len(released[0].Items) != 1 || released[0].Items[0].SubjectID != "B" {
		t.Fatalf("released %+v; want B's restrict", released)
	}
}

// Defect 4: the pending rows and the run's end commit together.
func TestFinishRunCommitsOnce(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC()
	mustPlan(t, db, "r1", now, sfmcRow("p1", privsync.DoNotTrack, 0, now))
	mustSubmit(t, db)
	commits := 0
	db.SetCommitHook(func(commit func() error) error {
		commits++
		return commit()
	})
	n, err := db.FinishRun(ctx, "r1", nil)
	if err != nil || n != 1 {
		t.Fatalf("FinishRun = %d, %v", n, err)
	}
	if commits != 1 {
		t.Fatalf("FinishRun committed %d times: a kill between them writes the pending rows twice", commits)
	}
	if u, _ := db.UnfinishedRun(ctx); u != nil {
		t.Fatalf("run %s still unfinished", u.ID)
	}
}
