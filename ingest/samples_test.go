package ingest_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/privsync/privsync/ingest"
)

var sampleDir = filepath.Join("..", "testdata")

// TestSamples: the committed sample CSV, its Parquet twin (snappy, two row
// groups, restrictions as a list) and its part directory (zstd and gzip)
// give the same valid rows and the same rejects.
func TestSamples(t *testing.T) {
	want, infos := mustRead(t, ingest.Options{}, filepath.Join(sampleDir, "sample.csv"))
	if infos[0].Rows == 0 || infos[0].Rejected == 0 {
		t.Fatalf("sample.csv: %d rows, %d rejects; want some of both", infos[0].Rows, infos[0].Rejected)
	}
	for _, in := range []string{"sample.parquet", "sample-parts"} {
		t.Run(in, func(t *testing.T) {
			got, _ := mustRead(t, ingest.Options{}, filepath.Join(sampleDir, in))
			if !sameRows(got, want) {
				t.Log("if testdata/sample.csv changed, regenerate its twins with the commands atop bench/gen/main.go")
			}
			assertSameRows(t, got, want)
		})
	}
	t.Logf("%d rows, rejects: %q", len(want.rows), want.rejectReasons())
}

func TestBrokenSamples(t *testing.T) {
	for name, want := range map[string]string{
		"truncated.parquet": "truncated or corrupt parquet file: no PAR1 mark at its end",
		"no-subject.csv":    `missing required column "subject_id"`,
		"binary.csv":        "not a CSV file: it is gzip-compressed (decompress it first)",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(sampleDir, "broken", name)
			_, _, err := read(t, ingest.Options{}, path)
			var fe *ingest.FileError
			if !errors.As(err, &fe) || fe.Path != path || fe.Err.Error() != want {
				t.Errorf("err = %v, want a FileError for %s: %s", err, path, want)
			}
		})
	}
}
