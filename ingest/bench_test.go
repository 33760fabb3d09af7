package ingest

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gocarina/gocsv"
	"github.com/privsync/privsync"
	"github.com/privsync/privsync/bench/gen/gendata"
)

const benchRows = 1_000_000

var benchVendors = map[string]privsync.Kind{
	"sfmc": privsync.KindSFMC, "batch-ios": privsync.KindBatch, "bloomreach": privsync.KindBloomreach,
}

// nopHandler counts rows and keeps nothing.
type nopHandler struct{ rows, rejects int64 }

func (h *nopHandler) Row(*privsync.Row) error         { h.rows++; return nil }
func (h *nopHandler) Reject(*privsync.RowError) error { h.rejects++; return nil }

// benchInput generates benchRows rows into a temporary CSV, and a Parquet
// twin when parquet is set.
func benchInput(b *testing.B, parquet bool) string {
	b.Helper()
	if testing.Short() {
		b.Skip("1M-row benchmark skipped with -short")
	}
	dir := b.TempDir()
	p := filepath.Join(dir, "bench.csv")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if err := gendata.WriteRows(f, gendata.RowsOptions{N: benchRows, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if !parquet {
		return p
	}
	pq := filepath.Join(dir, "bench.parquet")
	if err := gendata.ConvertCSV(p, gendata.ParquetOptions{RowGroupRows: 250_000}, pq); err != nil {
		b.Fatal(err)
	}
	return pq
}

func benchRead(b *testing.B, path string) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		h := &nopHandler{}
		if _, err := Read(context.Background(), []string{path}, Options{Vendors: benchVendors}, h); err != nil {
			b.Fatal(err)
		}
		if h.rows != benchRows || h.rejects != 0 {
			b.Fatalf("%d rows, %d rejects", h.rows, h.rejects)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(benchRows*b.N), "allocs/row")
}

// BenchmarkReadCSV is the hot path: parse, validate and hash 1M rows.
func BenchmarkReadCSV(b *testing.B) { benchRead(b, benchInput(b, false)) }

// BenchmarkReadParquet reads the Parquet twin of the same rows.
func BenchmarkReadParquet(b *testing.B) { benchRead(b, benchInput(b, true)) }

// BenchmarkParseCSVRaw is encoding/csv with ReuseRecord alone: the ceiling.
func BenchmarkParseCSVRaw(b *testing.B) {
	path := benchInput(b, false)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r := csv.NewReader(bufio.NewReaderSize(f, csvBufferSize))
		r.ReuseRecord = true
		n := 0
		for {
			if _, err := r.Read(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
		f.Close()
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// gocsvRow is the row shape for gocsv's header-driven unmarshalling.
type gocsvRow struct {
	Vendor        string `csv:"vendor"`
	SubjectID     string `csv:"subject_id"`
	IDType        string `csv:"id_type"`
	Restrictions  string `csv:"restrictions"`
	Erasure       string `csv:"erasure"`
	AccessRequest string `csv:"access_request"`
	UpdatedAt     string `csv:"updated_at"`
}

// BenchmarkReadCSVGocsv is the same parse and validation through gocsv's
// fastest streaming path (Unmarshaller.Read), for comparison.
func BenchmarkReadCSVGocsv(b *testing.B) {
	path := benchInput(b, false)
	v, err := newValidator(benchVendors)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		um, err := gocsv.NewUnmarshaller(csv.NewReader(bufio.NewReaderSize(f, csvBufferSize)), gocsvRow{})
		if err != nil {
			b.Fatal(err)
		}
		var raw rawRow
		var row privsync.Row
		var rej privsync.RowError
		n := 0
		for {
			x, err := um.Read()
			if err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			g := x.(gocsvRow)
			raw.vals = [numFields]string{g.Vendor, g.SubjectID, g.IDType, g.Restrictions, g.Erasure, g.AccessRequest, g.UpdatedAt}
			if !v.validate(&raw, &row, &rej) {
				b.Fatalf("reject %+v", rej)
			}
			n++
		}
		f.Close()
		if n != benchRows {
			b.Fatalf("%d rows", n)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
