package ledger

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

// querier is what reads need: the database, or the transaction that holds
// the only connection while a plan is written.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// reader answers the planner's questions through a querier; d, when set,
// holds the prepared statements (a read-only ledger has none).
type reader struct {
	q querier
	d *DB
}

var _ planner.Ledger = reader{}

// Reader returns the planner's view of the ledger (for a dry run).
func (d *DB) Reader() planner.Ledger { return reader{d.db, d} }

// Settled loads the settled fingerprints: the buckets, in bucket order
// (so their concatenation is sorted), then the journal.
func (r reader) Settled(ctx context.Context) (*planner.FPSet, error) {
	// How many buckets there are, at most, to size the set: the highest
	// bucket number is one read of the table's last page, where COUNT(*)
	// walked the pages of every bucket's blob (1 s of a 10M-row plan's 8).
	var buckets int
	if err := r.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(bucket), -1) + 1 FROM fp_buckets`).Scan(&buckets); err != nil {
		return nil, fmt.Errorf("counting the settled set's buckets: %w", err)
	}
	restore, err := r.smallCache(ctx)
	if err != nil {
		return nil, err
	}
	defer restore()
	fps, err := r.scanSettled(ctx, buckets)
	if err != nil {
		return nil, fmt.Errorf("reading the settled set: %w", err)
	}
	restore()
	set := planner.NewFPSetSorted(fps)
	add, remove, err := r.delta(ctx)
	if err != nil {
		return nil, err
	}
	set.Apply(add, remove)
	return set, nil
}

// settledChunk is a run of buckets' blobs handed from the scan to the
// decoder (each blob cut to whole fingerprints); hint, when not 0, is the
// capacity to give the set.
type settledChunk struct {
	b    []byte
	hint int
}

// settledChunkBytes is the size of a settledChunk's buffer (a variable
// for tests).
var settledChunkBytes = 256 << 10

// scanSettled reads the buckets' blobs in bucket order and returns their
// fingerprints, concatenated. SQLite's scan runs on this goroutine and
// the decoding on another: writing the set is the first touch of 80 MB of
// fresh memory at 10M rows, whose page faults cost as much as the scan,
// and the plan's other core would idle meanwhile.
func (r reader) scanSettled(ctx context.Context, buckets int) ([]uint64, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT fps FROM fp_buckets ORDER BY bucket`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	full, free := make(chan settledChunk, 4), make(chan []byte, 5)
	for range 5 {
		free <- make([]byte, 0, settledChunkBytes)
	}
	var fps []uint64
	decoded := make(chan struct{})
	go func() {
		defer close(decoded)
		for c := range full {
			if fps == nil && c.hint > 0 {
				fps = planner.MakeFingerprints(c.hint)
			}
			fps = appendBlob(fps, c.b)
			free <- c.b[:0]
		}
	}()
	cur, hint, sized := settledChunk{b: <-free}, 0, false
	for rows.Next() {
		var blob sql.RawBytes // copied into cur before Next
		if err = rows.Scan(&blob); err != nil {
			break
		}
		if !sized && len(blob) >= 4*8 {
			// Buckets hold about as many fingerprints each: size the set
			// once rather than copying 80 MB as it grows. (A small set
			// leaves most buckets empty: sized so, a set of a few dozen
			// rows cost a megabyte cleared per plan.)
			hint, sized = buckets*(len(blob)/8+1)*9/8, true
			if len(cur.b) == 0 {
				cur.hint = hint
			}
		}
		if len(cur.b) > 0 && len(cur.b)+len(blob) > cap(cur.b) {
			full <- cur
			cur = settledChunk{b: <-free}
		}
		if len(cur.b) == 0 && cur.hint == 0 && sized {
			cur.hint = hint
		}
		cur.b = append(cur.b, blob[:len(blob)&^7]...)
	}
	if len(cur.b) > 0 {
		full <- cur
	}
	close(full)
	<-decoded
	if err != nil {
		return nil, err
	}
	return fps, rows.Err()
}

// settledScanCache is SQLite's page cache while the settled set is read,
// in KiB (as PRAGMA cache_size takes a negative number).
const settledScanCache = 2048

// smallCache shrinks the connection's page cache while the settled set is
// read, and returns what restores it. The set's 80 MB at 10M rows are read
// once, in order: through the ledger's 64 MiB cache every page was a fresh
// allocation, and closing the ledger freed them one by one (1.4 s of
// loading and 0.8 s of closing of a 6 s plan); through 2 MiB the same
// pages are reused (0.45 s, nothing to free). Pages already in the cache
// that a write has dirtied are never evicted by shrinking it.
func (r reader) smallCache(ctx context.Context) (restore func(), err error) {
	var size int64
	if err := r.q.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&size); err != nil {
		return nil, fmt.Errorf("reading the ledger's page cache size: %w", err)
	}
	if size < 0 && -size <= settledScanCache || size >= 0 && size*4 <= settledScanCache {
		return func() {}, nil
	}
	if _, err := r.q.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = %d`, -settledScanCache)); err != nil {
		return nil, fmt.Errorf("shrinking the ledger's page cache: %w", err)
	}
	done := false
	return func() {
		if !done {
			done = true
			// Best effort: a failure leaves a smaller cache, not a wrong answer.
			r.q.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA cache_size = %d`, size))
		}
	}, nil
}

// appendBlob appends the little-endian uint64s of a bucket's blob.
func appendBlob(fps []uint64, blob []byte) []uint64 {
	for i := 0; i+8 <= len(blob); i += 8 {
		fps = append(fps, binary.LittleEndian.Uint64(blob[i:]))
	}
	return fps
}

func (r reader) delta(ctx context.Context) (add, remove []uint64, err error) {
	rows, err := r.q.QueryContext(ctx, `SELECT fp, present FROM fp_delta`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var fp int64
		var present bool
		if err := rows.Scan(&fp, &present); err != nil {
			return nil, nil, err
		}
		if present {
			add = append(add, uint64(fp))
		} else {
			remove = append(remove, uint64(fp))
		}
	}
	return add, remove, rows.Err()
}

// Compact folds the fingerprint journal into the buckets, rewriting only
// the buckets it changes.
func (d *DB) Compact(ctx context.Context) error {
	return d.inTx(ctx, func(tx *sql.Tx) error { return d.foldSettled(ctx, tx, nil, nil) })
}

// fold applies the journal (fp_delta), then the lists of adds and remove,
// to the buckets, rewriting only the buckets they touch, one bucket at a
// time: what it holds beyond its arguments is one bucket, so folding the
// ten million fingerprints a backfill settles copies none of them. It
// sorts each list in place (they are sets).
func fold(ctx context.Context, tx *sql.Tx, adds [][]uint64, remove []uint64) error {
	jAdd, jRemove, err := reader{tx, nil}.delta(ctx)
	if err != nil {
		return err
	}
	// The journal first, then the rest: two stages of (adds, removes).
	stages := [2][2][][]uint64{{{jAdd}, {jRemove}}, {adds, {remove}}}
	var lists []*[]uint64 // every list, to find the next bucket touched
	for _, st := range stages {
		for _, side := range st {
			for i := range side {
				if len(side[i]) > 0 {
					slices.Sort(side[i])
					lists = append(lists, &side[i])
				}
			}
		}
	}
	if len(lists) == 0 {
		return nil
	}
	// Up to 65,536 buckets are read and written: the statements are
	// prepared once (parsing them per bucket was most of a fold's time),
	// and run without a cancellation watcher each (see quick).
	ctx = quick(ctx)
	get, err := tx.PrepareContext(ctx, `SELECT fps FROM fp_buckets WHERE bucket = ?`)
	if err != nil {
		return err
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO fp_buckets(bucket, fps) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	defer put.Close()
	// take appends the fingerprints of bucket b at the head of each list
	// of a side (sorted: in bucket order) to into, and moves the lists
	// past them.
	take := func(into []uint64, side [][]uint64, b int) []uint64 {
		for i, l := range side {
			n := 0
			for n < len(l) && planner.Bucket(l[n]) == b {
				n++
			}
			into = append(into, l[:n]...)
			side[i] = l[n:]
		}
		return into
	}
	var fps, add, rem []uint64
	var blob []byte
	for {
		b := -1
		for _, l := range lists {
			if len(*l) > 0 && (b < 0 || planner.Bucket((*l)[0]) < b) {
				b = planner.Bucket((*l)[0])
			}
		}
		if b < 0 {
			break
		}
		blob = blob[:0]
		if err := get.QueryRowContext(ctx, b).Scan(&blob); err != nil && err != sql.ErrNoRows {
			return err
		}
		set := planner.NewFPSetSorted(appendBlob(fps[:0], blob))
		for _, st := range stages {
			add, rem = take(add[:0], st[0], b), take(rem[:0], st[1], b)
			set.Apply(add, rem)
		}
		fps = set.BucketOf(b)
		if len(fps) == 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM fp_buckets WHERE bucket = ?`, b); err != nil {
				return err
			}
			continue
		}
		blob = slices.Grow(blob[:0], 8*len(fps))[:8*len(fps)]
		for i, fp := range fps {
			binary.LittleEndian.PutUint64(blob[i*8:], fp)
		}
		if _, err := put.ExecContext(ctx, b, blob); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM fp_delta`)
	return err
}

const subjectCols = `vendor, id_type, subject_id, restrictions, erasure, erased_at, updated_at, access_request, in_flight, settled, retry_at`

func scanSubject(sc interface{ Scan(...any) error }) (privsync.Key, planner.State, error) {
	var k privsync.Key
	var st planner.State
	var erasedAt, updatedAt, retryAt sql.NullInt64
	var inFlight, settled int64
	err := sc.Scan(&k.Vendor, &k.IDType, &k.SubjectID, &st.Restrictions, &st.Erasure, &erasedAt, &updatedAt,
		&st.AccessRequest, &inFlight, &settled, &retryAt)
	st.Known = true
	st.ErasedAt, st.UpdatedAt, st.RetryAt = fromNanos(erasedAt), fromNanos(updatedAt), fromNanos(retryAt)
	st.InFlight, st.Settled = uint64(inFlight), uint64(settled)
	return k, st, err
}

// lookupBatch is how many keys one query asks for (SQLite allows 32,766
// parameters; three per key).
const lookupBatch = 300

func lookupSQL(n int) string {
	return `SELECT ` + subjectCols + ` FROM subjects WHERE (vendor, id_type, subject_id) IN (VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?,?,?),", n), ",") + `)`
}

// sqlLookup looks up a full batch of keys; it is prepared once (hotSQL):
// parsing it for every 300 keys was a fifth of a first run's planning.
var sqlLookup = lookupSQL(lookupBatch)

// Lookup returns each key's state, in the order given; keys the ledger has
// never seen get the zero State.
func (r reader) Lookup(ctx context.Context, keys []privsync.Key) ([]planner.State, error) {
	out := make([]planner.State, len(keys))
	index := make(map[privsync.Key][]int, len(keys))
	for i, k := range keys {
		index[k] = append(index[k], i)
	}
	args := make([]any, 0, 3*lookupBatch)
	for start := 0; start < len(keys); start += lookupBatch {
		part := keys[start:min(start+lookupBatch, len(keys))]
		args = args[:0]
		for _, k := range part {
			args = append(args, k.Vendor, k.IDType, k.SubjectID)
		}
		q := sqlLookup
		if len(part) < lookupBatch {
			q = lookupSQL(len(part))
		}
		var rows *sql.Rows
		var err error
		if r.d != nil {
			rows, err = r.d.query(ctx, r.q, q, args...) // prepared when full
		} else {
			rows, err = r.q.QueryContext(ctx, q, args...)
		}
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			k, st, err := scanSubject(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			for _, i := range index[k] {
				out[i] = st
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Restricted calls fn for every subject of the vendors holding restrictions.
func (r reader) Restricted(ctx context.Context, vendors []string, fn func(privsync.Key, planner.State) error) error {
	for _, v := range vendors {
		// Collect first: fn may write through the same connection. The
		// table is read through (+vendor keeps SQLite off the key index:
		// a row fetched per index entry is ten times slower).
		var keys []privsync.Key
		var states []planner.State
		rows, err := r.q.QueryContext(ctx, `SELECT `+subjectCols+` FROM subjects WHERE +vendor = ? AND restrictions <> 0`, v)
		if err != nil {
			return err
		}
		for rows.Next() {
			k, st, err := scanSubject(rows)
			if err != nil {
				rows.Close()
				return err
			}
			keys, states = append(keys, k), append(states, st)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("listing restricted subjects of %s: %w", v, err)
		}
		for i := range keys {
			if err := fn(keys[i], states[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
