package planner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/privsync/privsync"
)

// keyPartBits is how many top bits of a key hash pick its partition in a
// keySet: 1,024 partitions, whose growing tails (a slice header and a
// cache line each in use) stay in the CPU's cache while rows arrive in
// random key order (4,096 were 20% slower to fill).
const keyPartBits = 10

// keyChunkMax is the largest chunk a partition grows by (8 KiB): what a
// partition wastes at most, 8 MiB over all of them.
const keyChunkMax = 1024

// keySet holds the key hash of every row, 8 bytes each. During the first
// pass the hashes are appended to their partition's chunks as they arrive
// (nothing grows by copying, nothing is scattered afterwards); seal then
// finds the repeated ones a partition at a time, and for a snapshot sorts
// each partition into one slice so that asking whether a key is present
// is a binary search. The chunks are cut from slabs that double up to
// keySlabMax, asked for huge pages (see MakeFingerprints): filling 80 MB
// of chunks at 10M rows was a page fault every 512 rows.
type keySet struct {
	full   [1 << keyPartBits][][]uint64 // filled chunks, per partition
	tail   [1 << keyPartBits][]uint64   // the chunk being filled
	sorted [1 << keyPartBits][]uint64   // after seal
	slab   []uint64                     // where the next chunks are cut from
}

// keySlabMin and keySlabMax bound the slabs chunks are cut from (128 KiB
// to 4 MiB): a plan of a few rows allocates little.
const (
	keySlabMin = 1 << 14
	keySlabMax = 1 << 19
)

// chunk cuts an empty chunk of capacity size from the slab.
func (s *keySet) chunk(size int) []uint64 {
	if cap(s.slab)-len(s.slab) < size {
		s.slab = MakeFingerprints(min(max(2*cap(s.slab), keySlabMin), keySlabMax))
	}
	n := len(s.slab)
	s.slab = s.slab[:n+size]
	return s.slab[n : n : n+size]
}

func (s *keySet) add(kh uint64) {
	p := kh >> (64 - keyPartBits)
	t := &s.tail[p]
	if len(*t) == cap(*t) {
		size := 16
		if c := cap(*t); c > 0 {
			s.full[p] = append(s.full[p], *t)
			size = min(2*c, keyChunkMax)
		}
		*t = s.chunk(size)
	}
	*t = append(*t, kh)
}

// seal ends the adding and returns, for every key hash added more than
// once, how many times it was. With keep, it sorts every partition and
// keeps it for has (a snapshot asks); without, it only counts repeats, a
// partition at a time in a table that stays in the cache, and drops the
// hashes: sorted copies of them were 8 bytes a row of fresh memory (80 MB
// at 10M rows, whose page faults cost more than the sort). Partitions are
// sealed on as many goroutines as there are cores, up to sealWorkers.
func (s *keySet) seal(keep bool) map[uint64]int {
	workers := min(runtime.GOMAXPROCS(0), sealWorkers)
	found := make([]map[uint64]int, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			dups := map[uint64]int{}
			var t dupTable
			for {
				p := int(next.Add(1) - 1)
				if p >= len(s.tail) {
					break
				}
				if keep {
					s.sortPartition(p, dups)
				} else {
					t.count(s.full[p], s.tail[p], dups)
				}
				s.full[p], s.tail[p] = nil, nil
			}
			found[w] = dups
		})
	}
	wg.Wait()
	s.slab = nil
	dups := found[0]
	for _, m := range found[1:] {
		maps.Copy(dups, m) // a key hash lies in one partition: no overlap
	}
	return dups
}

// sealWorkers bounds the goroutines of seal.
const sealWorkers = 4

// sortPartition sorts partition p into s.sorted and adds its repeats to dups.
func (s *keySet) sortPartition(p int, dups map[uint64]int) {
	n := len(s.tail[p])
	for _, c := range s.full[p] {
		n += len(c)
	}
	if n == 0 {
		return
	}
	out := make([]uint64, 0, n)
	for _, c := range s.full[p] {
		out = append(out, c...)
	}
	out = append(out, s.tail[p]...)
	slices.Sort(out)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			dups[out[i]] = max(dups[out[i]], 1) + 1
		}
	}
	s.sorted[p] = out
}

// dupTable finds the repeated key hashes of one partition: an open
// addressing table, reused from partition to partition, of a power of two
// at least twice the partition's size. Key hashes are uniform, so their
// bits below the partition's pick the slot.
type dupTable struct {
	slots []uint64
	used  []bool
}

func (t *dupTable) count(full [][]uint64, tail []uint64, dups map[uint64]int) {
	n := len(tail)
	for _, c := range full {
		n += len(c)
	}
	if n == 0 {
		return
	}
	size := 1 << bits.Len(uint(2*n-1))
	if len(t.slots) < size {
		t.slots, t.used = make([]uint64, size), make([]bool, size)
	}
	slots, used := t.slots[:size], t.used[:size]
	clear(used)
	shift := 64 - bits.Len(uint(size-1))
	mask := size - 1
	add := func(kh uint64) {
		i := int((kh << keyPartBits) >> shift)
		for used[i] {
			if slots[i] == kh {
				dups[kh] = max(dups[kh], 1) + 1
				return
			}
			i = (i + 1) & mask
		}
		used[i], slots[i] = true, kh
	}
	for _, c := range full {
		for _, kh := range c {
			add(kh)
		}
	}
	for _, kh := range tail {
		add(kh)
	}
}

// has reports whether kh was added (after seal).
func (s *keySet) has(kh uint64) bool {
	_, ok := slices.BinarySearch(s.sorted[kh>>(64-keyPartBits)], kh)
	return ok
}

// digest sums the key hashes and fingerprints of a read's rows in order,
// so a later read can check it met the same rows without keeping them.
type digest struct {
	h uint64
	n int
}

func (d *digest) add(kh, fp uint64) {
	d.h = bits.RotateLeft64((d.h^kh)*0x9e3779b97f4a7c15, 31)
	d.h = bits.RotateLeft64((d.h^fp)*0xc2b2ae3d27d4eb4f, 29)
	d.n++
}

var errInputChanged = errors.New("the input changed while it was being read; run again on a stable copy")

// collectHeldDups gathers the rows of each duplicated subject from the
// held candidates. It reports whether they are all there (else the input
// must be read again for the others).
func (p *planner) collectHeldDups() bool {
	if len(p.dupCount) == 0 {
		return true
	}
	p.cands.each(func(c *candidate) {
		kh := KeyHash(c.row.Key)
		if p.dupCount[kh] == 0 {
			return
		}
		p.dups[kh] = append(p.dups[kh], p.dupRowOf(&c.row, c.ord, c.fp))
		if _, ok := p.dupKeys[kh]; !ok {
			p.dupKeys[kh] = c.row.Key
		}
	})
	for kh, n := range p.dupCount {
		if len(p.dups[kh]) < n {
			return false
		}
	}
	return true
}

func (p *planner) dupRowOf(r *privsync.Row, ord uint32, fp uint64) dupRow {
	return dupRow{ord: ord, file: p.fileIndex(r.File), line: uint32(min(r.Line, 1<<32-1)),
		fp: fp, ts: effectiveTime(r, p.opts.Rules).UnixNano()}
}

// rowVisitor is one later read of the input; row gets each valid row with
// its ordinal and hashes, checked against the first read as it goes.
type rowVisitor interface {
	row(r *privsync.Row, ord uint32, kh, fp uint64) error
}

// reread reads the input again into v and checks that it met the rows of
// the first read, in the same order.
func (p *planner) reread(ctx context.Context, v rowVisitor) error {
	p.stats.Passes++
	rr := &rereader{p: p, v: v}
	if err := p.src.Read(ctx, rr); err != nil {
		return fmt.Errorf("reading the input again (read %d): %w", p.stats.Passes, err)
	}
	if rr.sum.n != p.n {
		return errors.New("the input changed while it was being read (it has fewer rows now); run again on a stable copy")
	}
	if rr.sum != p.sum {
		return errInputChanged
	}
	return nil
}

type rereader struct {
	p   *planner
	v   rowVisitor
	sum digest
}

func (rr *rereader) Reject(*privsync.RowError) error { return nil }

func (rr *rereader) Row(r *privsync.Row) error {
	if rr.sum.n >= rr.p.n {
		return errInputChanged
	}
	ord := uint32(rr.sum.n)
	kh, fp := Hashes(r)
	rr.sum.add(kh, fp)
	return rr.v.row(r, ord, kh, fp)
}

// dupPass gathers the rows of duplicated subjects that were not held.
type dupPass struct{ p *planner }

func (d *dupPass) row(r *privsync.Row, ord uint32, kh, fp uint64) error {
	p := d.p
	if p.dupCount[kh] == 0 || p.candidateByOrd(ord) != nil {
		return nil
	}
	p.dups[kh] = append(p.dups[kh], p.dupRowOf(r, ord, fp))
	if _, ok := p.dupKeys[kh]; !ok {
		p.dupKeys[kh] = privsync.Key{Vendor: r.Vendor, IDType: r.IDType, SubjectID: clone(r.SubjectID)}
	}
	return nil
}

// overflowPass holds and decides the rows to look at that did not fit in
// memory during the first pass.
type overflowPass struct {
	p    *planner
	ctx  context.Context
	held uint32 // ordinals below it were held from the first pass
}

func (o *overflowPass) row(r *privsync.Row, ord uint32, _, fp uint64) error {
	p := o.p
	if ord < o.held || p.skip[ord] || p.set.Has(fp) {
		return nil
	}
	c := candidate{row: *r, ord: ord, fp: fp}
	c.row.SubjectID = clone(r.SubjectID)
	c.row.AccessRequest = clone(r.AccessRequest)
	c.row.File = p.files[p.fileIndex(r.File)]
	if p.cands.len() >= p.opts.LookupChunk {
		// The first time, this decides the rows held from the first pass
		// too: a chunk at a time, so a million held rows do not become a
		// million lookups, states and entries at once. The chunks they
		// free hold the rows of this read.
		if err := p.flushCandidates(o.ctx); err != nil {
			return err
		}
	}
	p.hold(c)
	return nil
}
