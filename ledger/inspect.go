package ledger

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/privsync/privsync"
)

// SubjectRow is one subject as the ledger holds it, for inspection.
type SubjectRow struct {
	Key           privsync.Key
	Restrictions  privsync.Restrictions // confirmed by the vendor
	Erasure       int                   // 0 none, 1 suppressed, 2 erased: confirmed by the vendor
	AccessRequest string
	InFlight      uint64
	Settled       uint64
	Failures      int
	RetryAt       int64 // unix ns, 0 when none
}

// ItemRow is one item with its batch's state, for inspection.
type ItemRow struct {
	ID         int64
	BatchID    int64
	BatchState string
	RunID      string
	Key        privsync.Key
	Op         privsync.Operation
	Outcome    string
	Last       bool
}

// Dump is the ledger's subjects, items and events at one moment: what
// the simulation checks its invariants on, and a debugging aid.
type Dump struct {
	Subjects []SubjectRow
	Items    []ItemRow
	Events   []*Event
}

// Inspect reads the whole ledger (for tests and small ledgers only).
func (d *DB) Inspect(ctx context.Context) (*Dump, error) {
	var out Dump
	rows, err := d.db.QueryContext(ctx, `SELECT vendor, id_type, subject_id, restrictions, erasure, access_request,
		in_flight, settled, failures, COALESCE(retry_at, 0) FROM subjects ORDER BY vendor, id_type, subject_id`)
	if err != nil {
		return nil, fmt.Errorf("inspecting subjects: %w", err)
	}
	err = scanAll(rows, func() error {
		var s SubjectRow
		var inFlight, settled int64
		if err := rows.Scan(&s.Key.Vendor, &s.Key.IDType, &s.Key.SubjectID, &s.Restrictions, &s.Erasure, &s.AccessRequest,
			&inFlight, &settled, &s.Failures, &s.RetryAt); err != nil {
			return err
		}
		s.InFlight, s.Settled = uint64(inFlight), uint64(settled)
		out.Subjects = append(out.Subjects, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspecting subjects: %w", err)
	}
	rows, err = d.db.QueryContext(ctx, `SELECT i.id, i.batch_id, b.state, i.run_id, i.vendor, i.id_type, i.subject_id, i.operation, i.outcome, i.last
		FROM items i JOIN batches b ON b.id = i.batch_id ORDER BY i.id`)
	if err != nil {
		return nil, fmt.Errorf("inspecting items: %w", err)
	}
	err = scanAll(rows, func() error {
		var it ItemRow
		if err := rows.Scan(&it.ID, &it.BatchID, &it.BatchState, &it.RunID, &it.Key.Vendor, &it.Key.IDType, &it.Key.SubjectID,
			&it.Op, &it.Outcome, &it.Last); err != nil {
			return err
		}
		out.Items = append(out.Items, it)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspecting items: %w", err)
	}
	err = d.eachEvent(ctx, func(e *Event) error {
		out.Events = append(out.Events, e)
		return nil
	}, 0, func(e *Event) int64 { return e.pos },
		`SELECT `+eventCols+` FROM events WHERE ? IS NULL AND seq > ? ORDER BY seq LIMIT ?`, nil)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// scanAll calls fn for every row of rows and closes them.
func scanAll(rows *sql.Rows, fn func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(); err != nil {
			return err
		}
	}
	return rows.Err()
}
