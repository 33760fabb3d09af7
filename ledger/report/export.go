package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/privsync/privsync/ledger"
)

// ExportColumns are the columns of an export in CSV.
var ExportColumns = []string{"run_id", "seq", "recorded_at", "vendor", "subject_id", "id_type", "operation",
	"restrictions", "outcome", "vendor_ref", "attempts", "detail", "item_id"}

// ExportEvent is one event of an export in JSON Lines.
type ExportEvent struct {
	RunID        string `json:"run_id"`
	Seq          int64  `json:"seq"`
	RecordedAt   string `json:"recorded_at"`
	Vendor       string `json:"vendor"`
	SubjectID    string `json:"subject_id"`
	IDType       string `json:"id_type"`
	Operation    string `json:"operation"`
	Restrictions string `json:"restrictions"`
	Outcome      string `json:"outcome"`
	VendorRef    string `json:"vendor_ref"`
	Attempts     int    `json:"attempts"`
	Detail       string `json:"detail"`
	ItemID       int64  `json:"item_id,omitempty"`
}

// Exporter writes ledger events for a person or an auditor: CSV (with the
// report's spreadsheet safety) or JSON Lines (the values as recorded).
type Exporter struct {
	bw    *bufio.Writer
	csv   *csv.Writer
	json  *json.Encoder
	rec   []string
	count int64
}

// NewExporter returns an Exporter writing format ("csv" or "jsonl") to w.
// A CSV export starts with its header.
func NewExporter(w io.Writer, format string) (*Exporter, error) {
	x := &Exporter{bw: bufio.NewWriterSize(w, 64<<10)}
	switch format {
	case "csv":
		x.csv = csv.NewWriter(x.bw)
		if err := x.csv.Write(ExportColumns); err != nil {
			return nil, fmt.Errorf("writing the export: %w", err)
		}
	case "jsonl":
		x.json = json.NewEncoder(x.bw)
		x.json.SetEscapeHTML(false)
	default:
		return nil, fmt.Errorf("export format %q: use csv or jsonl", format)
	}
	return x, nil
}

// Write writes one event.
func (x *Exporter) Write(e *ledger.Event) error {
	x.count++
	if x.json != nil {
		if err := x.json.Encode(ExportEvent{RunID: e.RunID, Seq: e.Seq, RecordedAt: e.RecordedAt, Vendor: e.Vendor,
			SubjectID: e.SubjectID, IDType: e.IDType, Operation: e.Operation, Restrictions: e.Restrictions,
			Outcome: e.Outcome, VendorRef: e.VendorRef, Attempts: e.Attempts, Detail: e.Detail, ItemID: e.ItemID}); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
		return nil
	}
	x.rec = append(x.rec[:0], Safe(e.RunID), strconv.FormatInt(e.Seq, 10), Safe(e.RecordedAt), Safe(e.Vendor),
		Safe(e.SubjectID), Safe(e.IDType), Safe(e.Operation), Safe(e.Restrictions), Safe(e.Outcome),
		Safe(e.VendorRef), Safe(strconv.Itoa(e.Attempts)), Safe(e.Detail), strconv.FormatInt(e.ItemID, 10))
	if err := x.csv.Write(x.rec); err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	return nil
}

// Count returns the number of events written.
func (x *Exporter) Count() int64 { return x.count }

// Flush writes out what is buffered.
func (x *Exporter) Flush() error {
	if x.csv != nil {
		x.csv.Flush()
		if err := x.csv.Error(); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
	}
	if err := x.bw.Flush(); err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	return nil
}
