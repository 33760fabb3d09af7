package planner

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFPSetMatchesAMap checks Has, Len, BucketOf and the buckets Apply
// reports against a plain map, over random adds and removes that crowd a
// few buckets (fingerprints share their top bits) and spread over all, in
// sets small enough to go without a bucket index and large enough to have one.
func TestFPSetMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func() uint64 {
		if rng.IntN(2) == 0 {
			return uint64(rng.IntN(4))<<(64-BucketBits) | uint64(rng.IntN(50)) // a few crowded buckets
		}
		return rng.Uint64()
	}
	model := map[uint64]bool{}
	set := NewFPSet()
	for round := 0; round < 200; round++ {
		var add, remove []uint64
		n := rng.IntN(40)
		if round%50 == 25 {
			n = 3 * smallFPSet // past the size with a bucket index, and back below as removes thin it
		}
		for range n {
			add = append(add, gen())
		}
		for fp := range model {
			if rng.IntN(5) == 0 {
				remove = append(remove, fp)
			}
		}
		remove = append(remove, gen()) // maybe absent
		want := map[int]bool{}
		for _, fp := range remove { // a remove wins over an add of the same fp
			if model[fp] {
				want[Bucket(fp)] = true
			}
		}
		for _, fp := range add {
			if !model[fp] && !slices.Contains(remove, fp) {
				want[Bucket(fp)] = true
			}
		}
		for _, fp := range remove {
			delete(model, fp)
		}
		for _, fp := range add {
			if !slices.Contains(remove, fp) {
				model[fp] = true
			}
		}
		got := set.Apply(add, remove)
		for _, b := range got {
			if !want[b] {
				t.Fatalf("round %d: Apply reports bucket %d changed, it did not", round, b)
			}
		}
		if len(got) < len(want) {
			t.Fatalf("round %d: Apply reports %d changed buckets, want at least %d", round, len(got), len(want))
		}
		if set.Len() != len(model) {
			t.Fatalf("round %d: Len %d, want %d", round, set.Len(), len(model))
		}
		for fp := range model {
			if !set.Has(fp) || !slices.Contains(set.BucketOf(Bucket(fp)), fp) {
				t.Fatalf("round %d: %x missing", round, fp)
			}
		}
		for _, fp := range remove {
			if !model[fp] && set.Has(fp) {
				t.Fatalf("round %d: removed %x still there", round, fp)
			}
		}
		probes := append(append([]uint64{0, ^uint64(0)}, remove...), add...)
		for range 50 {
			probes = append(probes, gen())
		}
		found := make([]bool, len(probes))
		set.HasAll(probes, found)
		for i, ok := range found {
			if ok != model[probes[i]] || ok != set.Has(probes[i]) {
				t.Fatalf("round %d: HasAll(%x) = %v, the model says %v", round, probes[i], ok, model[probes[i]])
			}
		}
	}
}
