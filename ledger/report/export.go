package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/gocarina/gocsv"
	"github.com/privsync/privsync/ledger"
	pqformat "github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/writer"
)

// ExportColumns are the columns of an export in CSV.
var ExportColumns = []string{"run_id", "seq", "recorded_at", "vendor", "subject_id", "id_type", "operation",
	"restrictions", "outcome", "vendor_ref", "attempts", "detail", "item_id"}

// ExportEvent is one event of an export: a JSON Lines object, or a CSV
// record (gocsv maps the struct to the columns, in ExportColumns order).
type ExportEvent struct {
	RunID        string `json:"run_id" csv:"run_id"`
	Seq          int64  `json:"seq" csv:"seq"`
	RecordedAt   string `json:"recorded_at" csv:"recorded_at"`
	Vendor       string `json:"vendor" csv:"vendor"`
	SubjectID    string `json:"subject_id" csv:"subject_id"`
	IDType       string `json:"id_type" csv:"id_type"`
	Operation    string `json:"operation" csv:"operation"`
	Restrictions string `json:"restrictions" csv:"restrictions"`
	Outcome      string `json:"outcome" csv:"outcome"`
	VendorRef    string `json:"vendor_ref" csv:"vendor_ref"`
	Attempts     int    `json:"attempts" csv:"attempts"`
	Detail       string `json:"detail" csv:"detail"`
	ItemID       int64  `json:"item_id,omitempty" csv:"item_id"`
}

func exportEvent(e *ledger.Event) ExportEvent {
	return ExportEvent{RunID: e.RunID, Seq: e.Seq, RecordedAt: e.RecordedAt, Vendor: e.Vendor,
		SubjectID: e.SubjectID, IDType: e.IDType, Operation: e.Operation, Restrictions: e.Restrictions,
		Outcome: e.Outcome, VendorRef: e.VendorRef, Attempts: e.Attempts, Detail: e.Detail, ItemID: e.ItemID}
}

// ParquetEvent is one event of a Parquet export, typed for loading back
// into a warehouse: recorded_at a TIMESTAMP (UTC, microseconds), attempts
// an INT32, the other columns as in ExportColumns.
type ParquetEvent struct {
	RunID        string `parquet:"name=run_id, type=BYTE_ARRAY, convertedtype=UTF8"`
	Seq          int64  `parquet:"name=seq, type=INT64"`
	RecordedAt   *int64 `parquet:"name=recorded_at, type=INT64, repetitiontype=OPTIONAL, logicaltype=TIMESTAMP, logicaltype.isadjustedtoutc=true, logicaltype.unit=MICROS"`
	Vendor       string `parquet:"name=vendor, type=BYTE_ARRAY, convertedtype=UTF8"`
	SubjectID    string `parquet:"name=subject_id, type=BYTE_ARRAY, convertedtype=UTF8"`
	IDType       string `parquet:"name=id_type, type=BYTE_ARRAY, convertedtype=UTF8"`
	Operation    string `parquet:"name=operation, type=BYTE_ARRAY, convertedtype=UTF8"`
	Restrictions string `parquet:"name=restrictions, type=BYTE_ARRAY, convertedtype=UTF8"`
	Outcome      string `parquet:"name=outcome, type=BYTE_ARRAY, convertedtype=UTF8"`
	VendorRef    string `parquet:"name=vendor_ref, type=BYTE_ARRAY, convertedtype=UTF8"`
	Attempts     int32  `parquet:"name=attempts, type=INT32"`
	Detail       string `parquet:"name=detail, type=BYTE_ARRAY, convertedtype=UTF8"`
	ItemID       int64  `parquet:"name=item_id, type=INT64"`
}

// parquetEvent types an event for a Parquet export.
func parquetEvent(e *ledger.Event) (ParquetEvent, error) {
	p := ParquetEvent{RunID: e.RunID, Seq: e.Seq, Vendor: e.Vendor, SubjectID: e.SubjectID, IDType: e.IDType,
		Operation: e.Operation, Restrictions: e.Restrictions, Outcome: e.Outcome, VendorRef: e.VendorRef,
		Attempts: int32(e.Attempts), Detail: e.Detail, ItemID: e.ItemID}
	if e.RecordedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, e.RecordedAt)
		if err != nil {
			return p, fmt.Errorf("event %d of run %s: recorded_at %q: %w", e.Seq, e.RunID, e.RecordedAt, err)
		}
		us := t.UnixMicro()
		p.RecordedAt = &us
	}
	return p, nil
}

// exportRowGroupBytes bounds the row groups of a Parquet export, which
// the writer holds in memory until they are full.
const exportRowGroupBytes = 16 << 20

// Exporter writes ledger events for a person or an auditor: CSV (with the
// report's spreadsheet safety), JSON Lines or Parquet (the values as
// recorded).
type Exporter struct {
	bw    *bufio.Writer
	csv   *gocsv.SafeCSVWriter
	json  *json.Encoder
	pq    *writer.ParquetWriter
	batch []ExportEvent
	count int64
}

// exportBatch is how many CSV records are marshalled at once.
const exportBatch = 1024

// NewExporter returns an Exporter writing format ("csv", "jsonl" or
// "parquet", snappy-compressed) to w. A CSV export starts with its header.
func NewExporter(w io.Writer, format string) (*Exporter, error) {
	x := &Exporter{bw: bufio.NewWriterSize(w, 64<<10)}
	switch format {
	case "csv":
		x.csv = gocsv.NewSafeCSVWriter(csv.NewWriter(x.bw))
		if err := x.csv.Write(ExportColumns); err != nil {
			return nil, fmt.Errorf("writing the export: %w", err)
		}
	case "jsonl":
		x.json = json.NewEncoder(x.bw)
		x.json.SetEscapeHTML(false)
	case "parquet":
		pw, err := writer.NewParquetWriterFromWriter(x.bw, new(ParquetEvent), 1)
		if err != nil {
			return nil, fmt.Errorf("writing the export: %w", err)
		}
		pw.CompressionType = pqformat.CompressionCodec_SNAPPY
		pw.RowGroupSize = exportRowGroupBytes
		x.pq = pw
	default:
		return nil, fmt.Errorf("export format %q: use csv, jsonl or parquet", format)
	}
	return x, nil
}

// Write writes one event.
func (x *Exporter) Write(e *ledger.Event) error {
	x.count++
	if x.pq != nil {
		ev, err := parquetEvent(e)
		if err != nil {
			return err
		}
		if err := x.pq.Write(ev); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
		return nil
	}
	ev := exportEvent(e)
	if x.json != nil {
		if err := x.json.Encode(ev); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
		return nil
	}
	// The report's spreadsheet safety, on every field that comes from outside.
	for _, f := range []*string{&ev.RunID, &ev.RecordedAt, &ev.Vendor, &ev.SubjectID, &ev.IDType, &ev.Operation,
		&ev.Restrictions, &ev.Outcome, &ev.VendorRef, &ev.Detail} {
		*f = Safe(*f)
	}
	x.batch = append(x.batch, ev)
	if len(x.batch) >= exportBatch {
		return x.flushBatch()
	}
	return nil
}

func (x *Exporter) flushBatch() error {
	if len(x.batch) == 0 {
		return nil
	}
	err := gocsv.MarshalCSVWithoutHeaders(x.batch, x.csv)
	x.batch = x.batch[:0]
	if err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	return nil
}

// Count returns the number of events written.
func (x *Exporter) Count() int64 { return x.count }

// Flush writes out what is buffered.
func (x *Exporter) Flush() error {
	if x.csv != nil {
		if err := x.flushBatch(); err != nil {
			return err
		}
		x.csv.Flush()
		if err := x.csv.Error(); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
	}
	if x.pq != nil {
		if err := x.pq.WriteStop(); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
	}
	if err := x.bw.Flush(); err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	return nil
}
