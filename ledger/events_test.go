package ledger_test

import (
	"context"
	"fmt"
	"slices"
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

// A confirmed row's fingerprint reaches the settled set when the run
// finishes; until then (or if the process dies first) the subject's own
// settled column says the row is dealt with.
func TestSettledFoldedWhenRunFinishes(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/l.db"
	db := mustOpenAt(t, path)
	k := privsync.Key{Vendor: "sfmc", SubjectID: "p1"}
	const fp = uint64(0xfeed0000beef)
	mustWrite(t, db, "r1", func(ctx context.Context, s planner.Sink) error {
		if err := s.Batch(ctx, &planner.Batch{ID: 1, Vendor: "sfmc", Op: privsync.OpRestrict}); err != nil {
			return err
		}
		return s.Entry(ctx, &planner.Entry{Key: k, FP: fp, Decision: planner.Decision{Verdict: planner.Send,
			Ops: []planner.Op{{Op: privsync.OpRestrict, Restrictions: privsync.DoNotTrack}}}, Batches: []int{1}})
	})
	bs, err := db.OpenBatches(ctx, "sfmc")
	if err != nil || len(bs) != 1 || db.LoadItems(ctx, bs[0]) != nil || len(bs[0].Items) != 1 {
		t.Fatalf("OpenBatches: %v, %v", bs, err)
	}
	if _, err := db.Resolve(ctx, "r1", bs[0], []ledger.Result{{ItemID: bs[0].Items[0].ID, Outcome: privsync.OutcomeCompleted}}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(settledList(t, db), fp) {
		t.Fatal("the fingerprint is in the set before the run finished: folded per item")
	}
	states, err := db.Reader().Lookup(ctx, []privsync.Key{k})
	if err != nil || states[0].Settled != fp || states[0].InFlight != 0 {
		t.Fatalf("subject after Resolve: %+v, %v; want settled %x, nothing in flight", states, err, fp)
	}
	if _, err := db.FinishRun(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(settledList(t, db), fp) {
		t.Fatal("the fingerprint is not in the set after FinishRun")
	}
}

// The report follower reads a run's events on a connection of its own:
// while a plan is being written (its transaction open on the writing
// connection), the events committed before it are read at once, and none
// of the open transaction's.
func TestEventsReadBesideAnOpenWrite(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	reject := func(s planner.Sink, i int) error {
		return s.Reject(ctx, &privsync.RowError{Vendor: "sfmc", SubjectID: fmt.Sprintf("s%d", i), Line: int64(i + 2), Reason: "bad"}, uint64(i+1))
	}
	mustWrite(t, db, "r1", func(ctx context.Context, s planner.Sink) error { return reject(s, 0) })

	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.WritePlan(ctx, "r1", func(_ planner.Ledger, s planner.Sink) error {
			if err := reject(s, 1); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	var read []int64
	err := db.Events(ctx, "r1", 0, func(e *ledger.Event) error { read = append(read, e.Seq); return nil })
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read, []int64{1}) {
		t.Fatalf("read events %v beside the open write, want the committed one only: [1]", read)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	read = read[:0]
	if err := db.Events(ctx, "r1", 0, func(e *ledger.Event) error { read = append(read, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read, []int64{1, 2}) {
		t.Fatalf("read events %v after the commit, want [1 2]", read)
	}
}
