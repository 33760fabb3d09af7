package planner_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

// now is the run's start in every test: rows without updated_at are taken
// as of it.
var now = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

var testRules = planner.Rules{Now: now, SuppressionWindow: 14 * 24 * time.Hour}

// vendors is the demo configuration's vendors.
var vendors = map[string]privsync.Kind{
	"sfmc":       privsync.KindSFMC,
	"batch-ios":  privsync.KindBatch,
	"bloomreach": privsync.KindBloomreach,
}

func testOptions() planner.Options {
	return planner.Options{
		Vendors: vendors,
		Limits:  map[string]int{"sfmc": 1000, "batch-ios": 1, "bloomreach": 1000},
		Rules:   testRules,
	}
}

// item is one input row: a valid row, or a rejected one when rej is set.
type item struct {
	row privsync.Row
	rej *privsync.RowError
}

// memSource is a planner.Source over rows held in memory. Like ingest, it
// hands every row through one reused Row, so a planner that keeps the
// pointer instead of copying shows up.
type memSource struct {
	items []item
	reads int
	// mutate, when set, changes the input before the second read.
	mutate func(s *memSource)
}

func (s *memSource) Read(ctx context.Context, h planner.RowHandler) error {
	s.reads++
	if s.reads == 2 && s.mutate != nil {
		s.mutate(s)
	}
	var r privsync.Row
	var e privsync.RowError
	for i := range s.items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if it := &s.items[i]; it.rej != nil {
			e = *it.rej
			if err := h.Reject(&e); err != nil {
				return err
			}
			e = privsync.RowError{Reason: "reused"}
		} else {
			r = it.row
			if err := h.Row(&r); err != nil {
				return err
			}
			r = privsync.Row{Key: privsync.Key{Vendor: "scribbled", SubjectID: "scribbled"}}
		}
	}
	return nil
}

// rows builds a memSource from rows, numbering them as CSV lines (from 2)
// of the file "in.csv" unless they say otherwise.
func rows(rs ...privsync.Row) *memSource {
	s := &memSource{}
	for i, r := range rs {
		if r.File == "" {
			r.File = "in.csv"
		}
		if r.Line == 0 {
			r.Line = int64(i + 2)
		}
		s.items = append(s.items, item{row: r})
	}
	return s
}

func sfmc(id string, r privsync.Restrictions) privsync.Row {
	return privsync.Row{Key: privsync.Key{Vendor: "sfmc", SubjectID: id}, Restrictions: r}
}

func batchRow(id string, e privsync.Erasure, access string) privsync.Row {
	return privsync.Row{Key: privsync.Key{Vendor: "batch-ios", IDType: "custom_id", SubjectID: id}, Erasure: e, AccessRequest: access}
}

func bloomRow(id string, e privsync.Erasure) privsync.Row {
	return privsync.Row{Key: privsync.Key{Vendor: "bloomreach", IDType: "registered", SubjectID: id}, Erasure: e}
}

func at(r privsync.Row, t time.Time) privsync.Row { r.UpdatedAt = t; return r }

func erase(r privsync.Row, e privsync.Erasure) privsync.Row { r.Erasure = e; return r }

// memLedger is a planner.Ledger held in memory.
type memLedger struct {
	states  map[privsync.Key]planner.State
	settled []uint64
	lookups int // keys looked up, in total
}

func newLedger() *memLedger { return &memLedger{states: map[privsync.Key]planner.State{}} }

func (l *memLedger) set(k privsync.Key, st planner.State) {
	st.Known = true
	l.states[k] = st
}

// settle records rows as fully dealt with: the vendor holds what they ask.
func (l *memLedger) settle(rs ...privsync.Row) {
	for i := range rs {
		fp := planner.Fingerprint(&rs[i])
		l.settled = append(l.settled, fp)
		st := l.states[rs[i].Key]
		st.Known, st.Settled, st.Restrictions = true, fp, rs[i].Restrictions
		st.UpdatedAt = rs[i].UpdatedAt
		if rs[i].Erasure != privsync.EraseNone {
			st.Erasure, st.ErasedAt = planner.Erased, now.Add(-time.Hour)
		}
		if rs[i].AccessRequest != "" {
			st.AccessRequest = rs[i].AccessRequest
		}
		l.states[rs[i].Key] = st
	}
}

func (l *memLedger) Settled(context.Context) (*planner.FPSet, error) {
	s := planner.NewFPSet()
	s.Apply(l.settled, nil)
	return s, nil
}

func (l *memLedger) Lookup(_ context.Context, keys []privsync.Key) ([]planner.State, error) {
	l.lookups += len(keys)
	out := make([]planner.State, len(keys))
	for i, k := range keys {
		out[i] = l.states[k]
	}
	return out, nil
}

func (l *memLedger) Restricted(_ context.Context, vs []string, fn func(privsync.Key, planner.State) error) error {
	var keys []privsync.Key
	for k, st := range l.states {
		if slices.Contains(vs, k.Vendor) && st.Restrictions != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b privsync.Key) int {
		return strings.Compare(a.Vendor+"\x00"+a.IDType+"\x00"+a.SubjectID, b.Vendor+"\x00"+b.IDType+"\x00"+b.SubjectID)
	})
	for _, k := range keys {
		if err := fn(k, l.states[k]); err != nil {
			return err
		}
	}
	return nil
}

// rejected is one Sink.Reject call.
type rejected struct {
	Err privsync.RowError
	FP  uint64
}

// recorder is a planner.Sink that keeps the whole plan.
type recorder struct {
	Batches []planner.Batch
	Entries []planner.Entry
	Rejects []rejected
}

func (r *recorder) Batch(_ context.Context, b *planner.Batch) error {
	r.Batches = append(r.Batches, *b)
	return nil
}

func (r *recorder) Entry(_ context.Context, e *planner.Entry) error {
	c := *e
	c.Decision.Ops = slices.Clone(e.Decision.Ops)
	c.Decision.Notes = slices.Clone(e.Decision.Notes)
	c.Batches = slices.Clone(e.Batches)
	r.Entries = append(r.Entries, c)
	return nil
}

func (r *recorder) Reject(_ context.Context, e *privsync.RowError, fp uint64) error {
	r.Rejects = append(r.Rejects, rejected{*e, fp})
	return nil
}

// entry returns the recorded entry of a subject, failing the test if there
// is not exactly one.
func (r *recorder) entry(t *testing.T, id string) planner.Entry {
	t.Helper()
	var found []planner.Entry
	for _, e := range r.Entries {
		if e.Key.SubjectID == id {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("subject %s: %d entries in the plan, want 1", id, len(found))
	}
	return found[0]
}

// batchSizes counts the items placed in each batch, by batch id.
func (r *recorder) batchSizes() map[int]int {
	n := map[int]int{}
	for _, e := range r.Entries {
		for _, b := range e.Batches {
			n[b]++
		}
	}
	return n
}

// mustPlan plans src against led into a recorder.
func mustPlan(t testing.TB, src planner.Source, led planner.Ledger, opts planner.Options) (*planner.Stats, *recorder) {
	t.Helper()
	rec := &recorder{}
	st, err := planner.Plan(context.Background(), src, led, rec, opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return st, rec
}

// opNames renders a decision's operations as "op" or "op[restrictions]".
func opNames(ops []planner.Op) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = string(o.Op)
		if o.Op == privsync.OpRestrict {
			out[i] += "[" + o.Restrictions.String() + "]"
		}
	}
	return out
}

// noteNames renders notes as "outcome:operation".
func noteNames(ns []planner.Note) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = string(n.Outcome) + ":" + string(n.Operation)
	}
	return out
}
