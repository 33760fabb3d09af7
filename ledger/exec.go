package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

// Batch states.
const (
	BatchWaiting   = "waiting"   // follows another batch that is not done yet
	BatchPlanned   = "planned"   // ready to send
	BatchSending   = "sending"   // a request may have left: send again after a crash
	BatchSubmitted = "submitted" // the vendor gave a receipt: poll it
	BatchDone      = "done"      // every item has a final outcome
	BatchSplit     = "split"     // rejected as a whole: its items moved to two halves
)

// Batch is one request's worth of items, as the executor works on it.
type Batch struct {
	ID          int64
	RunID       string
	Vendor      string
	Op          privsync.Operation
	State       string
	Attempts    int
	VendorRef   string
	CreatedAt   time.Time // when it was planned: no request for it can be older
	SubmittedAt time.Time
	Items       []Item // the items without a final outcome
}

// Item is one subject's operation in a batch.
type Item struct {
	ID            int64
	IDType        string
	SubjectID     string
	Op            privsync.Operation
	Restrictions  privsync.Restrictions
	AccessRequest string
	FP            uint64
	Last          bool // no operation of the same row follows it
}

// Result is the final outcome of one item.
type Result struct {
	ItemID  int64
	Outcome privsync.Outcome // completed, accepted, failed or expired
	Detail  string
	DataURL string
}

// OpenBatches returns the batches of a vendor that still have work: ready,
// possibly sent, or waiting for the vendor's confirmation, oldest first.
// Their items are not read (Items is nil): LoadItems reads them when a
// batch is worked on, so a backfill of millions of items holds only the
// batches in hand.
func (d *DB) OpenBatches(ctx context.Context, vendor string) ([]*Batch, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, run_id, vendor, operation, state, attempts, vendor_ref, created_at, submitted_at
		FROM batches WHERE state IN ('planned', 'sending', 'submitted') AND vendor = ? ORDER BY id`, vendor)
	if err != nil {
		return nil, fmt.Errorf("listing open batches of %s: %w", vendor, err)
	}
	defer rows.Close()
	var out []*Batch
	for rows.Next() {
		var b Batch
		var created, sub sql.NullInt64
		if err := rows.Scan(&b.ID, &b.RunID, &b.Vendor, &b.Op, &b.State, &b.Attempts, &b.VendorRef, &created, &sub); err != nil {
			return nil, fmt.Errorf("listing open batches of %s: %w", vendor, err)
		}
		b.CreatedAt, b.SubmittedAt = fromNanos(created), fromNanos(sub)
		out = append(out, &b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing open batches of %s: %w", vendor, err)
	}
	return out, nil
}

// LoadItems reads the items of b that have no final outcome into b.Items.
func (d *DB) LoadItems(ctx context.Context, b *Batch) error {
	return d.loadItems(ctx, d.db, b)
}

const sqlLoadItems = `SELECT id, id_type, subject_id, operation, restrictions, access_request, fp, last
		FROM items WHERE batch_id = ? AND outcome = 'pending' ORDER BY id`

func (d *DB) loadItems(ctx context.Context, q querier, b *Batch) error {
	rows, err := d.query(ctx, q, sqlLoadItems, b.ID)
	if err != nil {
		return fmt.Errorf("loading the items of batch %d: %w", b.ID, err)
	}
	defer rows.Close()
	b.Items = b.Items[:0]
	for rows.Next() {
		var it Item
		var fp int64
		if err := rows.Scan(&it.ID, &it.IDType, &it.SubjectID, &it.Op, &it.Restrictions, &it.AccessRequest, &fp, &it.Last); err != nil {
			return err
		}
		it.FP = uint64(fp)
		b.Items = append(b.Items, it)
	}
	return rows.Err()
}

// MarkSending records that an attempt to send b is about to leave. It is
// committed before the request goes, so a crash leaves b in sending, to be
// sent again.
func (d *DB) MarkSending(ctx context.Context, b *Batch) error {
	// An interrupted run marks nothing sending (and so sends nothing); once
	// begun, the short transaction runs without a cancellation watcher.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("marking batch %d sending: %w", b.ID, err)
	}
	ctx = quick(ctx)
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := d.exec(ctx, tx, sqlMarkSending, d.Now().UnixNano(), b.ID)
		if err != nil {
			return fmt.Errorf("marking batch %d sending: %w", b.ID, err)
		}
		b.State = BatchSending
		b.Attempts++
		return nil
	})
}

// MarkSubmitted records the vendor's receipt for b.
func (d *DB) MarkSubmitted(ctx context.Context, b *Batch, ref string) error {
	ctx = quick(ctx) // a receipt is committed even as the run is interrupted
	now := d.Now()
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := d.exec(ctx, tx, sqlMarkSubmitted, ref, now.UnixNano(), now.UnixNano(), b.ID)
		if err != nil {
			return fmt.Errorf("recording the receipt of batch %d: %w", b.ID, err)
		}
		b.State, b.VendorRef, b.SubmittedAt = BatchSubmitted, ref, now
		return nil
	})
}

// NoteError records the last error met by b (for status), changing nothing else.
func (d *DB) NoteError(ctx context.Context, b *Batch, msg string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE batches SET last_error = ?, updated_at = ? WHERE id = ?`, msg, d.Now().UnixNano(), b.ID)
		return err
	})
}

// Unsend puts a batch that was never accepted back to planned (its vendor
// stopped, or the run was interrupted before the request left).
func (d *DB) Unsend(ctx context.Context, b *Batch, msg string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'planned', last_error = ?, updated_at = ? WHERE id = ?`, msg, d.Now().UnixNano(), b.ID)
		b.State = BatchPlanned
		return err
	})
}

// Split moves the items of a rejected batch into two new halves, so the
// items at fault can be found and the good ones still go through.
func (d *DB) Split(ctx context.Context, b *Batch) ([]*Batch, error) {
	if len(b.Items) < 2 {
		return nil, fmt.Errorf("splitting batch %d: it holds %d item", b.ID, len(b.Items))
	}
	var halves []*Batch
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'split', updated_at = ? WHERE id = ?`, d.Now().UnixNano(), b.ID); err != nil {
			return err
		}
		mid := len(b.Items) / 2
		for _, part := range [][]Item{b.Items[:mid], b.Items[mid:]} {
			res, err := tx.ExecContext(ctx, `INSERT INTO batches(run_id, vendor, operation, state, attempts, created_at, updated_at) VALUES (?, ?, ?, 'planned', ?, ?, ?)`,
				b.RunID, b.Vendor, string(b.Op), b.Attempts, nanos(b.CreatedAt), d.Now().UnixNano())
			if err != nil {
				return err
			}
			id, _ := res.LastInsertId()
			for _, it := range part {
				if _, err := tx.ExecContext(ctx, `UPDATE items SET batch_id = ? WHERE id = ?`, id, it.ID); err != nil {
					return err
				}
			}
			halves = append(halves, &Batch{ID: id, RunID: b.RunID, Vendor: b.Vendor, Op: b.Op, State: BatchPlanned,
				Attempts: b.Attempts, CreatedAt: b.CreatedAt, Items: part})
		}
		// Follow-ups of the rejected batch follow both halves' items:
		// each must wait for the half that holds its predecessor.
		return d.splitFollowers(ctx, tx, b.ID, [2]int64{halves[0].ID, halves[1].ID}, [2]map[subjectKey]bool{subjects(halves[0].Items), subjects(halves[1].Items)})
	})
	if err != nil {
		return nil, fmt.Errorf("splitting batch %d: %w", b.ID, err)
	}
	return halves, nil
}

func subjects(items []Item) map[subjectKey]bool {
	m := make(map[subjectKey]bool, len(items))
	for _, it := range items {
		m[subjectKey{it.IDType, it.SubjectID}] = true
	}
	return m
}

// splitFollowers splits every batch waiting for batch old in two: the
// items of the subjects in group[i] wait for after[i]. The batch split is
// left in state split, and its own followers are split the same way.
func (d *DB) splitFollowers(ctx context.Context, tx *sql.Tx, old int64, after [2]int64, group [2]map[subjectKey]bool) error {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM batches WHERE after_batch = ? AND state = 'waiting'`, old)
	if err != nil {
		return err
	}
	var followers []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		followers = append(followers, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	now := d.Now().UnixNano()
	for _, f := range followers {
		var parts [2]int64
		for i := range parts {
			res, err := tx.ExecContext(ctx, `INSERT INTO batches(run_id, vendor, operation, state, after_batch, attempts, created_at, updated_at)
				SELECT run_id, vendor, operation, 'waiting', ?, attempts, created_at, ? FROM batches WHERE id = ?`, after[i], now, f)
			if err != nil {
				return err
			}
			parts[i], _ = res.LastInsertId()
		}
		fb := &Batch{ID: f}
		if err := d.loadItems(ctx, tx, fb); err != nil {
			return err
		}
		// A follower's subject is in one group; one in neither (it cannot
		// be, but the ledger must not lose it) waits for the second half.
		var moved [2][]Item
		for _, it := range fb.Items {
			i := 1
			if group[0][subjectKey{it.IDType, it.SubjectID}] {
				i = 0
			}
			if _, err := tx.ExecContext(ctx, `UPDATE items SET batch_id = ? WHERE id = ?`, parts[i], it.ID); err != nil {
				return err
			}
			moved[i] = append(moved[i], it)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'split', updated_at = ? WHERE id = ?`, now, f); err != nil {
			return err
		}
		if err := d.splitFollowers(ctx, tx, f, parts, [2]map[subjectKey]bool{subjects(moved[0]), subjects(moved[1])}); err != nil {
			return err
		}
	}
	return nil
}

// failureBackoff is how long a subject whose operation failed waits before
// the next run plans it again: 1 h, doubling per failure, at most 7 days.
func failureBackoff(failures int) time.Duration {
	d := time.Hour << min(failures-1, 8)
	return min(d, maxFailureBackoff)
}

const maxFailureBackoff = 7 * 24 * time.Hour

// Resolve records final outcomes for items of b, and for each its audit
// event in runID's log, all in one transaction: the subject's confirmed
// state changes only on completed or accepted. When b has nothing left
// pending it is done, and the batches that follow it are released; those
// are returned, ready to send.
func (d *DB) Resolve(ctx context.Context, runID string, b *Batch, results []Result) ([]*Batch, error) {
	ctx = quick(ctx) // outcomes are committed even as the run is interrupted
	var released []*Batch
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		now := d.Now()
		failed := map[subjectKey]bool{}
		if err := d.resolveItems(ctx, tx, runID, b, results, failed, now); err != nil {
			return err
		}
		if len(b.Items) > 0 {
			return nil
		}
		if _, err := d.exec(ctx, tx, sqlBatchDone, b.VendorRef, now.UnixNano(), b.ID); err != nil {
			return err
		}
		b.State = BatchDone
		var err error
		released, err = d.release(ctx, tx, runID, b, failed, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording outcomes of batch %d: %w", b.ID, err)
	}
	return released, nil
}

// setMin is the shortest run of like outcomes resolved with one statement
// per table (resolveSet) rather than item by item; a variable for tests,
// which compare both ways.
var setMin = 2

// resolveItems records results for the items of b they name (results for
// items already final are ignored) and drops those items from b.Items,
// inside tx. Subjects whose item did not succeed, and that have an
// operation after it, are added to failed. Runs of consecutive results
// with the same outcome and detail are recorded set-based, with one
// statement per table for the run (a batch confirmed whole is three
// statements, not three per item); the rest item by item. Either way the
// events are appended in the order of results.
func (d *DB) resolveItems(ctx context.Context, tx *sql.Tx, runID string, b *Batch, results []Result, failed map[subjectKey]bool, now time.Time) error {
	byID := make(map[int64]*Item, len(b.Items))
	for i := range b.Items {
		byID[b.Items[i].ID] = &b.Items[i]
	}
	// The set statements join items to subjects one to one: a batch that
	// names a subject twice (the planner makes none) goes item by item.
	set := len(subjects(b.Items)) == len(b.Items)
	var run []*Item
	var runRes Result
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		var err error
		if len(run) >= setMin {
			err = d.resolveSet(ctx, tx, runID, b, run, runRes, now)
		} else {
			for _, it := range run {
				r := runRes
				r.ItemID = it.ID
				if err = d.resolveItem(ctx, tx, runID, b, it, r, now); err != nil {
					break
				}
			}
		}
		run = run[:0]
		return err
	}
	for _, r := range results {
		it := byID[r.ItemID]
		if it == nil {
			continue // already final, or named twice
		}
		delete(byID, r.ItemID)
		if !succeeded(it, r.Outcome) && !it.Last {
			failed[subjectKey{it.IDType, it.SubjectID}] = true
		}
		like := len(run) > 0 && r.Outcome == runRes.Outcome && r.Detail == runRes.Detail && it.Op == run[0].Op
		if !like || !set || r.DataURL != "" {
			if err := flush(); err != nil {
				return err
			}
		}
		if set && r.DataURL == "" {
			if len(run) == 0 {
				runRes = Result{Outcome: r.Outcome, Detail: r.Detail}
			}
			run = append(run, it)
			continue
		}
		if err := d.resolveItem(ctx, tx, runID, b, it, r, now); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	left := b.Items[:0]
	for _, it := range b.Items {
		if byID[it.ID] != nil {
			left = append(left, it)
		}
	}
	b.Items = left
	return nil
}

// The statements resolveSet runs for a run of like outcomes: the items are
// named by a JSON array of their ids (?1 in each), read by json_each.
const (
	sqlSetItems = `UPDATE items SET outcome = ?2, detail = ?3, data_url = '' WHERE id IN (SELECT value FROM json_each(?1)) AND outcome = 'pending'`
	// sqlSetConfirmed is sqlSubjectConfirmed for many items of one
	// operation: ?2 restrict (take each item's restrictions), ?3 erasure
	// (NULL leaves it, 0 clears erased_at, else ?4), ?5 review (take each
	// item's access request); an item with no operation after it settles
	// its row.
	sqlSetConfirmed = `UPDATE subjects SET
		restrictions = CASE WHEN ?2 THEN i.restrictions ELSE subjects.restrictions END,
		erasure = COALESCE(?3, subjects.erasure),
		erased_at = CASE WHEN ?3 IS NULL THEN subjects.erased_at WHEN ?3 = 0 THEN NULL ELSE ?4 END,
		access_request = CASE WHEN ?5 THEN i.access_request ELSE subjects.access_request END,
		in_flight = CASE WHEN i.last THEN 0 ELSE subjects.in_flight END,
		settled = CASE WHEN i.last THEN i.fp ELSE subjects.settled END,
		failures = CASE WHEN i.last THEN 0 ELSE subjects.failures END,
		retry_at = CASE WHEN i.last THEN NULL ELSE subjects.retry_at END
		FROM (SELECT subject, restrictions, access_request, fp, last FROM items WHERE id IN (SELECT value FROM json_each(?1))) AS i
		WHERE subjects.id = i.subject`
	// sqlSetFailed is sqlSubjectFailed and sqlSubjectRetryAt for many
	// items: the back-off of failureBackoff (the SET expressions see the
	// failures before this one: hour << min(new-1, 8), at most ?4), from
	// ?2, and the state made unknown by ?3 (see unknownAfterFailure).
	sqlSetFailed = `UPDATE subjects SET in_flight = 0, failures = subjects.failures + 1,
		retry_at = ?2 + MIN(?5 << MIN(subjects.failures, 8), ?4),
		restrictions = CASE WHEN ?3 = 1 THEN subjects.restrictions | ?6 ELSE subjects.restrictions END,
		erasure = CASE WHEN ?3 = 2 AND subjects.erasure IN (?7, ?8) THEN ?9 ELSE subjects.erasure END
		FROM (SELECT subject FROM items WHERE id IN (SELECT value FROM json_each(?1))) AS i
		WHERE subjects.id = i.subject`
)

// sqlSetEvents appends the events of a run of like outcomes in item order,
// numbered from ?2 + 1; the item's restrictions are written as the report
// writes them (restrictionsSQL).
var sqlSetEvents = `INSERT INTO events(run_id, run_seq, recorded_at, vendor, subject_id, id_type, operation, restrictions,
	outcome, vendor_ref, attempts, detail, item_id)
	SELECT ?3, ?2 + row_number() OVER (ORDER BY id), ?4, ?5, subject_id, id_type, operation,
	CASE WHEN operation = '` + string(privsync.OpRestrict) + `' THEN ` + restrictionsSQL("restrictions") + ` ELSE '' END,
	?6, ?7, ?8, ?9, id FROM items WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id`

// restrictionsSQL is the SQL of privsync.Restrictions.String for the bit
// set in col: the names of its bits, in order, joined by '|'.
func restrictionsSQL(col string) string {
	var parts []string
	for bit := range 7 {
		r := privsync.Restrictions(1 << bit)
		if name := r.String(); name != "" {
			parts = append(parts, fmt.Sprintf("CASE WHEN %s & %d THEN '|%s' ELSE '' END", col, r, name))
		}
	}
	return "substr(" + strings.Join(parts, " || ") + ", 2)"
}

// resolveSet records one result (its ItemID unused) for each of items, all
// of one operation and pending, as resolveItem does for one, with one
// statement per table.
func (d *DB) resolveSet(ctx context.Context, tx *sql.Tx, runID string, b *Batch, items []*Item, r Result, now time.Time) error {
	ids := make([]byte, 0, 12*len(items)+2)
	ids = append(ids, '[')
	for i, it := range items {
		if i > 0 {
			ids = append(ids, ',')
		}
		ids = strconv.AppendInt(ids, it.ID, 10)
	}
	idList := string(append(ids, ']'))
	res, err := d.exec(ctx, tx, sqlSetItems, idList, string(r.Outcome), r.Detail)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(items)) {
		return fmt.Errorf("recording %d outcomes of batch %d: %d items were pending (%v)", len(items), b.ID, n, err)
	}
	op := items[0].Op
	switch {
	case succeeded(items[0], r.Outcome):
		erasure, erasedAt := confirmedErasure(op, now)
		if _, err := d.exec(ctx, tx, sqlSetConfirmed, idList, op == privsync.OpRestrict, erasure, erasedAt, op == privsync.OpReview); err != nil {
			return err
		}
		for _, it := range items {
			if it.Last {
				d.txSettled = append(d.txSettled, it.FP) // see resolveItem
			}
		}
	case r.Outcome == privsync.OutcomeFailed || r.Outcome == privsync.OutcomeExpired:
		unknown := 0
		switch op {
		case privsync.OpRestrict:
			unknown = 1
		case privsync.OpRTBFSuppress, privsync.OpRemoveRTBFSuppress:
			unknown = 2
		}
		if _, err := d.exec(ctx, tx, sqlSetFailed, idList, now.UnixNano(), unknown, int64(maxFailureBackoff), int64(time.Hour),
			int(RestrictionsUnknown), planner.NotErased, planner.Suppressed, planner.MaybeSuppressed); err != nil {
			return err
		}
	default:
		return fmt.Errorf("outcome %q is not final", r.Outcome)
	}
	seq, err := d.eventSeq(ctx, tx, runID)
	if err != nil {
		return err
	}
	if _, err := d.exec(ctx, tx, sqlSetEvents, idList, seq-1, runID, rfc3339(now), b.Vendor, string(r.Outcome), b.VendorRef, b.Attempts, r.Detail); err != nil {
		return fmt.Errorf("recording audit events: %w", err)
	}
	d.nextSeq = &runSeq{run: runID, next: seq + int64(len(items))}
	return nil
}

// confirmedErasure is what a confirmed op makes of the subject's erasure
// state (nil: unchanged) and when.
func confirmedErasure(op privsync.Operation, now time.Time) (erasure, erasedAt any) {
	switch op {
	case privsync.OpRTBFSuppress:
		return 1, now.UnixNano()
	case privsync.OpRemoveRTBFSuppress:
		return 0, nil
	case privsync.OpRTBFDelete, privsync.OpRemove, privsync.OpAnonymize:
		return 2, now.UnixNano()
	}
	return nil, nil
}

// The statements Resolve runs for every item, prepared once (hotSQL).
const (
	sqlItemOutcome = `UPDATE items SET outcome = ?, detail = ?, data_url = ? WHERE id = ?`
	// sqlSubjectConfirmed records what the vendor confirmed; a NULL leaves
	// a column as it is: ?1 restrictions, ?2 erasure (0 clears erased_at,
	// else ?3), ?4 access request, ?5 the settled fingerprint when no
	// operation of the row follows (in flight no more, failures forgiven).
	sqlSubjectConfirmed = `UPDATE subjects SET
		restrictions = COALESCE(?1, restrictions),
		erasure = COALESCE(?2, erasure),
		erased_at = CASE WHEN ?2 IS NULL THEN erased_at WHEN ?2 = 0 THEN NULL ELSE ?3 END,
		access_request = COALESCE(?4, access_request),
		in_flight = CASE WHEN ?5 IS NULL THEN in_flight ELSE 0 END,
		settled = COALESCE(?5, settled),
		failures = CASE WHEN ?5 IS NULL THEN failures ELSE 0 END,
		retry_at = CASE WHEN ?5 IS NULL THEN retry_at ELSE NULL END
		WHERE vendor = ?6 AND id_type = ?7 AND subject_id = ?8`
	sqlSubjectFailed = `UPDATE subjects SET in_flight = 0, failures = failures + 1
		WHERE vendor = ? AND id_type = ? AND subject_id = ? RETURNING failures`
	sqlSubjectRetryAt = `UPDATE subjects SET retry_at = ? WHERE vendor = ? AND id_type = ? AND subject_id = ?`
	sqlMarkSending    = `UPDATE batches SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?`
	sqlMarkSubmitted  = `UPDATE batches SET state = 'submitted', vendor_ref = ?, submitted_at = ?, last_error = '', updated_at = ? WHERE id = ?`
	sqlBatchDone      = `UPDATE batches SET state = 'done', vendor_ref = ?, updated_at = ? WHERE id = ?`
)

// hotSQL are the statements prepared when the ledger opens.
var hotSQL = []string{sqlItemOutcome, sqlSubjectConfirmed, sqlSubjectFailed, sqlSubjectRetryAt,
	sqlMarkSending, sqlMarkSubmitted, sqlBatchDone, sqlNextEventSeq, insertEventSQL, sqlLoadItems, sqlRunEvents, sqlLookup,
	sqlSetItems, sqlSetConfirmed, sqlSetFailed, sqlSetEvents}

func (d *DB) resolveItem(ctx context.Context, tx *sql.Tx, runID string, b *Batch, it *Item, r Result, now time.Time) error {
	if _, err := d.exec(ctx, tx, sqlItemOutcome, string(r.Outcome), r.Detail, r.DataURL, it.ID); err != nil {
		return err
	}
	key := []any{b.Vendor, it.IDType, it.SubjectID}
	switch {
	case succeeded(it, r.Outcome):
		var restr, access, settled any
		erasure, erasedAt := confirmedErasure(it.Op, now)
		switch it.Op {
		case privsync.OpRestrict:
			restr = int(it.Restrictions)
		case privsync.OpReview:
			access = it.AccessRequest
		}
		if it.Last {
			settled = int64(it.FP)
		}
		if _, err := d.exec(ctx, tx, sqlSubjectConfirmed, append([]any{restr, erasure, erasedAt, access, settled}, key...)...); err != nil {
			return err
		}
		if it.Last {
			// The subject's settled column is the truth; the set of settled
			// fingerprints only spares the next plan a lookup, so it is
			// folded in once, in order, when the run finishes (see
			// addSettled): an insert per item into a table keyed by a
			// random hash dirtied a page per item.
			d.txSettled = append(d.txSettled, it.FP)
		}
	case r.Outcome == privsync.OutcomeFailed || r.Outcome == privsync.OutcomeExpired:
		// Nothing confirmed: the subject is planned again after a back-off
		// (an erasure the vendor forgot is never taken as done).
		var failures int
		if err := d.queryRow(ctx, tx, sqlSubjectFailed, key...).Scan(&failures); err != nil {
			return err
		}
		if _, err := d.exec(ctx, tx, sqlSubjectRetryAt, append([]any{now.Add(failureBackoff(failures)).UnixNano()}, key...)...); err != nil {
			return err
		}
		// The vendor may have acted on a request it forgot, or whose answers
		// were lost: what it holds is no longer known, so the planner sends
		// the desired state again, whatever it is then (a suppression that
		// may be held is cancelled when no longer wanted).
		var unknown string
		switch it.Op {
		case privsync.OpRestrict:
			unknown = `restrictions = restrictions | ` + fmt.Sprint(int(RestrictionsUnknown))
		case privsync.OpRTBFSuppress, privsync.OpRemoveRTBFSuppress:
			unknown = fmt.Sprintf(`erasure = CASE WHEN erasure IN (%d, %d) THEN %d ELSE erasure END`,
				planner.NotErased, planner.Suppressed, planner.MaybeSuppressed)
		}
		if unknown != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE subjects SET `+unknown+` WHERE vendor = ? AND id_type = ? AND subject_id = ?`, key...); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("outcome %q is not final", r.Outcome)
	}
	detail := r.Detail
	if r.DataURL != "" {
		detail = strings.TrimSpace("data report: " + r.DataURL + " " + detail)
	}
	return d.addEvent(ctx, tx, itemEvent(runID, b, it, string(r.Outcome), detail, now))
}

// RestrictionsUnknown marks a subject's restrictions as not known: a
// restrict did not succeed and the vendor may hold it or not. It differs
// from every set the input can ask, so the next row is sent.
const RestrictionsUnknown privsync.Restrictions = 1 << 7

// succeeded reports whether outcome confirms the item: completed, accepted,
// or an expired review (the vendor delivered its report and then forgot
// the request; asking again would be a second report).
func succeeded(it *Item, outcome privsync.Outcome) bool {
	switch outcome {
	case privsync.OutcomeCompleted, privsync.OutcomeAccepted:
		return true
	case privsync.OutcomeExpired:
		return it.Op == privsync.OpReview
	}
	return false
}

// subjectKey is a subject within one vendor.
type subjectKey struct{ idType, subjectID string }

func itemEvent(runID string, b *Batch, it *Item, outcome, detail string, now time.Time) *Event {
	var restr string
	if it.Op == privsync.OpRestrict {
		restr = it.Restrictions.String()
	}
	return &Event{RunID: runID, RecordedAt: rfc3339(now), Vendor: b.Vendor, SubjectID: it.SubjectID, IDType: it.IDType,
		Operation: string(it.Op), Restrictions: restr, Outcome: outcome, VendorRef: b.VendorRef, Attempts: b.Attempts,
		Detail: detail, ItemID: it.ID}
}

// release makes the batches that follow b ready; the items of subjects
// whose preceding operation failed are failed too, never sent.
func (d *DB) release(ctx context.Context, tx *sql.Tx, runID string, b *Batch, failed map[subjectKey]bool, now time.Time) ([]*Batch, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, run_id, vendor, operation, attempts, created_at FROM batches WHERE after_batch = ? AND state = 'waiting'`, b.ID)
	if err != nil {
		return nil, err
	}
	var next []*Batch
	for rows.Next() {
		nb := &Batch{State: BatchPlanned}
		var created sql.NullInt64
		if err := rows.Scan(&nb.ID, &nb.RunID, &nb.Vendor, &nb.Op, &nb.Attempts, &created); err != nil {
			rows.Close()
			return nil, err
		}
		nb.CreatedAt = fromNanos(created)
		next = append(next, nb)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []*Batch
	for _, nb := range next {
		if err := d.loadItems(ctx, tx, nb); err != nil {
			return nil, err
		}
		var results []Result
		for _, it := range nb.Items {
			if failed[subjectKey{it.IDType, it.SubjectID}] {
				results = append(results, Result{ItemID: it.ID, Outcome: privsync.OutcomeFailed,
					Detail: fmt.Sprintf("not sent: the preceding %s did not succeed", b.Op)})
			}
		}
		if err := d.resolveItems(ctx, tx, runID, nb, results, failed, now); err != nil {
			return nil, err
		}
		state := BatchPlanned
		if len(nb.Items) == 0 {
			state = BatchDone
		}
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = ?, updated_at = ? WHERE id = ?`, state, now.UnixNano(), nb.ID); err != nil {
			return nil, err
		}
		if state == BatchPlanned {
			out = append(out, nb)
			continue
		}
		more, err := d.release(ctx, tx, runID, nb, failed, now) // nothing left to wait for
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// FinishRun records a pending row for every item not final as the run ends
// (its final row comes in the report of the run that confirms it), marks
// the run finished, and returns how many are pending.
func (d *DB) FinishRun(ctx context.Context, runID string, stats any) (int, error) {
	n := 0
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT b.id, b.vendor, b.state, b.attempts, b.vendor_ref, i.id, i.id_type, i.subject_id, i.operation, i.restrictions
			FROM items i JOIN batches b ON b.id = i.batch_id WHERE i.outcome = 'pending' AND b.state NOT IN ('done', 'split') ORDER BY i.id`)
		if err != nil {
			return err
		}
		var evs []*Event
		now := d.Now()
		for rows.Next() {
			var b Batch
			var it Item
			if err := rows.Scan(&b.ID, &b.Vendor, &b.State, &b.Attempts, &b.VendorRef, &it.ID, &it.IDType, &it.SubjectID, &it.Op, &it.Restrictions); err != nil {
				rows.Close()
				return err
			}
			detail := map[string]string{
				BatchWaiting:   "not sent yet: waits for the operation before it",
				BatchPlanned:   "not sent yet: the next run sends it",
				BatchSending:   "sent, no receipt yet: the next run looks for it at the vendor or sends it again",
				BatchSubmitted: "accepted by the vendor, not confirmed yet: the next run (or status --poll) asks again",
			}[b.State]
			evs = append(evs, itemEvent(runID, &b, &it, string(privsync.OutcomePending), detail, now))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range evs {
			if err := d.addEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		n = len(evs)
		if err := d.foldSettled(ctx, tx, nil, nil); err != nil {
			return err
		}
		// The pending rows and the run's end commit together: a run killed
		// between them would write its pending rows again when resumed.
		return setRunState(ctx, tx, runID, RunFinished, stats, now)
	})
	if err != nil {
		return 0, fmt.Errorf("closing run %s: %w", runID, err)
	}
	return n, nil
}

// BatchCount is how many batches and pending items a vendor has in a state.
type BatchCount struct {
	Vendor    string `json:"vendor"`
	State     string `json:"state"`
	Batches   int    `json:"batches"`
	Items     int    `json:"items"`
	LastError string `json:"last_error,omitempty"`
}

// OpenBatchCounts counts the batches that still have work, per vendor and state.
func (d *DB) OpenBatchCounts(ctx context.Context) ([]BatchCount, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT b.vendor, b.state, COUNT(DISTINCT b.id), COUNT(i.id), COALESCE(MAX(b.last_error), '')
		FROM batches b LEFT JOIN items i ON i.batch_id = b.id AND i.outcome = 'pending'
		WHERE b.state NOT IN ('done', 'split') GROUP BY b.vendor, b.state ORDER BY b.vendor, b.state`)
	if err != nil {
		return nil, fmt.Errorf("counting open batches: %w", err)
	}
	defer rows.Close()
	var out []BatchCount
	for rows.Next() {
		var c BatchCount
		if err := rows.Scan(&c.Vendor, &c.State, &c.Batches, &c.Items, &c.LastError); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Problems counts a run's events that did not end as asked and need a
// person or a later run: failed, rejected and conflict rows, and expired
// erasures and restrictions (planned again; an expired review counts as
// answered). A run with problems exits 3.
func (d *DB) Problems(ctx context.Context, runID string) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE run_id = ?
		AND (outcome IN ('failed', 'rejected', 'conflict') OR (outcome = 'expired' AND operation <> 'review'))`, runID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the run's problems: %w", err)
	}
	return n, nil
}
