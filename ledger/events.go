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

const eventCols = `run_id, run_seq, recorded_at, vendor, subject_id, id_type, operation, restrictions, outcome, vendor_ref, attempts, detail, COALESCE(item_id, 0)`

func scanEvent(sc interface{ Scan(...any) error }) (*Event, error) {
	var e Event
	err := sc.Scan(&e.RunID, &e.Seq, &e.RecordedAt, &e.Vendor, &e.SubjectID, &e.IDType, &e.Operation, &e.Restrictions,
		&e.Outcome, &e.VendorRef, &e.Attempts, &e.Detail, &e.ItemID)
	return &e, err
}

const sqlNextEventSeq = `SELECT COALESCE(MAX(run_seq), 0) + 1 FROM events WHERE run_id = ?`

// addEvent appends e to its run's log inside tx, numbering it.
func (d *DB) addEvent(ctx context.Context, tx *sql.Tx, e *Event) error {
	if err := d.queryRow(ctx, tx, sqlNextEventSeq, e.RunID).Scan(&e.Seq); err != nil {
		return fmt.Errorf("numbering an audit event: %w", err)
	}
	if _, err := d.exec(ctx, tx, insertEventSQL, e.args()...); err != nil {
		return fmt.Errorf("recording an audit event: %w", err)
	}
	return nil
}

// Events calls fn for the events of a run after seq, in order.
func (d *DB) Events(ctx context.Context, runID string, after int64, fn func(*Event) error) error {
	return d.eachEvent(ctx, fn, `SELECT `+eventCols+` FROM events WHERE run_id = ? AND run_seq > ? ORDER BY run_seq`, runID, after)
}

// SubjectEvents calls fn for every event about a subject id, across runs
// and vendors, oldest first (what a regulator asks about one person).
func (d *DB) SubjectEvents(ctx context.Context, subjectID string, fn func(*Event) error) error {
	return d.eachEvent(ctx, fn, `SELECT `+eventCols+` FROM events WHERE subject_id = ? ORDER BY seq`, subjectID)
}

func (d *DB) eachEvent(ctx context.Context, fn func(*Event) error, q string, args ...any) error {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("reading audit events: %w", err)
	}
	var evs []*Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("reading audit events: %w", err)
		}
		evs = append(evs, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading audit events: %w", err)
	}
	for _, e := range evs {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
