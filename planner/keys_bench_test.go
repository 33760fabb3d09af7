package planner

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkKeySetAdd fills a keySet with 4M random key hashes and seals
// it, kept (as for a snapshot) and counted only.
func BenchmarkKeySetAdd(b *testing.B) {
	for _, keep := range []bool{true, false} {
		b.Run(map[bool]string{true: "kept", false: "counted"}[keep], func(b *testing.B) { benchKeySet(b, keep) })
	}
}

func benchKeySet(b *testing.B, keep bool) {
	rng := rand.New(rand.NewPCG(1, 1))
	khs := make([]uint64, 4_000_000)
	for i := range khs {
		khs[i] = rng.Uint64()
	}
	for b.Loop() {
		var s keySet
		for _, kh := range khs {
			s.add(kh)
		}
		s.seal(keep)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(khs)), "ns/key")
}
