package planner

import (
	"cmp"
	"slices"
	"sort"
)

// candChunk is how many held candidates one chunk of a candidates store
// holds (~1.3 MB).
const candChunk = 8192

// candidates holds the rows held for a closer look, in input order, in
// fixed-size chunks: nothing is copied as they grow (a slice doubling to
// a million rows of ~170 bytes copied 130 MB, into fresh pages each time:
// 5% of a first run's CPU). A few chunks decided and dropped from the
// front are kept for reuse by later adds (the overflow read holds a lookup
// chunk at a time); the rest are let go.
type candidates struct {
	chunks [][]candidate // every chunk full but the last
	off    int           // candidates already dropped from chunks[0]
	n      int           // candidates held
	spare  [][]candidate // emptied chunks
}

// maxSpare is how many emptied chunks a store keeps: enough for the
// default lookup chunk (50,000 rows).
const maxSpare = 8

func (s *candidates) len() int { return s.n }

func (s *candidates) add(c candidate) {
	if k := len(s.chunks); k == 0 || len(s.chunks[k-1]) == cap(s.chunks[k-1]) {
		var ch []candidate
		if k := len(s.spare); k > 0 {
			ch, s.spare = s.spare[k-1][:0], s.spare[:k-1]
		} else {
			ch = make([]candidate, 0, candChunk)
		}
		s.chunks = append(s.chunks, ch)
	}
	last := &s.chunks[len(s.chunks)-1]
	*last = append(*last, c)
	s.n++
}

// each calls fn for every held candidate, in order.
func (s *candidates) each(fn func(c *candidate)) {
	for i, ch := range s.chunks {
		if i == 0 {
			ch = ch[s.off:]
		}
		for j := range ch {
			fn(&ch[j])
		}
	}
}

// front appends the first n candidates to dst.
func (s *candidates) front(dst []*candidate, n int) []*candidate {
	for i, ch := range s.chunks {
		if i == 0 {
			ch = ch[s.off:]
		}
		for j := range ch {
			if n == 0 {
				return dst
			}
			dst = append(dst, &ch[j])
			n--
		}
	}
	return dst
}

// drop removes the first n candidates.
func (s *candidates) drop(n int) {
	s.n -= n
	for n > 0 {
		ch := s.chunks[0]
		avail := len(ch) - s.off
		if n < avail {
			s.off += n
			return
		}
		n -= avail
		if len(s.spare) < maxSpare {
			clear(ch) // let go of the rows' strings
			s.spare = append(s.spare, ch)
		}
		s.chunks, s.off = s.chunks[1:], 0
	}
}

// last returns the last candidate held, or nil.
func (s *candidates) last() *candidate {
	if s.n == 0 {
		return nil
	}
	ch := s.chunks[len(s.chunks)-1]
	return &ch[len(ch)-1]
}

// byOrd returns the held candidate of ordinal o, or nil.
func (s *candidates) byOrd(o uint32) *candidate {
	// The chunk: the last whose first ordinal is at most o.
	i := sort.Search(len(s.chunks), func(i int) bool { return s.first(i).ord > o }) - 1
	if i < 0 {
		return nil
	}
	ch := s.chunks[i]
	if i == 0 {
		ch = ch[s.off:]
	}
	j, ok := slices.BinarySearchFunc(ch, o, func(c candidate, o uint32) int { return cmp.Compare(c.ord, o) })
	if !ok {
		return nil
	}
	return &ch[j]
}

func (s *candidates) first(i int) *candidate {
	if i == 0 {
		return &s.chunks[0][s.off]
	}
	return &s.chunks[i][0]
}
