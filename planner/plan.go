package planner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/privsync/privsync"
)

// RowHandler receives the rows of a Source.
type RowHandler interface {
	Row(r *privsync.Row) error // r may be reused after Row returns
	Reject(e *privsync.RowError) error
}

// Source streams the input. Every call to Read yields the same rows in the
// same order: the planner reads again only when the rows it must look at
// more closely do not fit in memory, or to fetch the rows of a subject
// named twice that it did not hold.
type Source interface {
	Read(ctx context.Context, h RowHandler) error
}

// Ledger is what the planner reads of the ledger.
type Ledger interface {
	// Settled returns the fingerprints of every row fully dealt with.
	Settled(ctx context.Context) (*FPSet, error)
	// Lookup returns the state of each key, in the order given.
	Lookup(ctx context.Context, keys []privsync.Key) ([]State, error)
	// Restricted calls fn for every subject of the named vendors that holds
	// restrictions (for snapshot mode).
	Restricted(ctx context.Context, vendors []string, fn func(privsync.Key, State) error) error
}

// Sink receives the plan as it is decided. A dry run counts; a run writes
// everything into the ledger in one transaction.
type Sink interface {
	// Batch announces a new batch, before the first entry placed in it.
	Batch(ctx context.Context, b *Batch) error
	// Entry is one subject's decision (only Send and Settle verdicts, and
	// the notes that come with them, reach the sink).
	Entry(ctx context.Context, e *Entry) error
	// Reject records an invalid row; fp recognises it on later runs.
	Reject(ctx context.Context, e *privsync.RowError, fp uint64) error
}

// Entry is one subject's decision, with what the ledger needs to record it.
type Entry struct {
	Key           privsync.Key
	File          string // where the row came from ("" for a snapshot clear)
	Line          int64
	FP            uint64    // the row's fingerprint (0 for a snapshot clear)
	UpdatedAt     time.Time // the row's effective updated_at
	AccessRequest string
	Prior         State
	Decision      Decision
	Batches       []int // the batch of each of Decision.Ops
}

// Options tune a plan.
type Options struct {
	Vendors  map[string]privsync.Kind
	Limits   map[string]int // per vendor: most items per request
	Rules    Rules
	Snapshot bool
	// MaxCandidates bounds how many rows are held in memory for a closer
	// look; beyond it the input is read a second time. 0 means 1,000,000.
	MaxCandidates int
	// LookupChunk is how many subjects are looked up in the ledger at once.
	LookupChunk int
}

// Stats counts what a plan found, in the shape `plan --format json` prints.
type Stats struct {
	Operations map[string]map[privsync.Operation]int `json:"operations"`
	Outcomes   struct {
		Unsupported int `json:"unsupported"`
		Conflict    int `json:"conflict"`
		Rejected    int `json:"rejected"`
		Stale       int `json:"stale"`
	} `json:"outcomes"`
	Unchanged  int   `json:"unchanged"`
	Waiting    int   `json:"waiting"`
	Superseded int   `json:"superseded"`
	Rows       int64 `json:"rows"`
	// Passes is how many times the input was read: 1; one more when rows
	// of a subject named twice were not held in memory (settled, or past
	// MaxCandidates); one more when the changes did not fit in memory.
	Passes int `json:"-"`
}

// Changes is the number of operations the plan sends.
func (s *Stats) Changes() int {
	n := 0
	for _, ops := range s.Operations {
		for _, c := range ops {
			n += c
		}
	}
	return n
}

// candidate is a row held in memory for a closer look.
type candidate struct {
	row privsync.Row
	ord uint32
	fp  uint64
}

// dupRow is what resolving a subject named by several rows needs of each.
type dupRow struct {
	ord  uint32
	file int32
	line uint32
	fp   uint64
	ts   int64 // effective updated_at, unix nanoseconds
}

type planner struct {
	opts  Options
	src   Source
	led   Ledger
	sink  Sink
	set   *FPSet
	stats Stats

	files []string
	// n counts the valid rows of the first pass (a row's ordinal is its
	// position among them) and sum digests their hashes in order, so a
	// later read can tell that the input changed in between.
	n   int
	sum digest
	// keys holds every valid row's key hash, and only that (8 bytes a row):
	// duplicates are found by sorting it once the first pass is over, and a
	// snapshot asks it whether the input names a subject. What resolving
	// duplicates needs of their rows (time, fingerprint, line) is taken
	// from the held candidates, or read again from the input for the rare
	// duplicate rows that were not held.
	keys keySet
	// dupCount is how many rows name each subject named more than once.
	dupCount map[uint64]int
	// dups holds, per key hash of dupCount, its rows (put in input order
	// when they are resolved).
	dups map[uint64][]dupRow
	// dupKeys names the keys seen twice, so the rejects of conflicting
	// rows name their subject.
	dupKeys    map[uint64]privsync.Key
	dupRejects []dupReject
	skip       map[uint32]bool // ordinals that lose to a later row or conflict
	// settledRows counts the rows whose request the ledger has settled:
	// unchanged, unless a later or conflicting row of their subject drops them.
	settledRows int

	cands    candidates
	chunk    []*candidate // the held rows being decided, reused
	overflow bool
	batcher  *batcher
}

// Plan reads the input once (two or three times when it must), diffs it
// against the ledger and hands every decision to the sink. It returns the
// counts.
func Plan(ctx context.Context, src Source, led Ledger, sink Sink, opts Options) (*Stats, error) {
	if opts.MaxCandidates <= 0 {
		opts.MaxCandidates = 1_000_000
	}
	if opts.LookupChunk <= 0 {
		opts.LookupChunk = 50_000
	}
	p := &planner{opts: opts, src: src, led: led, sink: sink,
		dups: map[uint64][]dupRow{}, dupKeys: map[uint64]privsync.Key{}, skip: map[uint32]bool{}}
	p.stats.Operations = map[string]map[privsync.Operation]int{}
	p.batcher = newBatcher(sink, opts.Limits)
	set, err := led.Settled(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading settled rows from the ledger: %w", err)
	}
	p.set = set
	p.stats.Passes = 1
	first := &firstPass{p: p, ctx: ctx, win: make([]pendingRow, 0, probeWindow)}
	if err := src.Read(ctx, first); err != nil {
		return nil, err
	}
	first.flush()
	p.dupCount = p.keys.seal(opts.Snapshot)
	// Subjects named by several rows: their rows held in memory are at
	// hand; the others are read again (rare: only when a duplicate row was
	// settled, or beyond the held candidates).
	if !p.collectHeldDups() {
		if err := p.reread(ctx, &dupPass{p: p}); err != nil {
			return nil, err
		}
	}
	p.resolveDuplicates()
	p.stats.Unchanged += p.settledRows
	// A further read for the rows that did not fit in memory.
	if p.overflow {
		held := uint32(0)
		if c := p.cands.last(); c != nil {
			held = c.ord + 1
		}
		if err := p.reread(ctx, &overflowPass{p: p, ctx: ctx, held: held}); err != nil {
			return nil, err
		}
	}
	if err := p.rejectConflicts(ctx); err != nil {
		return nil, err
	}
	if err := p.flushCandidates(ctx); err != nil {
		return nil, err
	}
	if opts.Snapshot {
		if err := p.snapshot(ctx); err != nil {
			return nil, err
		}
	}
	// A copy: a pointer into p would keep the planner's key set and held
	// rows reachable for as long as the caller keeps the figures (a whole
	// run's execution).
	st := p.stats
	return &st, nil
}

type firstPass struct {
	p   *planner
	ctx context.Context
	// win holds the last rows read, probed against the settled set
	// together: the probes' cache misses then overlap instead of queuing
	// one per row. Holding a row copy is safe: ingest's strings are
	// immutable Go strings, never views of a reused buffer.
	win     []pendingRow
	fps     []uint64 // the window's fingerprints, reused
	settled []bool   // their probe results, reused
}

type pendingRow struct {
	row privsync.Row
	ord uint32
	fp  uint64
}

// probeWindow is how many rows are probed together.
const probeWindow = 256

func (f *firstPass) Reject(e *privsync.RowError) error {
	f.p.stats.Rows++
	return f.p.reject(f.ctx, e)
}

func (f *firstPass) Row(r *privsync.Row) error {
	p := f.p
	p.stats.Rows++
	if p.n == math.MaxUint32 {
		return errors.New("the input holds more than 4,294,967,295 rows: split it")
	}
	ord := uint32(p.n)
	p.n++
	kh, fp := Hashes(r)
	p.keys.add(kh)
	p.sum.add(kh, fp)
	fi := p.fileIndex(r.File)
	f.win = append(f.win, pendingRow{row: *r, ord: ord, fp: fp})
	f.win[len(f.win)-1].row.File = p.files[fi]
	if len(f.win) == probeWindow {
		f.flush()
	}
	return nil
}

// flush probes the window's rows and holds the ones not settled.
func (f *firstPass) flush() {
	p := f.p
	f.fps = f.fps[:0]
	for i := range f.win {
		f.fps = append(f.fps, f.win[i].fp)
	}
	if cap(f.settled) < len(f.fps) {
		f.settled = make([]bool, probeWindow)
	}
	settled := f.settled[:len(f.fps)]
	p.set.HasAll(f.fps, settled)
	for i := range f.win {
		w := &f.win[i]
		if settled[i] {
			p.settledRows++
			continue
		}
		if p.cands.len() >= p.opts.MaxCandidates {
			p.overflow = true
			continue
		}
		c := candidate{row: w.row, ord: w.ord, fp: w.fp}
		c.row.SubjectID = clone(w.row.SubjectID)
		c.row.AccessRequest = clone(w.row.AccessRequest)
		p.hold(c)
	}
	clear(f.win)
	f.win = f.win[:0]
}

// hold appends c to the held candidates.
func (p *planner) hold(c candidate) { p.cands.add(c) }

// clone copies a string that shares the memory of its CSV record, so a
// held candidate does not keep the whole line alive. (Vendor and IDType
// are interned by ingest and kept as they are.)
func clone(s string) string { return string([]byte(s)) }

func (p *planner) fileIndex(name string) int32 {
	if n := len(p.files); n > 0 && p.files[n-1] == name {
		return int32(n - 1)
	}
	if i := slices.Index(p.files, name); i >= 0 {
		return int32(i)
	}
	p.files = append(p.files, name)
	return int32(len(p.files) - 1)
}

func (p *planner) reject(ctx context.Context, e *privsync.RowError) error {
	fp := RejectFingerprint(e)
	if p.set.Has(fp) {
		return nil // reported on an earlier run
	}
	p.stats.Outcomes.Rejected++
	return p.sink.Reject(ctx, e, fp)
}

// dupReject is a row rejected for conflicting with another row of its
// subject; its vendor and subject id are filled in before it is reported.
type dupReject struct {
	kh  uint64
	err privsync.RowError
}

// resolveDuplicates settles every subject named by more than one row: the
// row with the latest updated_at wins; rows tied at the latest time that
// ask for different things cannot be ordered and are rejected.
func (p *planner) resolveDuplicates() {
	keys := make([]uint64, 0, len(p.dups))
	for kh := range p.dups {
		keys = append(keys, kh)
	}
	slices.Sort(keys) // deterministic report order
	for _, kh := range keys {
		rows := p.dups[kh]
		slices.SortFunc(rows, func(a, b dupRow) int { return cmp.Compare(a.ord, b.ord) })
		latest := int64(math.MinInt64) // updated_at may be before 1970: negative
		for i := range rows {
			latest = max(latest, rows[i].ts)
		}
		var top []*dupRow
		for i := range rows {
			if rows[i].ts == latest {
				top = append(top, &rows[i])
			} else {
				p.drop(&rows[i])
				p.stats.Superseded++
			}
		}
		winner := top[len(top)-1]
		conflicting := false
		for _, r := range top {
			if r.fp != winner.fp {
				conflicting = true
			}
		}
		if !conflicting { // identical duplicates: keep the last, drop the rest
			for _, r := range top[:len(top)-1] {
				p.drop(r)
				p.stats.Superseded++
			}
			continue
		}
		lines := make([]string, len(top))
		for i, r := range top {
			lines[i] = fmt.Sprintf("%s row %d", p.files[r.file], r.line)
		}
		for _, r := range top {
			p.drop(r)
			p.dupRejects = append(p.dupRejects, dupReject{kh: kh, err: privsync.RowError{File: p.files[r.file], Line: int64(r.line), Column: "updated_at",
				Reason: fmt.Sprintf("conflicting rows for the same subject (%s) and no later updated_at to choose between them", joinLines(lines))}})
		}
	}
	p.dups = nil
}

// rejectConflicts reports the rows resolveDuplicates rejected, named.
func (p *planner) rejectConflicts(ctx context.Context) error {
	for i := range p.dupRejects {
		d := &p.dupRejects[i]
		d.err.Vendor, d.err.SubjectID = p.dupKeys[d.kh].Vendor, p.dupKeys[d.kh].SubjectID
		if err := p.reject(ctx, &d.err); err != nil {
			return err
		}
	}
	p.dupRejects = nil
	return nil
}

// drop sets aside a row that loses to another row of its subject.
func (p *planner) drop(r *dupRow) {
	p.skip[r.ord] = true
	if p.set.Has(r.fp) {
		p.settledRows--
	}
}

func joinLines(ls []string) string {
	if len(ls) > 4 {
		ls = append(ls[:4:4], fmt.Sprintf("and %d more", len(ls)-4))
	}
	s := ""
	for i, l := range ls {
		if i > 0 {
			s += ", "
		}
		s += l
	}
	return s
}

func (p *planner) flushCandidates(ctx context.Context) error {
	for p.cands.len() > 0 {
		if err := p.decideChunk(ctx, min(p.cands.len(), p.opts.LookupChunk)); err != nil {
			return err
		}
	}
	return nil
}

// decideChunk looks up the subjects of the first n held rows (at most
// LookupChunk), decides each row and hands the decisions to the sink; it
// drops them from p.cands.
func (p *planner) decideChunk(ctx context.Context, n int) error {
	p.chunk = p.cands.front(p.chunk[:0], n)
	live := make([]*candidate, 0, n) // the rows not dropped
	keys := make([]privsync.Key, 0, n)
	for _, c := range p.chunk {
		if !p.skip[c.ord] {
			live = append(live, c)
			keys = append(keys, c.row.Key)
		}
	}
	states, err := p.led.Lookup(ctx, keys)
	if err != nil {
		return fmt.Errorf("looking up subjects in the ledger: %w", err)
	}
	for i, c := range live {
		fp := c.fp
		kind := p.opts.Vendors[c.row.Vendor]
		d := Decide(kind, &c.row, states[i], fp, p.opts.Rules)
		e := &Entry{Key: c.row.Key, File: c.row.File, Line: c.row.Line, FP: fp,
			UpdatedAt: time.Unix(0, effectiveTime(&c.row, p.opts.Rules).UnixNano()).UTC(), AccessRequest: c.row.AccessRequest,
			Prior: states[i], Decision: d}
		if err := p.emit(ctx, e); err != nil {
			return err
		}
	}
	clear(p.chunk)
	p.cands.drop(n)
	return nil
}

func (p *planner) emit(ctx context.Context, e *Entry) error {
	switch e.Decision.Verdict {
	case Unchanged:
		p.stats.Unchanged++
		return nil
	case Stale:
		p.stats.Outcomes.Stale++
		return nil
	case Waiting:
		p.stats.Waiting++
		return nil
	}
	for _, n := range e.Decision.Notes {
		switch n.Outcome {
		case privsync.OutcomeUnsupported:
			p.stats.Outcomes.Unsupported++
		case privsync.OutcomeConflict:
			p.stats.Outcomes.Conflict++
		}
	}
	if len(e.Decision.Ops) > 0 {
		ops := p.stats.Operations[e.Key.Vendor]
		if ops == nil {
			ops = map[privsync.Operation]int{}
			p.stats.Operations[e.Key.Vendor] = ops
		}
		e.Batches = make([]int, len(e.Decision.Ops))
		after := 0
		for i, op := range e.Decision.Ops {
			ops[op.Op]++
			b, err := p.batcher.place(ctx, e.Key.Vendor, op.Op, after)
			if err != nil {
				return err
			}
			e.Batches[i] = b
			after = b
		}
	} else if len(e.Decision.Notes) == 0 {
		p.stats.Unchanged++ // a new row that asks for nothing the vendor lacks
	}
	return p.sink.Entry(ctx, e)
}

// snapshot clears the restrictions of every subject the ledger holds with
// restrictions that the input does not name.
func (p *planner) snapshot(ctx context.Context) error {
	var vendors []string
	for v, k := range p.opts.Vendors {
		if k == privsync.KindSFMC {
			vendors = append(vendors, v)
		}
	}
	slices.Sort(vendors)
	return p.led.Restricted(ctx, vendors, func(k privsync.Key, st State) error {
		if p.keys.has(KeyHash(k)) {
			return nil
		}
		d := DecideAbsent(st)
		if d.Verdict != Send {
			return nil
		}
		if p.opts.Rules.Now.Before(st.RetryAt) {
			p.stats.Waiting++ // backing off after a failure, as Decide does
			return nil
		}
		// Absence is a row asking for nothing: its fingerprint settles it.
		return p.emit(ctx, &Entry{Key: k, FP: Fingerprint(&privsync.Row{Key: k}), UpdatedAt: p.opts.Rules.Now, Prior: st, Decision: d})
	})
}

// Empty is the ledger of a first run: it holds nothing.
type Empty struct{}

// Settled implements Ledger.
func (Empty) Settled(context.Context) (*FPSet, error) { return NewFPSet(), nil }

// Lookup implements Ledger.
func (Empty) Lookup(_ context.Context, keys []privsync.Key) ([]State, error) {
	return make([]State, len(keys)), nil
}

// Restricted implements Ledger.
func (Empty) Restricted(context.Context, []string, func(privsync.Key, State) error) error { return nil }

// Discard is the sink of a dry run: the plan is only counted.
type Discard struct{}

// Batch implements Sink.
func (Discard) Batch(context.Context, *Batch) error { return nil }

// Entry implements Sink.
func (Discard) Entry(context.Context, *Entry) error { return nil }

// Reject implements Sink.
func (Discard) Reject(context.Context, *privsync.RowError, uint64) error { return nil }

// candidateByOrd returns the held row of ordinal o, or nil.
func (p *planner) candidateByOrd(o uint32) *candidate { return p.cands.byOrd(o) }
