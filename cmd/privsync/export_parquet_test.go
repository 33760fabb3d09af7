package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/privsync/privsync/ledger/report"
)

// TestReportExportParquetRoundTrip: `report export --format parquet`
// (written with xitongsys/parquet-go) read back with arrow-go holds the
// CSV export's events, column for column, with recorded_at a UTC
// TIMESTAMP and attempts an INT32.
func TestReportExportParquetRoundTrip(t *testing.T) {
	fx := newReportFixture(t)
	for _, sel := range [][]string{{"--run", "run-1"}, {"--run", "run-2"}, {"--subject", "=1+1"}} {
		t.Run(strings.Join(sel, " "), func(t *testing.T) {
			args := append([]string{"export", "--ledger", fx.ledger}, sel...)
			code, csvOut, errOut := runReport(t, append(args, "--format", "csv")...)
			if code != ExitOK {
				t.Fatalf("csv export: exit %d\n%s", code, errOut)
			}
			want, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			code, pqOut, errOut := runReport(t, append(args, "--format", "parquet")...)
			if code != ExitOK {
				t.Fatalf("parquet export: exit %d\n%s", code, errOut)
			}
			got := readExport(t, []byte(pqOut))
			if len(got) != len(want)-1 || len(got) == 0 {
				t.Fatalf("%d parquet rows, %d csv rows", len(got), len(want)-1)
			}
			for i, rec := range want[1:] {
				if strings.Join(got[i], "\x00") != strings.Join(rec, "\x00") {
					t.Errorf("row %d:\nparquet %q\n    csv %q", i+1, got[i], rec)
				}
			}
		})
	}
}

// readExport reads a Parquet export with arrow-go, checks its column types
// and renders its rows as the CSV export does (spreadsheet safety included).
func readExport(t *testing.T, data []byte) [][]string {
	t.Helper()
	rd, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sc := rd.MetaData().Schema
	for i := range sc.NumColumns() {
		c := sc.Column(i)
		if c.Name() != report.ExportColumns[i] {
			t.Fatalf("column %d is %s, want %s", i, c.Name(), report.ExportColumns[i])
		}
	}
	at := sc.Column(2)
	if ts, ok := at.LogicalType().(schema.TimestampLogicalType); !ok || !ts.IsAdjustedToUTC() || ts.TimeUnit() != schema.TimeUnitMicros {
		t.Errorf("recorded_at is %s %s, want a UTC TIMESTAMP in microseconds", at.PhysicalType(), at.LogicalType())
	}
	if c := sc.Column(10); c.PhysicalType().String() != "INT32" {
		t.Errorf("attempts is %s, want INT32", c.PhysicalType())
	}
	var rows [][]string
	for g := range rd.NumRowGroups() {
		rg := rd.RowGroup(g)
		n := int(rg.NumRows())
		base := len(rows)
		for range n {
			rows = append(rows, make([]string, sc.NumColumns()))
		}
		for c := range sc.NumColumns() {
			cr, err := rg.Column(c)
			if err != nil {
				t.Fatal(err)
			}
			defs := make([]int16, n)
			var vals []string
			switch cr := cr.(type) {
			case *file.ByteArrayColumnChunkReader:
				v := make([]parquet.ByteArray, n)
				_, k, err := cr.ReadBatch(int64(n), v, defs, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range v[:k] {
					vals = append(vals, report.Safe(string(x)))
				}
			case *file.Int32ColumnChunkReader:
				v := make([]int32, n)
				_, k, err := cr.ReadBatch(int64(n), v, defs, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range v[:k] {
					vals = append(vals, fmt.Sprint(x))
				}
			case *file.Int64ColumnChunkReader:
				v := make([]int64, n)
				_, k, err := cr.ReadBatch(int64(n), v, defs, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range v[:k] {
					if c == 2 {
						vals = append(vals, time.UnixMicro(x).UTC().Format(time.RFC3339))
					} else {
						vals = append(vals, fmt.Sprint(x))
					}
				}
			default:
				t.Fatalf("column %d: unexpected reader %T", c, cr)
			}
			for i, k := 0, 0; i < n; i++ {
				if sc.Column(c).MaxDefinitionLevel() > 0 && defs[i] == 0 {
					continue // null: empty, as in the CSV
				}
				rows[base+i][c] = vals[k]
				k++
			}
		}
	}
	return rows
}
