package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

var demoVendors = map[string]privsync.Kind{"sfmc": privsync.KindSFMC, "batch-ios": privsync.KindBatch, "bloomreach": privsync.KindBloomreach}

// fileSource reads input files through ingest, as the CLI does.
type fileSource []string

func (f fileSource) Read(ctx context.Context, h planner.RowHandler) error {
	_, err := ingest.Read(ctx, f, ingest.Options{Vendors: demoVendors}, h)
	return err
}

func planOptions(now time.Time) planner.Options {
	return planner.Options{Vendors: demoVendors, Limits: map[string]int{"sfmc": 100, "batch-ios": 1, "bloomreach": 1000},
		Rules: planner.Rules{Now: now, SuppressionWindow: 14 * 24 * time.Hour}}
}

// writePlan plans src into the ledger as `privsync run` does.
func writePlan(t *testing.T, db *ledger.DB, runID string, src planner.Source, opts planner.Options) *planner.Stats {
	t.Helper()
	ctx := context.Background()
	mustStartRun(t, db, runID)
	var stats *planner.Stats
	err := db.WritePlan(ctx, runID, func(l planner.Ledger, s planner.Sink) error {
		var err error
		stats, err = planner.Plan(ctx, src, l, s, opts)
		return err
	})
	if err != nil {
		t.Fatalf("WritePlan: %v", err)
	}
	return stats
}

// dryRun plans src against the ledger without writing, as `privsync plan`.
func dryRun(t *testing.T, db *ledger.DB, src planner.Source, opts planner.Options) *planner.Stats {
	t.Helper()
	stats, err := planner.Plan(context.Background(), src, db.Reader(), planner.Discard{}, opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return stats
}

func countEvents(t *testing.T, db *ledger.DB, runID string) int {
	t.Helper()
	n := 0
	if err := db.Events(context.Background(), runID, 0, func(*ledger.Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRerunPlansNothing: once a plan is written, the same input plans zero
// operations and reports no outcome again, before and after Compact. The
// operations sent are in flight (settling them is the executor's part):
// the same rows find them unchanged, not waiting and not sent again.
func TestRerunPlansNothing(t *testing.T) {
	src := fileSource{"../testdata/sample.csv"}
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	db := MustOpenDB(t)

	first := writePlan(t, db, "run-1", src, planOptions(now))
	if first.Changes() != 241 || first.Outcomes.Rejected != 11 || first.Outcomes.Unsupported != 35 {
		t.Fatalf("first plan: %d operations, %+v; want 241 operations, 11 rejected, 35 unsupported", first.Changes(), first.Outcomes)
	}
	events := countEvents(t, db, "run-1")
	if want := first.Outcomes.Rejected + first.Outcomes.Unsupported + first.Outcomes.Conflict; events != want {
		t.Fatalf("run-1 recorded %d events, want one per outcome (%d)", events, want)
	}
	// Every row that was not superseded or rejected is now unchanged:
	// either settled (nothing to send, or only notes) or in flight.
	wantUnchanged := int(first.Rows) - first.Outcomes.Rejected - first.Superseded

	check := func(t *testing.T, st *planner.Stats) {
		t.Helper()
		if st.Changes() != 0 || st.Outcomes.Rejected != 0 || st.Outcomes.Unsupported != 0 || st.Outcomes.Conflict != 0 || st.Outcomes.Stale != 0 {
			t.Fatalf("same input again: %d operations %v, outcomes %+v; want nothing", st.Changes(), st.Operations, st.Outcomes)
		}
		if st.Waiting != 0 || st.Unchanged != wantUnchanged || st.Rows != first.Rows {
			t.Fatalf("same input again: %d unchanged, %d waiting of %d rows; want %d unchanged, 0 waiting", st.Unchanged, st.Waiting, st.Rows, wantUnchanged)
		}
	}
	later := now.Add(24 * time.Hour)
	t.Run("dry run", func(t *testing.T) { check(t, dryRun(t, db, src, planOptions(later))) })
	t.Run("written run records nothing", func(t *testing.T) {
		check(t, writePlan(t, db, "run-2", src, planOptions(later)))
		if n := countEvents(t, db, "run-2"); n != 0 {
			t.Fatalf("run-2 recorded %d events, want none", n)
		}
	})
	t.Run("after Compact", func(t *testing.T) {
		if err := db.Compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		check(t, dryRun(t, db, src, planOptions(later)))
		check(t, writePlan(t, db, "run-3", src, planOptions(later)))
	})
	path := db.Path()
	db.Close()
	db = mustOpenAt(t, path)
	t.Run("after reopening", func(t *testing.T) { check(t, dryRun(t, db, src, planOptions(later))) })
	t.Run("the next day's changes", func(t *testing.T) {
		// sample-day2.csv: hashed-id-09, -10 and -02 have an operation in
		// flight (a deletion, a suppression, a restriction) and their rows
		// ask for something else: they wait for it. hashed-id-01's row is
		// older than the state: stale. hashed-id-03 asks again, with a new
		// updated_at, for what is being sent: unchanged.
		st := dryRun(t, db, fileSource{"../testdata/sample-day2.csv"}, planOptions(later))
		if st.Changes() != 0 || st.Outcomes.Stale != 1 || st.Waiting != 3 || st.Unchanged != 1 || st.Rows != 5 {
			t.Fatalf("day 2: %+v; want 0 operations, 1 stale, 3 waiting, 1 unchanged of 5 rows", st)
		}
	})
}

// TestRerunSettledRows: rows that send nothing settle at once, so the
// second plan does not even look them up.
func TestRerunSettledRows(t *testing.T) {
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	db := MustOpenDB(t)
	var rs []privsync.Row
	for _, id := range []string{"a", "b", "c"} {
		rs = append(rs, privsync.Row{File: "in", Line: 2, Key: privsync.Key{Vendor: "sfmc", SubjectID: id}})
		rs = append(rs, privsync.Row{File: "in", Line: 3, Key: privsync.Key{Vendor: "batch-ios", IDType: "custom_id", SubjectID: id}, Restrictions: privsync.DoNotTrack})
	}
	src := rowSource(rs)
	st := writePlan(t, db, "r1", src, planOptions(now))
	if st.Changes() != 0 || st.Unchanged != 3 || st.Outcomes.Unsupported != 3 {
		t.Fatalf("first plan: %+v", st)
	}
	led := &countingLedger{Ledger: db.Reader()}
	st, err := planner.Plan(context.Background(), src, led, planner.Discard{}, planOptions(now))
	if err != nil {
		t.Fatal(err)
	}
	if st.Changes() != 0 || st.Unchanged != 6 || st.Outcomes.Unsupported != 0 || led.looked != 0 {
		t.Fatalf("second plan: %+v, %d subjects looked up; want 6 unchanged without a lookup", st, led.looked)
	}
}

type rowSource []privsync.Row

func (s rowSource) Read(_ context.Context, h planner.RowHandler) error {
	for i := range s {
		r := s[i]
		if err := h.Row(&r); err != nil {
			return err
		}
	}
	return nil
}

type countingLedger struct {
	planner.Ledger
	looked int
}

func (l *countingLedger) Lookup(ctx context.Context, keys []privsync.Key) ([]planner.State, error) {
	l.looked += len(keys)
	return l.Ledger.Lookup(ctx, keys)
}

func TestWritePlanIsAtomic(t *testing.T) {
	db := MustOpenDB(t)
	mustStartRun(t, db, "r1")
	err := db.WritePlan(context.Background(), "r1", func(l planner.Ledger, s planner.Sink) error {
		_, err := planner.Plan(context.Background(), fileSource{"../testdata/sample.csv"}, l, &failAfter{Sink: s, n: 100}, planOptions(time.Now()))
		return err
	})
	if err == nil {
		t.Fatal("WritePlan returned no error when the plan failed")
	}
	st := dryRun(t, db, fileSource{"../testdata/sample.csv"}, planOptions(time.Now()))
	if st.Changes() != 241 || countEvents(t, db, "r1") != 0 {
		t.Fatalf("a failed plan left traces: %d operations planned now (want 241), %d events", st.Changes(), countEvents(t, db, "r1"))
	}
	runs, err := db.Runs(context.Background(), 10)
	if err != nil || len(runs) != 1 || runs[0].State != ledger.RunPlanning {
		t.Fatalf("runs %+v, %v: want r1 still planning", runs, err)
	}
}

// failAfter fails the plan after n entries.
type failAfter struct {
	planner.Sink
	n int
}

func (f *failAfter) Entry(ctx context.Context, e *planner.Entry) error {
	if f.n--; f.n < 0 {
		return context.Canceled
	}
	return f.Sink.Entry(ctx, e)
}
