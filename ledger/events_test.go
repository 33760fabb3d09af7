package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// A run's events are read a page at a time: every one comes back, once, in
// order, however many pages they span, and a subject's events across runs
// too.
func TestEventsPaged(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	const perRun = 2*4096 + 7 // more than two pages
	for r, run := range []string{"r1", "r2"} {
		mustStartRun(t, db, run)
		err := db.WritePlan(ctx, run, func(_ planner.Ledger, s planner.Sink) error {
			for i := range perRun {
				subject := fmt.Sprintf("s%d", i)
				if i%3 == 0 {
					subject = "same"
				}
				e := &privsync.RowError{Vendor: "sfmc", SubjectID: subject, Line: int64(i + 2), Reason: "bad"}
				if err := s.Reject(ctx, e, uint64(r*perRun+i+1)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var seqs []int64
	if err := db.Events(ctx, "r2", 0, func(e *ledger.Event) error {
		if e.RunID != "r2" {
			t.Fatalf("event of run %s read for r2", e.RunID)
		}
		seqs = append(seqs, e.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != perRun {
		t.Fatalf("read %d events of r2, want %d", len(seqs), perRun)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, s)
		}
	}
	n := 0
	if err := db.Events(ctx, "r2", 5000, func(e *ledger.Event) error { n++; return nil }); err != nil || n != perRun-5000 {
		t.Fatalf("events after 5000: %d (%v), want %d", n, err, perRun-5000)
	}
	var runs []string
	if err := db.SubjectEvents(ctx, "same", func(e *ledger.Event) error {
		runs = append(runs, e.RunID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := 2 * ((perRun + 2) / 3)
	if len(runs) != want || runs[0] != "r1" || runs[len(runs)-1] != "r2" {
		t.Fatalf("subject events: %d (first %s, last %s), want %d from r1 then r2", len(runs), runs[0], runs[len(runs)-1], want)
	}
}
