package planner

import (
	"math/rand/v2"
	"testing"
)

// TestCandidatesMatchASlice: adds, drops from the front (within a chunk,
// to a chunk's end, across chunks, everything), lookups by ordinal and
// walks of the chunked store agree with a plain slice.
func TestCandidatesMatchASlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var s candidates
	var model []candidate
	ord := uint32(0)
	for round := range 300 {
		for range rng.IntN(3 * candChunk / 2) {
			ord += 1 + uint32(rng.IntN(3)) // gaps: ordinals not held
			c := candidate{ord: ord, fp: uint64(ord) * 7}
			s.add(c)
			model = append(model, c)
		}
		if s.len() != len(model) {
			t.Fatalf("round %d: len %d, want %d", round, s.len(), len(model))
		}
		if len(model) > 0 {
			if l := s.last(); l == nil || l.ord != model[len(model)-1].ord {
				t.Fatalf("round %d: last %v, want ord %d", round, l, model[len(model)-1].ord)
			}
		} else if s.last() != nil {
			t.Fatalf("round %d: last of an empty store", round)
		}
		i := 0
		s.each(func(c *candidate) {
			if c.ord != model[i].ord {
				t.Fatalf("round %d: each gives ord %d at %d, want %d", round, c.ord, i, model[i].ord)
			}
			i++
		})
		if i != len(model) {
			t.Fatalf("round %d: each walked %d, want %d", round, i, len(model))
		}
		for range 50 {
			o := ord - uint32(rng.IntN(int(ord)+2)) + 1
			var want *candidate
			for j := range model {
				if model[j].ord == o {
					want = &model[j]
				}
			}
			got := s.byOrd(o)
			if (got == nil) != (want == nil) || got != nil && got.fp != want.fp {
				t.Fatalf("round %d: byOrd(%d) = %v, want %v", round, o, got, want)
			}
		}
		n := rng.IntN(len(model) + 1)
		if round%7 == 0 {
			n = len(model)
		}
		front := s.front(nil, n)
		for j, c := range front {
			if c.ord != model[j].ord {
				t.Fatalf("round %d: front %d gives ord %d, want %d", round, j, c.ord, model[j].ord)
			}
		}
		if len(front) != n {
			t.Fatalf("round %d: front(%d) gave %d", round, n, len(front))
		}
		s.drop(n)
		model = model[n:]
	}
	if len(s.spare) == 0 {
		t.Fatal("no chunk was ever emptied and kept for reuse")
	}
}
