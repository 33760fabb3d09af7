package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// Event is one row of the audit log: one outcome of one (vendor, subject,
// operation), in the order it became known. Its fields are the report's
// columns before hashing, stored exactly as written so a report can be
// rebuilt from the ledger byte for byte.
type Event struct {
	RunID        string
	Seq          int64 // position in its run's report, from 1
	RecordedAt   string
	Vendor       string
	SubjectID    string
	IDType       string
	Operation    string
	Restrictions string
	Outcome      string
	VendorRef    string
	Attempts     int
	Detail       string
	ItemID       int64 // 0 for outcomes that concern no request

	pos int64 // the event's position in the whole log (events.seq), for paging
}

const insertEventSQL = `INSERT INTO events(run_id, run_seq, recorded_at, vendor, subject_id, id_type, operation, restrictions,
	outcome, vendor_ref, attempts, detail, item_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func (e *Event) args() []any {
	var item any
	if e.ItemID != 0 {
		item = e.ItemID
	}
	return []any{e.RunID, e.Seq, e.RecordedAt, e.Vendor, e.SubjectID, e.IDType, e.Operation, e.Restrictions,
		e.Outcome, e.VendorRef, e.Attempts, e.Detail, item}
}

const eventCols = `run_id, run_seq, recorded_at, vendor, subject_id, id_type, operation, restrictions, outcome, vendor_ref, attempts, detail, COALESCE(item_id, 0), seq`

func scanEvent(sc interface{ Scan(...any) error }) (*Event, error) {
	var e Event
	err := sc.Scan(&e.RunID, &e.Seq, &e.RecordedAt, &e.Vendor, &e.SubjectID, &e.IDType, &e.Operation, &e.Restrictions,
		&e.Outcome, &e.VendorRef, &e.Attempts, &e.Detail, &e.ItemID, &e.pos)
	return &e, err
}

const sqlNextEventSeq = `SELECT COALESCE(MAX(run_seq), 0) + 1 FROM events WHERE run_id = ?`

// addEvent appends e to its run's log inside tx (a transaction of inTx),
// numbering it (see eventSeq).
func (d *DB) addEvent(ctx context.Context, tx *sql.Tx, e *Event) error {
	seq, err := d.eventSeq(ctx, tx, e.RunID)
	if err != nil {
		return err
	}
	e.Seq = seq
	if _, err := d.exec(ctx, tx, insertEventSQL, e.args()...); err != nil {
		return fmt.Errorf("recording an audit event: %w", err)
	}
	d.nextSeq = &runSeq{run: e.RunID, next: e.Seq + 1}
	return nil
}

// eventSeq is the number of the next event of runID's log inside tx: it
// asks the log once per transaction and run, then counts (the caller
// stores the next number in d.nextSeq once it has appended).
func (d *DB) eventSeq(ctx context.Context, tx *sql.Tx, runID string) (int64, error) {
	if d.nextSeq != nil && d.nextSeq.run == runID {
		return d.nextSeq.next, nil
	}
	var seq int64
	if err := d.queryRow(ctx, tx, sqlNextEventSeq, runID).Scan(&seq); err != nil {
		return 0, fmt.Errorf("numbering an audit event: %w", err)
	}
	return seq, nil
}

// Events calls fn for the events of a run after seq, in order.
func (d *DB) Events(ctx context.Context, runID string, after int64, fn func(*Event) error) error {
	return d.eachEvent(ctx, fn, after, func(e *Event) int64 { return e.Seq }, sqlRunEvents, runID)
}

const sqlRunEvents = `SELECT ` + eventCols + ` FROM events WHERE run_id = ? AND run_seq > ? ORDER BY run_seq LIMIT ?`

// SubjectEvents calls fn for every event about a subject id, across runs
// and vendors, oldest first (what a regulator asks about one person). It
// reads the whole log: an index of events by subject made every outcome
// rewrite a scattered page of it (see migration 002).
func (d *DB) SubjectEvents(ctx context.Context, subjectID string, fn func(*Event) error) error {
	return d.eachEvent(ctx, fn, 0, func(e *Event) int64 { return e.pos },
		`SELECT `+eventCols+` FROM events WHERE subject_id = ? AND seq > ? ORDER BY seq LIMIT ?`, subjectID)
}

// eventPage is how many events eachEvent holds at once.
const eventPage = 4096

// eachEvent calls fn for the events q selects, a page at a time: q takes
// arg, the position after which the page starts (pos of the last event
// read; after for the first page), and a LIMIT. Only committed events are
// read (see reader). A page is read whole before fn sees it, as fn may use
// the ledger's connection; so a run of ten million events never sits in
// memory at once.
func (d *DB) eachEvent(ctx context.Context, fn func(*Event) error, after int64, pos func(*Event) int64, q string, arg any) error {
	page := make([]*Event, 0, eventPage)
	for {
		page = page[:0]
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := d.query(ctx, d.reader(), q, arg, after, eventPage)
		if err != nil {
			return fmt.Errorf("reading audit events: %w", err)
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("reading audit events: %w", err)
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading audit events: %w", err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < eventPage {
			return nil
		}
		after = pos(page[len(page)-1])
	}
}
