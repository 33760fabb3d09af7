package planner_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

// orderSink checks that every batch is announced before an entry is placed
// in it, and records the plan.
type orderSink struct {
	recorder
	t *testing.T
}

func (s *orderSink) Entry(ctx context.Context, e *planner.Entry) error {
	for _, b := range e.Batches {
		if b < 1 || b > len(s.Batches) {
			s.t.Errorf("entry %s placed in batch %d before it was announced", e.Key.SubjectID, b)
		}
	}
	return s.recorder.Entry(ctx, e)
}

// checkBatches checks the batching invariants of a recorded plan and
// returns the sizes of the batches in the order they were announced.
func checkBatches(t *testing.T, rec *recorder, limits map[string]int) []int {
	t.Helper()
	sizes := rec.batchSizes()
	byID := map[int]planner.Batch{}
	for i, b := range rec.Batches {
		if b.ID != i+1 {
			t.Fatalf("batch %d announced as id %d: ids must count from 1", i+1, b.ID)
		}
		byID[b.ID] = b
	}
	out := make([]int, len(rec.Batches))
	for i, b := range rec.Batches {
		out[i] = sizes[b.ID]
		if sizes[b.ID] == 0 {
			t.Errorf("batch %d (%s %s) is empty", b.ID, b.Vendor, b.Op)
		}
		if sizes[b.ID] > max(limits[b.Vendor], 1) {
			t.Errorf("batch %d of %s holds %d items, more than its limit %d", b.ID, b.Vendor, sizes[b.ID], limits[b.Vendor])
		}
		if b.After != 0 {
			p, ok := byID[b.After]
			if !ok || p.ID >= b.ID {
				t.Errorf("batch %d follows batch %d, which was not announced before it", b.ID, b.After)
			}
			if sizes[b.ID] > sizes[b.After] {
				t.Errorf("follow-up batch %d holds %d items, more than batch %d it follows (%d)", b.ID, sizes[b.ID], b.After, sizes[b.After])
			}
		}
	}
	for _, e := range rec.Entries {
		if len(e.Batches) != len(e.Decision.Ops) {
			t.Fatalf("%s: %d operations in %d batches", e.Key.SubjectID, len(e.Decision.Ops), len(e.Batches))
		}
		for i, id := range e.Batches {
			b := byID[id]
			if b.Vendor != e.Key.Vendor || b.Op != e.Decision.Ops[i].Op {
				t.Errorf("%s %s placed in batch %d (%s %s)", e.Key.Vendor, e.Decision.Ops[i].Op, id, b.Vendor, b.Op)
			}
			want := 0
			if i > 0 {
				want = e.Batches[i-1]
			}
			// A follow-up's batch follows exactly the batch of the
			// operation before it: it never mixes predecessors.
			if b.After != want {
				t.Errorf("%s: operation %d in batch %d, which follows batch %d; want %d", e.Key.SubjectID, i, id, b.After, want)
			}
		}
	}
	return out
}

func TestBatchLimits(t *testing.T) {
	erasures := []privsync.Erasure{privsync.EraseNone, privsync.EraseDelete, privsync.EraseSuppress}
	for _, c := range []struct {
		name   string
		n      int
		row    func(i int) privsync.Row
		limits map[string]int // over testOptions' limits
		want   string         // batch sizes in the order announced
	}{
		{"sfmc batch_size", 10, func(i int) privsync.Row { return sfmc(fmt.Sprintf("p%02d", i), dnt) },
			map[string]int{"sfmc": 3}, "[3 3 3 1]"},
		{"sfmc default 1000", 2001, func(i int) privsync.Row { return sfmc(fmt.Sprintf("p%04d", i), dnp) },
			nil, "[1000 1000 1]"},
		{"sfmc operations are batched apart", 9, func(i int) privsync.Row { return erase(sfmc(fmt.Sprintf("p%d", i), dnt), erasures[i%3]) },
			map[string]int{"sfmc": 2}, "[2 2 2 1 1 1]"},
		{"bloomreach at most 1000", 2500, func(i int) privsync.Row { return bloomRow(fmt.Sprintf("c%d@example.com", i), privsync.EraseDelete) },
			nil, "[1000 1000 500]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := make([]privsync.Row, c.n)
			for i := range rs {
				rs[i] = c.row(i)
			}
			opts := testOptions()
			maps.Copy(opts.Limits, c.limits)
			_, rec := mustPlan(t, rows(rs...), newLedger(), opts)
			if got := checkBatches(t, rec, opts.Limits); fmt.Sprint(got) != c.want {
				t.Fatalf("batch sizes %v, want %s", got, c.want)
			}
		})
	}
	t.Run("batch: one user per request", func(t *testing.T) {
		src := rows(
			batchRow("u1", privsync.EraseDelete, ""),
			batchRow("u2", 0, "AR-2"),
			batchRow("u3", privsync.EraseDelete, "AR-3"),
			batchRow("u4", privsync.EraseDelete, "AR-4"),
		)
		opts := testOptions()
		stats, rec := mustPlan(t, src, newLedger(), opts)
		if got := checkBatches(t, rec, opts.Limits); fmt.Sprint(got) != "[1 1 1 1 1 1]" {
			t.Fatalf("batch sizes %v, want six batches of one", got)
		}
		if fmt.Sprint(stats.Operations) != "map[batch-ios:map[remove:3 review:3]]" {
			t.Fatalf("operations %v", stats.Operations)
		}
		e := rec.entry(t, "u3")
		if fmt.Sprint(opNames(e.Decision.Ops)) != "[review remove]" {
			t.Fatalf("u3: %v, want [review remove]", opNames(e.Decision.Ops))
		}
		if b := rec.Batches[e.Batches[1]-1]; b.After != e.Batches[0] {
			t.Fatalf("u3's remove is in batch %+v, which does not wait for its review (batch %d)", b, e.Batches[0])
		}
	})
}

// TestFollowUpBatches: cancelled suppressions followed by restrictions.
func TestFollowUpBatches(t *testing.T) {
	led := newLedger()
	var rs []privsync.Row
	for i := range 10 {
		id := fmt.Sprintf("p%02d", i)
		led.set(privsync.Key{Vendor: "sfmc", SubjectID: id}, suppressed(time.Hour))
		r := sfmc(id, 0)
		if i%2 == 1 || i == 6 {
			r.Restrictions = dnt
		}
		rs = append(rs, r)
	}
	opts := testOptions()
	opts.Limits["sfmc"] = 3
	_, rec := mustPlan(t, rows(rs...), led, opts)
	got := checkBatches(t, rec, opts.Limits)
	// remove_rtbf_suppress: p00-02, p03-05, p06-08, p09; restrict follows
	// p01, | p03 p05, | p06 p07, | p09.
	if fmt.Sprint(got) != "[3 1 3 2 3 2 1 1]" {
		t.Fatalf("batch sizes %v, want [3 1 3 2 3 2 1 1]", got)
	}
	for _, b := range rec.Batches {
		if (b.After != 0) != (b.Op == privsync.OpRestrict) {
			t.Errorf("batch %+v: restrictions must follow the cancellation, nothing else", b)
		}
	}
}

// TestBatchingInvariants plans random mixes under random limits.
func TestBatchingInvariants(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		led, src := randomInput(rng, 400)
		opts := testOptions()
		opts.Limits = map[string]int{"sfmc": 1 + rng.IntN(7), "batch-ios": 1, "bloomreach": 1 + rng.IntN(5)}
		rec := &orderSink{t: t}
		if _, err := planner.Plan(context.Background(), src, led, rec, opts); err != nil {
			t.Fatal(err)
		}
		checkBatches(t, &rec.recorder, opts.Limits)
	}
}

// randomInput makes n rows over a few subjects of every vendor, with
// duplicates, rejects, and a ledger holding every kind of state.
func randomInput(rng *rand.Rand, n int) (*memLedger, *memSource) {
	led := newLedger()
	src := &memSource{}
	restr := []privsync.Restrictions{0, dnt, dnp, dnpr, dnt | dnp, dnt | dnp | dnpr}
	subject := func() privsync.Row {
		switch rng.IntN(3) {
		case 0:
			return sfmc(fmt.Sprintf("s%d", rng.IntN(n/2)), restr[rng.IntN(len(restr))])
		case 1:
			r := batchRow(fmt.Sprintf("u%d", rng.IntN(n/2)), 0, "")
			if rng.IntN(3) == 0 {
				r.AccessRequest = fmt.Sprintf("AR-%d", rng.IntN(3))
			}
			return r
		}
		return bloomRow(fmt.Sprintf("c%d", rng.IntN(n/2)), 0)
	}
	for i := range n {
		r := subject()
		switch x := rng.IntN(10); {
		case x == 0:
			r.Erasure = privsync.EraseDelete
		case x == 1:
			r.Erasure = privsync.EraseSuppress
		}
		if rng.IntN(2) == 0 {
			r.UpdatedAt = now.Add(-time.Duration(rng.IntN(96)) * time.Hour)
		}
		r.File = fmt.Sprintf("part-%d.csv", i/100)
		r.Line = int64(i%100 + 2)
		if rng.IntN(25) == 0 {
			src.items = append(src.items, item{rej: &privsync.RowError{File: r.File, Line: r.Line, Column: "erasure",
				Value: "forget", Reason: "bad", Vendor: r.Vendor, SubjectID: r.SubjectID}})
			continue
		}
		src.items = append(src.items, item{row: r})
		// The ledger's view of some subjects.
		switch rng.IntN(12) {
		case 0:
			led.settle(r)
		case 1:
			led.set(r.Key, seen(restr[rng.IntN(len(restr))]))
		case 2:
			led.set(r.Key, withRestrictions(suppressed(time.Duration(rng.IntN(30*24))*time.Hour), restr[rng.IntN(len(restr))]))
		case 3:
			led.set(r.Key, erased())
		case 4:
			st := seen(dnt)
			if rng.IntN(2) == 0 {
				st.InFlight = planner.Fingerprint(&r)
			} else {
				st.InFlight = 12345
			}
			led.set(r.Key, st)
		case 5:
			st := seen(0)
			st.UpdatedAt = now.Add(-time.Duration(rng.IntN(96)) * time.Hour)
			st.AccessRequest = "AR-1"
			led.set(r.Key, st)
		case 6:
			st := seen(dnp)
			st.RetryAt = now.Add(time.Duration(rng.IntN(3)-1) * time.Hour)
			led.set(r.Key, st)
		}
	}
	// Restricted subjects absent from the input, for snapshot mode.
	for i := range n / 10 {
		led.set(privsync.Key{Vendor: "sfmc", SubjectID: fmt.Sprintf("gone%d", i)}, seen(restr[1+rng.IntN(len(restr)-1)]))
	}
	return led, src
}

// TestSecondPass: when the rows to look at do not fit in MaxCandidates, the
// input is read again; the plan must be the same as the one-pass plan.
func TestSecondPass(t *testing.T) {
	for seed := range uint64(10) {
		for _, snapshot := range []bool{false, true} {
			rng := rand.New(rand.NewPCG(seed, 2))
			led, src := randomInput(rng, 300)
			opts := testOptions()
			opts.Limits = map[string]int{"sfmc": 4, "batch-ios": 1, "bloomreach": 3}
			opts.Snapshot = snapshot
			want, wantRec := mustPlan(t, src, led, opts)
			// Everything fits: one read, or two only to name a subject whose
			// conflicting rows were all settled (none held in memory).
			if want.Passes != src.reads || src.reads > 2 {
				t.Fatalf("one-pass plan read the input %d times (Passes %d)", src.reads, want.Passes)
			}
			if len(wantRec.Entries) < 50 || len(wantRec.Rejects) == 0 || want.Superseded == 0 || want.Changes() == 0 {
				t.Fatalf("seed %d: the input is too tame to compare plans: %+v", seed, want)
			}
			for _, c := range []struct{ max, chunk int }{{1, 0}, {7, 3}, {50, 1}, {len(wantRec.Entries) - 1, 0}} {
				src.reads = 0
				o := opts
				o.MaxCandidates, o.LookupChunk = c.max, c.chunk
				got, gotRec := mustPlan(t, src, led, o)
				// Two reads, or three when rows of a duplicated subject
				// were not held: one to resolve it, one for the overflow.
				if got.Passes != src.reads || src.reads < 2 || src.reads > 3 {
					t.Fatalf("MaxCandidates %d: %d reads (Passes %d), want 2 or 3", c.max, src.reads, got.Passes)
				}
				got.Passes = want.Passes
				if !samePlan(t, want, got, wantRec, gotRec) {
					t.Fatalf("seed %d, snapshot %v, MaxCandidates %d, LookupChunk %d: the plan differs from the one-pass plan", seed, snapshot, c.max, c.chunk)
				}
			}
		}
	}
}

func samePlan(t *testing.T, want, got *planner.Stats, wantRec, gotRec *recorder) bool {
	t.Helper()
	ok := true
	if fmt.Sprintf("%+v", *want) != fmt.Sprintf("%+v", *got) {
		t.Errorf("stats\n got %+v\nwant %+v", *got, *want)
		ok = false
	}
	if !slices.Equal(wantRec.Batches, gotRec.Batches) {
		t.Errorf("batches differ:\n got %+v\nwant %+v", gotRec.Batches, wantRec.Batches)
		ok = false
	}
	if len(wantRec.Rejects) != len(gotRec.Rejects) {
		t.Errorf("%d rejects, want %d", len(gotRec.Rejects), len(wantRec.Rejects))
		ok = false
	} else {
		for i := range wantRec.Rejects {
			if wantRec.Rejects[i] != gotRec.Rejects[i] {
				t.Errorf("reject %d:\n got %+v\nwant %+v", i, gotRec.Rejects[i], wantRec.Rejects[i])
				ok = false
			}
		}
	}
	if len(wantRec.Entries) != len(gotRec.Entries) {
		t.Errorf("%d entries, want %d", len(gotRec.Entries), len(wantRec.Entries))
		return false
	}
	for i := range wantRec.Entries {
		if w, g := fmt.Sprintf("%+v", wantRec.Entries[i]), fmt.Sprintf("%+v", gotRec.Entries[i]); w != g {
			t.Errorf("entry %d:\n got %s\nwant %s", i, g, w)
			ok = false
		}
	}
	return ok
}
