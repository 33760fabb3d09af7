package planner

import (
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/privsync/privsync"
)

// KeyHash identifies a subject (vendor, id type, subject id) in 64 bits.
func KeyHash(k privsync.Key) uint64 {
	var d xxhash.Digest
	writeKey(&d, k)
	return d.Sum64()
}

func writeKey(d *xxhash.Digest, k privsync.Key) {
	d.Reset()
	d.WriteString(k.Vendor)
	d.Write([]byte{0})
	d.WriteString(k.IDType)
	d.Write([]byte{0})
	d.WriteString(k.SubjectID)
}

// Fingerprint identifies what a row asks of its vendor for its subject:
// the key and the desired state, not the row's position nor its
// updated_at (a re-export with a new timestamp asks for nothing new).
// It is never 0, which stands for "none".
func Fingerprint(r *privsync.Row) uint64 {
	var d xxhash.Digest
	writeKey(&d, r.Key)
	d.Write([]byte{1, byte(r.Restrictions), byte(r.Erasure)})
	d.WriteString(r.AccessRequest)
	return nonZero(d.Sum64())
}

// Hashes returns KeyHash(r.Key) and Fingerprint(r). It lays the bytes
// both hash out once, in a buffer on the stack, and hashes them in one
// call each: the streaming Digest's five writes a row cost twice as much.
func Hashes(r *privsync.Row) (kh, fp uint64) {
	n := len(r.Vendor) + len(r.IDType) + len(r.SubjectID) + 5 + len(r.AccessRequest)
	var buf [256]byte
	if n > len(buf)-3 {
		return KeyHash(r.Key), Fingerprint(r)
	}
	b := append(buf[:0], r.Vendor...)
	b = append(b, 0)
	b = append(b, r.IDType...)
	b = append(b, 0)
	b = append(b, r.SubjectID...)
	kh = xxhash.Sum64(b)
	b = append(b, 1, byte(r.Restrictions), byte(r.Erasure))
	b = append(b, r.AccessRequest...)
	return kh, nonZero(xxhash.Sum64(b))
}

// RejectFingerprint identifies a rejected row by what is wrong with it and
// whom it names, so the same bad row is reported once, not every night.
func RejectFingerprint(e *privsync.RowError) uint64 {
	var d xxhash.Digest
	d.Reset()
	for _, s := range []string{"rejected", e.Vendor, e.SubjectID, e.Column, e.Value, e.Reason} {
		d.WriteString(s)
		d.Write([]byte{0})
	}
	return nonZero(d.Sum64())
}

func nonZero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// BucketBits is how many top bits of a fingerprint pick its bucket.
const BucketBits = 16

// Bucket returns the bucket a fingerprint belongs to.
func Bucket(fp uint64) int { return int(fp >> (64 - BucketBits)) }

// FPSet is the set of settled fingerprints: rows whose request is fully
// dealt with. It is one sorted array with an index of where each bucket
// (the top BucketBits bits) starts, the shape the ledger stores it in, so
// loading 10M fingerprints is one pass over 80 MB and a lookup is one read
// of the small index and a binary search within ~150 neighbours.
type FPSet struct {
	fps  []uint64
	idx  []uint32 // fps[idx[b]:idx[b+1]] are bucket b's; nil for a small set
	sink uint64   // keeps HasAll's touching loads from being optimised away
}

// smallFPSet is the size under which a set has no bucket index: building
// its 65,537 entries would cost more than binary searches over the whole
// set (a night of a few rows, a fold of a few buckets).
const smallFPSet = 4096

// NewFPSet returns an empty set.
func NewFPSet() *FPSet { return new(FPSet) }

// NewFPSetSorted returns the set of fps, which must be sorted ascending
// (as the ledger's buckets, concatenated in bucket order, are). It keeps fps.
func NewFPSetSorted(fps []uint64) *FPSet {
	s := &FPSet{fps: fps}
	s.index()
	return s
}

func (s *FPSet) index() {
	if len(s.fps) < smallFPSet {
		s.idx = nil
		return
	}
	if s.idx == nil {
		s.idx = make([]uint32, 1<<BucketBits+1)
	}
	b := 0
	for i, fp := range s.fps {
		for top := Bucket(fp); b <= top; b++ {
			s.idx[b] = uint32(i)
		}
	}
	for ; b <= 1<<BucketBits; b++ {
		s.idx[b] = uint32(len(s.fps))
	}
}

// BucketOf returns one bucket's sorted fingerprints (not to be modified).
func (s *FPSet) BucketOf(b int) []uint64 {
	lo, hi := s.bucket(b)
	return s.fps[lo:hi]
}

// bucket returns where bucket b lies in s.fps.
func (s *FPSet) bucket(b int) (lo, hi int) {
	if s.idx != nil {
		return int(s.idx[b]), int(s.idx[b+1])
	}
	lo = sort.Search(len(s.fps), func(i int) bool { return Bucket(s.fps[i]) >= b })
	hi = lo + sort.Search(len(s.fps)-lo, func(i int) bool { return Bucket(s.fps[lo+i]) > b })
	return lo, hi
}

// Len is the number of fingerprints in the set.
func (s *FPSet) Len() int { return len(s.fps) }

// Has reports whether fp is in the set.
func (s *FPSet) Has(fp uint64) bool {
	out := [1]bool{}
	s.HasAll([]uint64{fp}, out[:])
	return out[0]
}

// HasAll sets out[i] to whether fps[i] is in the set. A probe of a set
// much larger than the cache is a cache (and TLB) miss: HasAll takes up to
// hasAllRun probes at a time in three loops, each of independent loads,
// so their misses overlap: where each probe's bucket lies (the index), a
// touch of its interpolated slot, then the search. Several times faster
// than Has in a loop; the index and the array are held in locals, as
// reloading them through s in one loop with the search cost 3x.
func (s *FPSet) HasAll(fps []uint64, out []bool) {
	if s == nil || len(s.fps) == 0 {
		clear(out)
		return
	}
	if s.idx == nil {
		for i, fp := range fps {
			lo, hi := s.slot(fp)
			j := lo + sort.Search(hi-lo, func(k int) bool { return s.fps[lo+k] >= fp })
			out[i] = j < hi && s.fps[j] == fp
		}
		return
	}
	idx, all := s.idx, s.fps
	var guess, end [hasAllRun]uint32
	var sink uint64
	for len(fps) > 0 {
		n := min(len(fps), hasAllRun)
		run, res := fps[:n], out[:n]
		for i, fp := range run {
			b := fp >> (64 - BucketBits)
			lo, hi := idx[b], idx[b+1]
			guess[i] = lo + uint32((uint64(hi-lo)*((fp<<BucketBits)>>32))>>32)
			end[i] = hi
		}
		for _, g := range guess[:n] {
			if int(g) < len(all) {
				sink += all[g]
			}
		}
		for i, fp := range run {
			lo, hi := int(idx[fp>>(64-BucketBits)]), int(end[i])
			j := int(guess[i])
			for j > lo && (j >= hi || all[j] > fp) {
				j--
			}
			for j < hi && all[j] < fp {
				j++
			}
			res[i] = j < hi && all[j] == fp
		}
		fps, out = fps[n:], out[n:]
	}
	s.sink = sink
}

// hasAllRun is how many probes HasAll overlaps.
const hasAllRun = 256

// slot returns where fp's bucket lies in s.fps.
func (s *FPSet) slot(fp uint64) (lo, hi int) {
	return s.bucket(Bucket(fp))
}

// Apply adds and removes fingerprints and returns the buckets it changed,
// in order. It merges in one pass: O(size of the set + changes).
func (s *FPSet) Apply(add, remove []uint64) []int {
	if len(add)+len(remove) == 0 {
		return nil
	}
	add, remove = slices.Clone(add), slices.Clone(remove)
	slices.Sort(add)
	slices.Sort(remove)
	out := MakeFingerprints(len(s.fps) + len(add))
	touched := map[int]bool{}
	i, j, k := 0, 0, 0 // s.fps, add, remove
	for i < len(s.fps) || j < len(add) {
		var fp uint64
		fromSet := j >= len(add) || (i < len(s.fps) && s.fps[i] <= add[j])
		if fromSet {
			fp = s.fps[i]
			i++
			if j < len(add) && add[j] == fp {
				j++ // already present
			}
		} else {
			fp = add[j]
			j++
			if len(out) > 0 && out[len(out)-1] == fp {
				continue // added twice
			}
		}
		for k < len(remove) && remove[k] < fp {
			k++
		}
		if k < len(remove) && remove[k] == fp {
			if fromSet {
				touched[Bucket(fp)] = true
			}
			continue
		}
		if !fromSet {
			touched[Bucket(fp)] = true
		}
		out = append(out, fp)
	}
	s.fps = out
	s.index()
	changed := make([]int, 0, len(touched))
	for b := range touched {
		changed = append(changed, b)
	}
	slices.Sort(changed)
	return changed
}

// hugeMin is the capacity from which MakeFingerprints asks for huge pages
// (4 MiB: two of them).
const hugeMin = 1 << 19

// MakeFingerprints returns an empty slice of capacity n for the
// fingerprints of a large set. A probe of a set of millions is a TLB miss
// as much as a cache miss, and filling it a page fault every 4 KiB: on
// Linux the slice is backed by huge pages where the system allows.
func MakeFingerprints(n int) []uint64 {
	s := make([]uint64, 0, n)
	if n > 0 {
		adviseHuge(s)
	}
	return s
}
