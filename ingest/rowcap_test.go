package ingest_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/privsync/privsync/ingest"
)

// TestLongRowKeepsMemoryFlat: a row far above the cap is refused with its
// row number after reading little more than the cap, whatever its length.
func TestLongRowKeepsMemoryFlat(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, head string
		row        int64
	}{
		{"header", "", 1},
		{"data row", header + "\nsfmc,p1,,,,,\n", 3},
		{"quoted lines", header + "\nsfmc,\"", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".csv")
			body := strings.Repeat("x", 1<<20)
			if tc.name == "quoted lines" {
				body = strings.Repeat("x\n", 1<<19)
			}
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.head)
			for range 32 { // 32 MiB
				f.WriteString(body)
			}
			f.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err = read(t, ingest.Options{}, path)
			runtime.ReadMemStats(&after)
			var fe *ingest.FileError
			if !errors.As(err, &fe) || fe.Line != tc.row || !strings.Contains(err.Error(), "longer than 1 MiB") {
				t.Fatalf("err = %v, want a FileError at row %d saying the row is too long", err, tc.row)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("reading a 32 MiB row allocated %d MiB, want it refused within a few MiB", alloc>>20)
			}
		})
	}
}

// TestRowJustUnderTheCapIsRead: the cap refuses nothing legitimate.
func TestRowJustUnderTheCapIsRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.csv")
	pad := strings.Repeat("a", ingest.MaxRowBytes-200)
	content := "vendor,subject_id,id_type,restrictions,erasure,access_request,updated_at,notes\n" +
		"sfmc,p1,,do_not_track,,,," + pad + "\nsfmc,p2,,,,,,\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _, err := read(t, ingest.Options{}, path)
	if err != nil || len(c.rows) != 2 {
		t.Fatalf("rows %d, err %v; want both rows", len(c.rows), err)
	}
}
