package planner

import (
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/privsync/privsync"
)

// KeyHash identifies a subject (vendor, id type, subject id) in 64 bits.
func KeyHash(k privsync.Key) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(k.Vendor)
	d.Write([]byte{0})
	d.WriteString(k.IDType)
	d.Write([]byte{0})
	d.WriteString(k.SubjectID)
	return d.Sum64()
}

// Fingerprint identifies what a row asks of its vendor for its subject:
// the key and the desired state, not the row's position nor its
// updated_at (a re-export with a new timestamp asks for nothing new).
// It is never 0, which stands for "none".
func Fingerprint(r *privsync.Row) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(r.Vendor)
	d.Write([]byte{0})
	d.WriteString(r.IDType)
	d.Write([]byte{0})
	d.WriteString(r.SubjectID)
	d.Write([]byte{1, byte(r.Restrictions), byte(r.Erasure)})
	d.WriteString(r.AccessRequest)
	return nonZero(d.Sum64())
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
// dealt with. It is kept as sorted buckets, the same shape the ledger
// stores it in, so loading 10M fingerprints costs one pass over 80 MB.
type FPSet struct {
	buckets [1 << BucketBits][]uint64
	n       int
}

// NewFPSet returns an empty set.
func NewFPSet() *FPSet { return new(FPSet) }

// SetBucket replaces one bucket with fps, which must be sorted.
func (s *FPSet) SetBucket(b int, fps []uint64) {
	s.n += len(fps) - len(s.buckets[b])
	s.buckets[b] = fps
}

// BucketOf returns one bucket's sorted fingerprints (not to be modified).
func (s *FPSet) BucketOf(b int) []uint64 { return s.buckets[b] }

// Len is the number of fingerprints in the set.
func (s *FPSet) Len() int { return s.n }

// Has reports whether fp is in the set.
func (s *FPSet) Has(fp uint64) bool {
	if s == nil {
		return false
	}
	_, ok := slices.BinarySearch(s.buckets[Bucket(fp)], fp)
	return ok
}

// Apply adds and removes fingerprints and returns the buckets it changed.
func (s *FPSet) Apply(add, remove []uint64) []int {
	touched := map[int]bool{}
	for _, fp := range remove {
		b := Bucket(fp)
		if i, ok := slices.BinarySearch(s.buckets[b], fp); ok {
			s.buckets[b] = slices.Delete(slices.Clone(s.buckets[b]), i, i+1)
			s.n--
			touched[b] = true
		}
	}
	for _, fp := range add {
		b := Bucket(fp)
		if i, ok := slices.BinarySearch(s.buckets[b], fp); !ok {
			s.buckets[b] = slices.Insert(slices.Clip(s.buckets[b]), i, fp)
			s.n++
			touched[b] = true
		}
	}
	out := make([]int, 0, len(touched))
	for b := range touched {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}
