package planner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

const benchRows = 1_000_000

var (
	benchOnce          sync.Once
	benchBase, benchCh []privsync.Row // a night, and the next with 1% changed
)

// benchInput makes 1M rows shaped like bench/gen's (a third per vendor
// kind, mostly sfmc restrictions, 1% erasures, a few access requests) and
// the same night with 1% of the rows changed.
func benchInput() ([]privsync.Row, []privsync.Row) {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		restr := []privsync.Restrictions{0, 0, 0, 0, 0, dnt, dnp, dnt | dnp, dnpr, dnt | dnp | dnpr}
		base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		benchBase = make([]privsync.Row, benchRows)
		for i := range benchBase {
			r := privsync.Row{File: "bench.csv", Line: int64(i + 2), UpdatedAt: base.Add(time.Duration(i) * time.Second)}
			switch i % 3 {
			case 0:
				r.Key = privsync.Key{Vendor: "sfmc", SubjectID: fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(i), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, uint64(i)*2654435761&0xffffffffffff)}
				r.Restrictions = restr[rng.IntN(len(restr))]
			case 1:
				r.Key = privsync.Key{Vendor: "batch-ios", IDType: "custom_id", SubjectID: fmt.Sprintf("user-%d", i)}
				if rng.IntN(200) == 0 {
					r.AccessRequest = fmt.Sprintf("AR-%d", 100000+i)
				}
			default:
				r.Key = privsync.Key{Vendor: "bloomreach", IDType: "registered", SubjectID: fmt.Sprintf("user%d@example.com", i)}
			}
			if rng.IntN(100) == 0 {
				r.Erasure = privsync.EraseDelete
			}
			benchBase[i] = r
		}
		benchCh = make([]privsync.Row, benchRows)
		copy(benchCh, benchBase)
		for i := range benchCh {
			if rng.IntN(100) == 0 {
				r := &benchCh[i]
				if r.Vendor == "sfmc" && rng.IntN(20) != 0 {
					r.Restrictions ^= restr[1+rng.IntN(len(restr)-1)]
				} else {
					r.Erasure = privsync.EraseDelete
				}
				r.UpdatedAt = r.UpdatedAt.Add(30 * 24 * time.Hour)
			}
		}
	})
	return benchBase, benchCh
}

// sliceSource streams rows from a slice through one reused Row, as ingest.
type sliceSource []privsync.Row

func (s sliceSource) Read(_ context.Context, h planner.RowHandler) error {
	var r privsync.Row
	for i := range s {
		r = s[i]
		if err := h.Row(&r); err != nil {
			return err
		}
	}
	return nil
}

// settledLedger holds a whole night as settled, as the ledger does once
// every row of it was confirmed.
type settledLedger struct {
	planner.Empty
	set *planner.FPSet
}

func (l settledLedger) Settled(context.Context) (*planner.FPSet, error) { return l.set, nil }

// BenchmarkPlan plans 1M rows: a first night against an empty ledger, the
// same night again (all settled), and the next night with 1% changed. It
// measures the planner alone: rows come from memory, the ledger's lookups
// cost nothing (bench/plan.sh measures the whole command).
func BenchmarkPlan(b *testing.B) {
	base, changed := benchInput()
	fps := make([]uint64, len(base))
	for i := range base {
		fps[i] = planner.Fingerprint(&base[i])
	}
	set := planner.NewFPSet()
	set.Apply(fps, nil)
	opts := planner.Options{Vendors: vendors, Limits: map[string]int{"sfmc": 1000, "batch-ios": 1, "bloomreach": 1000}, Rules: testRules}
	for _, c := range []struct {
		name string
		src  sliceSource
		led  planner.Ledger
		ops  int // operations the plan must find, or -1 for many
	}{
		{"empty-ledger", sliceSource(base), planner.Empty{}, -1},
		{"settled-same-night", sliceSource(base), settledLedger{set: set}, 0},
		{"settled-1pct-changed", sliceSource(changed), settledLedger{set: set}, -1},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var st *planner.Stats
			for b.Loop() {
				var err error
				if st, err = planner.Plan(context.Background(), c.src, c.led, planner.Discard{}, opts); err != nil {
					b.Fatal(err)
				}
			}
			if c.ops >= 0 && st.Changes() != c.ops || c.ops < 0 && st.Changes() == 0 || st.Rows != benchRows {
				b.Fatalf("plan of %d rows: %d operations", st.Rows, st.Changes())
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(st.Changes()), "ops")
		})
	}
}
