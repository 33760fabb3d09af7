package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/bench/gen/gendata"
	"github.com/privsync/privsync/ingest"
)

var testVendors = map[string]privsync.Kind{
	"sfmc":       privsync.KindSFMC,
	"batch-ios":  privsync.KindBatch,
	"bloomreach": privsync.KindBloomreach,
}

// collector keeps copies of everything Read hands it.
type collector struct {
	rows    []privsync.Row
	rejects []privsync.RowError
}

func (c *collector) Row(r *privsync.Row) error {
	c.rows = append(c.rows, *r)
	return nil
}

func (c *collector) Reject(e *privsync.RowError) error {
	c.rejects = append(c.rejects, *e)
	return nil
}

// withoutPlace drops File and Line from rows, to compare formats.
func (c *collector) withoutPlace() []privsync.Row {
	out := make([]privsync.Row, len(c.rows))
	for i, r := range c.rows {
		r.File, r.Line = "", 0
		out[i] = r
	}
	return out
}

// rejectReasons lists the rejects as "column: reason".
func (c *collector) rejectReasons() []string {
	out := make([]string, len(c.rejects))
	for i, e := range c.rejects {
		out[i] = e.Column + ": " + e.Reason
	}
	return out
}

func read(t testing.TB, opts ingest.Options, inputs ...string) (*collector, []ingest.FileInfo, error) {
	t.Helper()
	if opts.Vendors == nil {
		opts.Vendors = testVendors
	}
	c := &collector{}
	infos, err := ingest.Read(context.Background(), inputs, opts, c)
	return c, infos, err
}

func mustRead(t testing.TB, opts ingest.Options, inputs ...string) (*collector, []ingest.FileInfo) {
	t.Helper()
	c, infos, err := read(t, opts, inputs...)
	if err != nil {
		t.Fatalf("Read(%v): %v", inputs, err)
	}
	return c, infos
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// generate writes n generated rows into dir/name.csv.
func generate(t testing.TB, dir string, n int) string {
	t.Helper()
	p := filepath.Join(dir, "gen.csv")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := gendata.WriteRows(f, gendata.RowsOptions{N: n, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return p
}

func csvLines(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// convert writes a snappy Parquet twin of a CSV file.
func convert(src, out string) error {
	return gendata.ConvertCSV(src, gendata.ParquetOptions{}, out)
}
