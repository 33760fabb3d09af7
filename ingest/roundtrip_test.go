package ingest_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/privsync/privsync/bench/gen/gendata"
	"github.com/privsync/privsync/ingest"
)

// TestRoundTrip reads the same rows from a CSV, from Parquet twins written
// in every supported way and from a directory of parts.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := generate(t, dir, 10000) // more rows than ParquetBatchRows, many pages
	want, infos := mustRead(t, ingest.Options{}, src)
	if len(want.rows) != 10000 || len(want.rejects) != 0 {
		t.Fatalf("CSV: %d rows, %d rejects; want 10000, 0: %v", len(want.rows), len(want.rejects), want.rejectReasons())
	}
	if infos[0].Rows != 10000 || infos[0].Format != ingest.FormatCSV || len(infos[0].SHA256) != 64 {
		t.Errorf("CSV info = %+v", infos[0])
	}
	cases := []struct {
		name  string
		opts  gendata.ParquetOptions
		parts int
	}{
		{"snappy", gendata.ParquetOptions{Compressions: []string{"snappy"}}, 0},
		{"snappy-small-pages", gendata.ParquetOptions{Compressions: []string{"snappy"}, PageSize: 8 << 10}, 0},
		{"gzip-groups-list", gendata.ParquetOptions{Compressions: []string{"gzip"}, RowGroupRows: 300, ListRestrictions: true, PageSize: 4 << 10}, 0},
		{"zstd-plain-micros", gendata.ParquetOptions{Compressions: []string{"zstd"}, RowGroupRows: 1000, Plain: true, Timestamp: "micros", PageSize: 8 << 10}, 0},
		{"snappy-millis", gendata.ParquetOptions{Timestamp: "millis"}, 0},
		{"gzip-int96", gendata.ParquetOptions{Compressions: []string{"gzip"}, Timestamp: "int96", ListRestrictions: true}, 0},
		{"uncompressed-list-dict", gendata.ParquetOptions{Compressions: []string{"none"}, ListRestrictions: true}, 0},
		{"parts", gendata.ParquetOptions{Compressions: []string{"zstd", "gzip", "snappy"}, RowGroupRows: 200}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := filepath.Join(dir, tc.name+".parquet")
			outs := []string{input}
			if tc.parts > 0 {
				input = filepath.Join(dir, tc.name)
				outs = outs[:0]
				for k := range tc.parts {
					outs = append(outs, gendata.PartPath(input, k+1))
				}
			}
			if err := gendata.ConvertCSV(src, tc.opts, outs...); err != nil {
				t.Fatal(err)
			}
			got, infos := mustRead(t, ingest.Options{}, input)
			if len(got.rejects) != 0 {
				t.Fatalf("rejects: %v", got.rejectReasons())
			}
			assertSameRows(t, got, want)
			if len(infos) != len(outs) {
				t.Fatalf("%d files read, want %d", len(infos), len(outs))
			}
			for i, info := range infos {
				if info.Path != outs[i] || info.Format != ingest.FormatParquet || len(info.SHA256) != 64 || info.Size == 0 {
					t.Errorf("info %d = %+v", i, info)
				}
			}
			if got.rows[0].Line != 1 || got.rows[0].File != outs[0] {
				t.Errorf("first row at %s:%d, want %s:1", got.rows[0].File, got.rows[0].Line, outs[0])
			}
		})
	}
}

// sameRows reports whether got has want's rows and rejects.
func sameRows(got, want *collector) bool {
	return reflect.DeepEqual(got.withoutPlace(), want.withoutPlace()) && slices.Equal(got.rejectReasons(), want.rejectReasons())
}

func assertSameRows(t *testing.T, got, want *collector) {
	t.Helper()
	g, w := got.withoutPlace(), want.withoutPlace()
	if len(g) != len(w) {
		t.Fatalf("%d rows, want %d", len(g), len(w))
	}
	for i := range g {
		if !reflect.DeepEqual(g[i], w[i]) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, g[i], w[i])
		}
	}
	if gr, wr := got.rejectReasons(), want.rejectReasons(); !slices.Equal(gr, wr) {
		t.Fatalf("rejects:\n got %q\nwant %q", gr, wr)
	}
}
