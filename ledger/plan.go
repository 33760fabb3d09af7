package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

// Run is one `privsync run` as the ledger remembers it.
type Run struct {
	ID        string
	StartedAt time.Time
	State     string // planning, running, finished
	Mode      string
	InputKey  string
	Stats     json.RawMessage
}

// Run states.
const (
	RunPlanning = "planning"
	RunRunning  = "running"
	RunFinished = "finished"
)

// UnfinishedRun returns the latest run that did not finish (it was killed
// or stopped), or nil.
func (d *DB) UnfinishedRun(ctx context.Context) (*Run, error) {
	row := d.db.QueryRowContext(ctx, `SELECT id, started_at, state, mode, input_key, stats FROM runs
		WHERE state <> 'finished' ORDER BY started_at DESC, id DESC LIMIT 1`)
	r, err := scanRun(row)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	return r, err
}

// RunBefore returns the run that started before run id (the one the
// summaries chain it to), or nil for the first run.
func (d *DB) RunBefore(ctx context.Context, id string) (*Run, error) {
	row := d.db.QueryRowContext(ctx, `SELECT r.id, r.started_at, r.state, r.mode, r.input_key, r.stats
		FROM runs r, runs me WHERE me.id = ? AND (r.started_at < me.started_at OR (r.started_at = me.started_at AND r.id < me.id))
		ORDER BY r.started_at DESC, r.id DESC LIMIT 1`, id)
	r, err := scanRun(row)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding the run before %s: %w", id, err)
	}
	return r, nil
}

// Runs lists the latest runs, newest first.
func (d *DB) Runs(ctx context.Context, limit int) ([]*Run, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, started_at, state, mode, input_key, stats FROM runs
		ORDER BY started_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanRun(sc interface{ Scan(...any) error }) (*Run, error) {
	var r Run
	var started, stats string
	if err := sc.Scan(&r.ID, &started, &r.State, &r.Mode, &r.InputKey, &stats); err != nil {
		return nil, err
	}
	r.StartedAt, _ = time.Parse(time.RFC3339Nano, started)
	r.Stats = json.RawMessage(stats)
	return &r, nil
}

// startedLayout writes a run's start with every digit of its nanoseconds:
// runs are ordered by it as text, and RFC 3339's trimmed fraction sorted
// 12:00:00.12Z after 12:00:00.123Z (and 12:00:00Z after both), so the
// latest run of a second could be taken for an earlier one.
const startedLayout = "2006-01-02T15:04:05.000000000Z07:00"

// StartRun records a new run in the planning state.
func (d *DB) StartRun(ctx context.Context, r *Run, inputs any) error {
	in, err := json.Marshal(inputs)
	if err != nil {
		return fmt.Errorf("recording run inputs: %w", err)
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO runs(id, started_at, state, mode, input_key, inputs) VALUES (?, ?, ?, ?, ?, ?)`,
			r.ID, r.StartedAt.UTC().Format(startedLayout), RunPlanning, r.Mode, r.InputKey, string(in))
		if err != nil {
			return fmt.Errorf("recording run %s: %w", r.ID, err)
		}
		return nil
	})
}

// SetRunState moves a run to state, recording stats when given.
func (d *DB) SetRunState(ctx context.Context, id, state string, stats any) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		return setRunState(ctx, tx, id, state, stats, d.Now())
	})
}

func setRunState(ctx context.Context, tx *sql.Tx, id, state string, stats any, now time.Time) error {
	if stats != nil {
		b, err := json.Marshal(stats)
		if err != nil {
			return fmt.Errorf("recording the run's figures: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET stats = ? WHERE id = ?`, string(b), id); err != nil {
			return fmt.Errorf("recording the run's figures: %w", err)
		}
	}
	var finished any
	if state == RunFinished {
		finished = rfc3339(now)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, finished_at = COALESCE(?, finished_at) WHERE id = ?`, state, finished, id); err != nil {
		return fmt.Errorf("recording run %s %s: %w", id, state, err)
	}
	return nil
}

// DropRun removes a run that recorded nothing (a plan refused by
// --max-changes): no event, batch or item names it.
func (d *DB) DropRun(ctx context.Context, id string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM events WHERE run_id = ?)
			AND NOT EXISTS (SELECT 1 FROM batches WHERE run_id = ?)`, id, id, id)
		if err != nil {
			return fmt.Errorf("removing run %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("removing run %s: it recorded outcomes", id)
		}
		return nil
	})
}

// SetRunInputs records what was read for a run (files, hashes, counts).
func (d *DB) SetRunInputs(ctx context.Context, id string, inputs any) error {
	b, err := json.Marshal(inputs)
	if err != nil {
		return fmt.Errorf("recording run inputs: %w", err)
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET inputs = ? WHERE id = ?`, string(b), id)
		return err
	})
}

// RunInputs returns the JSON inputs recorded for a run.
func (d *DB) RunInputs(ctx context.Context, id string) (json.RawMessage, error) {
	var s string
	err := d.db.QueryRowContext(ctx, `SELECT inputs FROM runs WHERE id = ?`, id).Scan(&s)
	return json.RawMessage(s), err
}

// WritePlan runs plan inside one transaction, handing it a ledger view and
// a sink that both go through that transaction, and marks the run running
// when it commits: either the whole plan is in the ledger, or none of it.
func (d *DB) WritePlan(ctx context.Context, runID string, plan func(planner.Ledger, planner.Sink) error) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		w, err := newPlanWriter(ctx, d, tx, runID)
		if err != nil {
			return err
		}
		defer w.behind.stop() // nothing touches tx once it is over
		if err := plan(flushingReader{reader{tx, d}, w}, w); err != nil {
			return err
		}
		if err := w.sync(ctx); err != nil {
			return err
		}
		// The plan's fingerprint changes go straight into the buckets: as
		// journal rows, a first run of millions of rows spent minutes on
		// random-order inserts.
		if err := d.foldSettled(ctx, tx, w.add, w.remove); err != nil {
			return fmt.Errorf("recording settled rows: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET state = ? WHERE id = ?`, RunRunning, runID)
		return err
	})
}

// flushingReader is the ledger as the planner reads it while its plan is
// written: what the writer holds or is writing is written before each
// read, so the planner reads what it has decided, and never beside the
// writing goroutine.
type flushingReader struct {
	reader
	w *planWriter
}

func (r flushingReader) Settled(ctx context.Context) (*planner.FPSet, error) {
	if err := r.w.sync(ctx); err != nil {
		return nil, err
	}
	return r.reader.Settled(ctx)
}

func (r flushingReader) Lookup(ctx context.Context, keys []privsync.Key) ([]planner.State, error) {
	if err := r.w.sync(ctx); err != nil {
		return nil, err
	}
	return r.reader.Lookup(ctx, keys)
}

func (r flushingReader) Restricted(ctx context.Context, vendors []string, fn func(privsync.Key, planner.State) error) error {
	if err := r.w.sync(ctx); err != nil {
		return err
	}
	return r.reader.Restricted(ctx, vendors, fn)
}

// planRows is how many subjects (and items) one INSERT of the plan writes:
// a statement per row was a quarter of a backfill's CPU, most of it the
// statement's fixed cost rather than the row. A variable for tests.
var planRows = 128

// planWriter is the planner's Sink inside WritePlan's transaction. Its
// statements run behind the planner, on a goroutine of their own
// (writeBehind), so the planner decides the next rows while the last ones
// are written: in a backfill each side was about half of the plan's time.
// What the planner reads of the ledger waits for what is written (sync).
type planWriter struct {
	d       *DB
	tx      *sql.Tx
	runID   string
	now     string
	seq     int64
	batches map[int]int64 // plan-local batch id -> ledger id
	// lastBatch is the ledger id of the last batch: the writer numbers
	// them itself, as SQLite would (the highest id plus one), so the
	// planner need not wait for an INSERT to learn an id.
	lastBatch int64
	behind    *writeBehind
	// free holds written buffers of subjects and items for reuse.
	free chan *planBuf
	// add and remove are the settled fingerprints the plan changes, folded
	// into the buckets when it is written.
	add, remove []uint64

	// buf holds the arguments of the rows not handed to the writing
	// goroutine yet, written planRows at a time.
	buf   *planBuf
	texts map[[2]int]string      // (columns, rows) -> INSERT text; the writing goroutine's
	ids   map[privsync.Key]int64 // subjects.id of the subjects written by a flush; the writing goroutine's
}

// planBuf is the arguments of subjects and items to write (planSubjectCols
// and planItemCols per row).
type planBuf struct{ subjects, items []any }

// planBuffers is how many planBufs a plan uses: one filling, the rest
// queued or being written.
const planBuffers = 3

// The plan's statements run through the connection's statement cache (see
// stmtcache.go), prepared once per connection rather than once per plan:
// a nightly plan of a few rows, or the simulation's thousands of them,
// spent a fifth of its time parsing the 128-row INSERTs it never used.
const insertBatchSQL = `INSERT INTO batches(id, run_id, vendor, operation, state, after_batch, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

var _ planner.Sink = (*planWriter)(nil)

const (
	planSubjectCols = 7
	planItemCols    = 11
	// Where an item's key and its subjects.id sit among its arguments
	// (insertItemsSQL's columns); the id is set by the writing goroutine.
	itemVendorCol, itemIDTypeCol, itemSubjectIDCol = 2, 3, 4
	itemSubjectCol                                 = 10
)

// upsertSubjectsSQL records n subjects of a plan: their desired state's
// time, what is in flight or settled; what the vendors confirmed stays.
func upsertSubjectsSQL(n int) string {
	return `INSERT INTO subjects(vendor, id_type, subject_id, updated_at, access_request, in_flight, settled) VALUES ` + valuesSQL(n, planSubjectCols) + `
		ON CONFLICT (vendor, id_type, subject_id) DO UPDATE SET updated_at = excluded.updated_at,
		access_request = CASE WHEN excluded.access_request <> '' THEN excluded.access_request ELSE access_request END,
		in_flight = excluded.in_flight, settled = excluded.settled
		RETURNING id, vendor, id_type, subject_id`
}

func insertItemsSQL(n int) string {
	return `INSERT INTO items(batch_id, run_id, vendor, id_type, subject_id, operation, restrictions, access_request, fp, last, subject) VALUES ` +
		valuesSQL(n, planItemCols)
}

// valuesSQL is n rows of cols parameters: (?,?),(?,?).
func valuesSQL(n, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}

func newPlanWriter(ctx context.Context, d *DB, tx *sql.Tx, runID string) (*planWriter, error) {
	w := &planWriter{d: d, tx: tx, runID: runID, now: rfc3339(d.Now()), batches: map[int]int64{}, texts: map[[2]int]string{}, ids: map[privsync.Key]int64{},
		free: make(chan *planBuf, planBuffers)}
	for range planBuffers {
		w.free <- &planBuf{subjects: make([]any, 0, planRows*planSubjectCols), items: make([]any, 0, planRows*planItemCols)}
	}
	w.buf = <-w.free
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(run_seq), 0) FROM events WHERE run_id = ?`, runID).Scan(&w.seq); err != nil {
		return nil, fmt.Errorf("reading the run's last event: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM batches`).Scan(&w.lastBatch); err != nil {
		return nil, fmt.Errorf("reading the last batch: %w", err)
	}
	w.behind = newWriteBehind(planBuffers - 1)
	return w, nil
}

// flush hands the buffered subjects and items to the writing goroutine.
func (w *planWriter) flush(ctx context.Context) error {
	if len(w.buf.subjects) == 0 && len(w.buf.items) == 0 {
		return nil
	}
	ctx = quick(ctx)
	b := w.buf
	err := w.behind.do(func() error {
		defer func() { w.free <- b }()
		if err := w.write(ctx, &b.subjects, planSubjectCols, upsertSubjectsSQL, w.subjectIDs); err != nil {
			return fmt.Errorf("recording the plan's subjects: %w", err)
		}
		for row := b.items; len(row) > 0; row = row[planItemCols:] {
			k := privsync.Key{Vendor: row[itemVendorCol].(string), IDType: row[itemIDTypeCol].(string), SubjectID: row[itemSubjectIDCol].(string)}
			id, ok := w.ids[k]
			if !ok {
				return fmt.Errorf("recording the plan's items: subject %s of %s was not written", k.SubjectID, k.Vendor)
			}
			row[itemSubjectCol] = id
		}
		clear(w.ids)
		if err := w.write(ctx, &b.items, planItemCols, insertItemsSQL, nil); err != nil {
			return fmt.Errorf("recording the plan's items: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.buf = <-w.free
	return nil
}

// sync writes everything handed to the writer so far, and returns the
// first error met writing it.
func (w *planWriter) sync(ctx context.Context) error {
	if err := w.flush(ctx); err != nil {
		return err
	}
	return w.behind.wait()
}

// subjectIDs reads what the subjects' upsert returns: each one's id.
func (w *planWriter) subjectIDs(rows *sql.Rows) error {
	var id int64
	var k privsync.Key
	for rows.Next() {
		if err := rows.Scan(&id, &k.Vendor, &k.IDType, &k.SubjectID); err != nil {
			return err
		}
		w.ids[k] = id
	}
	return rows.Err()
}

// write runs the rows of args (cols arguments each) planRows at a time,
// and what is left in statements of a power of two rows: a statement per
// leftover count would fill the connection's statement cache with
// hundreds of texts used once. A statement that returns rows hands them
// to returned.
func (w *planWriter) write(ctx context.Context, args *[]any, cols int, sqlOf func(int) string, returned func(*sql.Rows) error) error {
	a := *args
	for n := planRows; len(a) > 0; n /= 2 {
		for len(a) >= n*cols {
			q, ok := w.texts[[2]int{cols, n}]
			if !ok { // built once per plan, not once per INSERT
				q = sqlOf(n)
				w.texts[[2]int{cols, n}] = q
			}
			if returned == nil {
				if _, err := w.tx.ExecContext(ctx, q, a[:n*cols]...); err != nil {
					return err
				}
			} else {
				rows, err := w.tx.QueryContext(ctx, q, a[:n*cols]...)
				if err != nil {
					return err
				}
				err = returned(rows)
				rows.Close()
				if err != nil {
					return err
				}
			}
			a = a[n*cols:]
		}
	}
	clear(*args)
	*args = (*args)[:0]
	return nil
}

func (w *planWriter) Batch(ctx context.Context, b *planner.Batch) error {
	ctx = quick(ctx) // the planner checks for cancellation; see quick
	state, after := "planned", any(nil)
	if b.After != 0 {
		state, after = "waiting", w.batches[b.After]
	}
	now := w.d.Now().UnixNano()
	w.lastBatch++
	id := w.lastBatch
	w.batches[b.ID] = id
	return w.behind.do(func() error {
		if _, err := w.tx.ExecContext(ctx, insertBatchSQL, id, w.runID, b.Vendor, string(b.Op), state, after, now, now); err != nil {
			return fmt.Errorf("recording a batch: %w", err)
		}
		return nil
	})
}

func (w *planWriter) event(ctx context.Context, e *Event) error {
	ctx = quick(ctx)
	w.seq++
	e.RunID, e.Seq, e.RecordedAt = w.runID, w.seq, w.now
	args := e.args()
	return w.behind.do(func() error {
		_, err := w.tx.ExecContext(ctx, insertEventSQL, args...)
		return err
	})
}

func (w *planWriter) Reject(ctx context.Context, re *privsync.RowError, fp uint64) error {
	if err := w.event(ctx, &Event{Vendor: re.Vendor, SubjectID: re.SubjectID, Outcome: string(privsync.OutcomeRejected), Detail: re.Error()}); err != nil {
		return fmt.Errorf("recording a rejected row: %w", err)
	}
	w.add = append(w.add, fp)
	return nil
}

func (w *planWriter) Entry(ctx context.Context, e *planner.Entry) error {
	ctx = quick(ctx) // the planner checks for cancellation; see quick
	where := ""
	if e.File != "" {
		where = fmt.Sprintf("%s row %d: ", e.File, e.Line)
	}
	for _, n := range e.Decision.Notes {
		ev := &Event{Vendor: e.Key.Vendor, SubjectID: e.Key.SubjectID, IDType: e.Key.IDType,
			Operation: string(n.Operation), Outcome: string(n.Outcome), Detail: where + n.Detail}
		if err := w.event(ctx, ev); err != nil {
			return fmt.Errorf("recording an outcome: %w", err)
		}
	}
	if e.Prior.Settled != 0 && e.Prior.Settled != e.FP {
		w.remove = append(w.remove, e.Prior.Settled)
	}
	var inFlight, settled int64
	if len(e.Decision.Ops) > 0 {
		inFlight = int64(e.FP)
	} else {
		settled = int64(e.FP)
		w.add = append(w.add, e.FP)
	}
	access := ""
	if len(e.Decision.Ops) == 0 {
		access = e.AccessRequest // nothing to send for it: remember it was answered
	}
	w.buf.subjects = append(w.buf.subjects, e.Key.Vendor, e.Key.IDType, e.Key.SubjectID, nanos(e.UpdatedAt), access, inFlight, settled)
	for i, op := range e.Decision.Ops {
		last := i == len(e.Decision.Ops)-1
		ar := ""
		if op.Op == privsync.OpReview {
			ar = e.AccessRequest
		}
		w.buf.items = append(w.buf.items, w.batches[e.Batches[i]], w.runID, e.Key.Vendor, e.Key.IDType, e.Key.SubjectID,
			string(op.Op), int(op.Restrictions), ar, int64(e.FP), last, nil)
	}
	if len(w.buf.subjects) >= planRows*planSubjectCols || len(w.buf.items) >= planRows*planItemCols {
		return w.flush(ctx)
	}
	return nil
}

// writeBehind runs jobs in the order given on a goroutine of its own, so
// the caller goes on while they run. After a job fails, the rest are
// skipped and do and wait return its error.
type writeBehind struct {
	jobs    chan func() error
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// newWriteBehind starts the goroutine; depth jobs may wait for it before
// do blocks.
func newWriteBehind(depth int) *writeBehind {
	b := &writeBehind{jobs: make(chan func() error, depth)}
	go func() {
		for job := range b.jobs {
			if b.failed() == nil {
				if err := job(); err != nil {
					b.mu.Lock()
					b.err = err
					b.mu.Unlock()
				}
			}
			b.pending.Done()
		}
	}()
	return b
}

func (b *writeBehind) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// do queues job, or returns the error of a job that failed.
func (b *writeBehind) do(job func() error) error {
	if err := b.failed(); err != nil {
		return err
	}
	b.pending.Add(1)
	b.jobs <- job
	return nil
}

// wait returns once every job queued has run (or been skipped), with the
// first error.
func (b *writeBehind) wait() error {
	b.pending.Wait()
	return b.failed()
}

// stop waits for the jobs queued and ends the goroutine; b is not used
// after.
func (b *writeBehind) stop() {
	b.pending.Wait()
	close(b.jobs)
}
