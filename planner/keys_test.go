package planner

import (
	"math/rand/v2"
	"testing"

	"github.com/privsync/privsync"
)

// TestKeySetMatchesAMap: key hashes crowded into one partition (many
// chunks, past the largest chunk size) and spread over the others, with
// repeats; after seal, the repeat counts match a map, and so does
// membership when the set is kept.
func TestKeySetMatchesAMap(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(map[bool]string{true: "kept", false: "counted"}[keep], func(t *testing.T) { testKeySet(t, keep) })
	}
}

func testKeySet(t *testing.T, keep bool) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s keySet
	want := map[uint64]int{}
	var added []uint64
	add := func(kh uint64) {
		s.add(kh)
		want[kh]++
		added = append(added, kh)
	}
	const crowded = uint64(5) << (64 - keyPartBits)
	for range 20 * keyChunkMax {
		switch rng.IntN(10) {
		case 0: // a repeat of an earlier key
			if len(added) > 0 {
				add(added[rng.IntN(len(added))])
			}
		case 1, 2, 3:
			add(rng.Uint64())
		default: // partition 5
			add(crowded | rng.Uint64()>>keyPartBits)
		}
	}
	if n := len(s.full[5]); n < 10 {
		t.Fatalf("partition 5 has %d full chunks: the test does not reach the largest chunk size", n)
	}
	dups := s.seal(keep)
	repeated := 0
	for kh, n := range want {
		if keep && !s.has(kh) {
			t.Fatalf("%x was added but is missing", kh)
		}
		if n > 1 {
			repeated++
			if dups[kh] != n {
				t.Fatalf("%x added %d times, seal counts %d", kh, n, dups[kh])
			}
		}
	}
	if repeated == 0 || len(dups) != repeated {
		t.Fatalf("%d repeated keys, seal reports %d", repeated, len(dups))
	}
	for range 10_000 {
		if !keep {
			break
		}
		if kh := rng.Uint64(); want[kh] == 0 && s.has(kh) {
			t.Fatalf("%x was never added but is present", kh)
		}
		if kh := crowded | rng.Uint64()>>keyPartBits; want[kh] == 0 && s.has(kh) {
			t.Fatalf("%x was never added but is present", kh)
		}
	}
	for p := range s.sorted {
		if s.full[p] != nil || s.tail[p] != nil {
			t.Fatalf("partition %d still holds its chunks after seal", p)
		}
		if !keep && s.sorted[p] != nil {
			t.Fatalf("partition %d kept sorted though not asked to", p)
		}
	}
}

// TestHashesMatchTheDigests: Hashes lays the bytes out itself; it must
// hash what KeyHash and Fingerprint stream (the ledger holds their
// values), for short rows and for rows past its buffer.
func TestHashesMatchTheDigests(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	str := func(max int) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	for i := range 20_000 {
		long := 40
		if i%10 == 0 {
			long = 200 // some rows past the 256-byte buffer
		}
		r := &privsync.Row{Key: privsync.Key{Vendor: str(12), IDType: str(12), SubjectID: str(long)},
			Restrictions: privsync.Restrictions(rng.IntN(256)), Erasure: privsync.Erasure(rng.IntN(3)), AccessRequest: str(long)}
		kh, fp := Hashes(r)
		if kh != KeyHash(r.Key) || fp != Fingerprint(r) {
			t.Fatalf("row %+v: Hashes %x %x, KeyHash %x, Fingerprint %x", r, kh, fp, KeyHash(r.Key), Fingerprint(r))
		}
	}
}
