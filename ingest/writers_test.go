package ingest_test

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
)

var writersDir = filepath.Join("..", "testdata", "parquet")

// TestParquetWriters reads every file of testdata/parquet, written by
// DuckDB, arrow-rs, Polars, hyparquet-writer, arrow-go and
// parquet-go/parquet-go (see testdata/parquet/gen), and compares its rows
// and rejects with those of its CSV twin: rows.csv, or int-rows.csv for
// the files of int-ids/. A directory (hive partitions) is read whole.
func TestParquetWriters(t *testing.T) {
	twins := map[string]*collector{}
	for _, name := range []string{"rows.csv", "int-rows.csv"} {
		c, _ := mustRead(t, ingest.Options{}, filepath.Join(writersDir, name))
		if len(c.rows) == 0 {
			t.Fatalf("%s: no rows", name)
		}
		twins[name] = c
	}
	var inputs []string
	for _, glob := range []string{"*.parquet", "int-ids/*.parquet", "*-partitioned"} {
		m, err := filepath.Glob(filepath.Join(writersDir, glob))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, m...)
	}
	if len(inputs) < 25 {
		t.Fatalf("only %d inputs in %s", len(inputs), writersDir)
	}
	writers := map[string]int{}
	for _, in := range inputs {
		name, _ := filepath.Rel(writersDir, in)
		writers[strings.SplitN(strings.TrimSuffix(filepath.Base(name), ".parquet"), "-", 2)[0]]++
		t.Run(name, func(t *testing.T) {
			want := twins["rows.csv"]
			if strings.HasPrefix(name, "int-ids") {
				want = twins["int-rows.csv"]
			}
			got, infos := mustRead(t, ingest.Options{}, in)
			if st, _ := os.Stat(in); st.IsDir() {
				if len(infos) < 2 {
					t.Fatalf("%d files read in a partitioned directory", len(infos))
				}
				// Partitions are written by vendor: compare in key order.
				got, want = sortedRows(got), sortedRows(want)
			}
			assertSameRows(t, got, want)
		})
	}
	for _, w := range []string{"duckdb", "arrow", "polars", "hyparquet", "parquet"} {
		if writers[w] == 0 {
			t.Errorf("no file of %s in %s", w, writersDir)
		}
	}
}

// sortedRows orders rows and rejects by vendor and subject.
func sortedRows(c *collector) *collector {
	out := &collector{rows: slices.Clone(c.rows), rejects: slices.Clone(c.rejects)}
	slices.SortFunc(out.rows, func(a, b privsync.Row) int {
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.SubjectID, b.SubjectID))
	})
	slices.SortFunc(out.rejects, func(a, b privsync.RowError) int {
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.SubjectID, b.SubjectID))
	})
	return out
}

// TestHivePartitions: a key=value directory supplies a column the files
// lack, URL-decoded; a file whose column disagrees with its directory is
// an error naming both.
func TestHivePartitions(t *testing.T) {
	part := filepath.Join(writersDir, "duckdb-partitioned", "vendor=sfmc")
	parts, err := filepath.Glob(filepath.Join(part, "*.parquet"))
	if err != nil || len(parts) != 1 {
		t.Fatalf("partition files: %v %v", parts, err)
	}
	want, _ := mustRead(t, ingest.Options{}, part)
	if len(want.rows) == 0 || want.rows[0].Vendor != "sfmc" {
		t.Fatalf("rows of %s: %+v", part, want.rows)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "out/vendor=sf%6Dc/part-0.parquet", string(data))
	got, _ := mustRead(t, ingest.Options{}, filepath.Join(dir, "out"))
	assertSameRows(t, got, want)

	whole, err := os.ReadFile(filepath.Join(writersDir, "duckdb-snappy.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, dir, "vendor=sfmc/part-1.parquet", string(whole))
	_, _, err = read(t, ingest.Options{}, p)
	var fe *ingest.FileError
	const msg = `column vendor is "batch-ios" in the file but "sfmc" in its directory vendor=sfmc`
	if !errors.As(err, &fe) || fe.Path != p || fe.Err.Error() != msg || fe.Line != 5 {
		t.Fatalf("err = %v, want a FileError at row 5 of %s: %s", err, p, msg)
	}
}
