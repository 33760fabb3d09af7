package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
)

// wantDialect are the rows every spelling of dialectCSV must give.
var wantDialect = []privsync.Row{
	{Line: 2, Key: privsync.Key{Vendor: "sfmc", SubjectID: "p,1"}, Restrictions: privsync.DoNotTrack | privsync.DoNotProfile,
		UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	{Line: 3, Key: privsync.Key{Vendor: "batch-ios", IDType: "custom_id", SubjectID: "u-2"}, Erasure: privsync.EraseDelete,
		AccessRequest: "AR-1\nsecond line \"quoted\""},
	{Line: 4, Key: privsync.Key{Vendor: "bloomreach", IDType: "internal_id", SubjectID: "5f1a2b3c4d5e6f7a8b9c0d1e"},
		UpdatedAt: time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)},
	{Line: 5, Key: privsync.Key{Vendor: "sfmc", SubjectID: "p-é"}, Restrictions: privsync.DoNotProcess},
}

// dialectCSV has quoted fields with commas, newlines and quotes, columns in
// another order, an ignored column and an updated_at with an offset.
var dialectCSV = []string{
	`country, subject_id ,vendor,id_type,restrictions,erasure,access_request,updated_at`,
	`FR,"p,1",sfmc,,"do_not_track | do_not_profile",,,2026-01-02T03:04:05Z`,
	`DE,u-2,batch-ios,custom_id,,delete,"AR-1` + "\n" + `second line ""quoted""",`,
	`US,5f1a2b3c4d5e6f7a8b9c0d1e,bloomreach,internal_id,,,,2026-01-02T03:04:05+01:00`,
	``,
	`IT,p-é,sfmc,,do_not_process,,,`,
}

func TestCSVDialects(t *testing.T) {
	plain := strings.Join(dialectCSV, "\n") + "\n"
	cases := map[string]string{
		"plain":          plain,
		"no final EOL":   strings.TrimSuffix(plain, "\n"),
		"BOM":            "\uFEFF" + plain,
		"CRLF":           strings.ReplaceAll(plain, "\n", "\r\n"),
		"BOM CRLF":       "\uFEFF" + strings.ReplaceAll(plain, "\n", "\r\n"),
		"quoted header":  "\uFEFF" + strings.Replace(plain, "country,", `"country",`, 1),
		"header spacing": strings.Replace(plain, "vendor,", " vendor\t,", 1),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "in.csv", content)
			got, infos := mustRead(t, ingest.Options{}, p)
			if len(got.rejects) > 0 {
				t.Fatalf("rejects: %v", got.rejectReasons())
			}
			want := slices.Clone(wantDialect)
			for i := range want {
				want[i].File = p
				if strings.Contains(name, "CRLF") && want[i].AccessRequest != "" {
					want[i].AccessRequest = "AR-1\nsecond line \"quoted\"" // csv turns a quoted \r\n into \n
				}
			}
			if !slices.Equal(got.rows, want) {
				t.Errorf("rows\n got %+v\nwant %+v", got.rows, want)
			}
			sum := sha256.Sum256([]byte(content))
			if infos[0].SHA256 != hex.EncodeToString(sum[:]) || infos[0].Size != int64(len(content)) || infos[0].Rows != 4 {
				t.Errorf("info = %+v", infos[0])
			}
		})
	}
}

func TestStdin(t *testing.T) {
	content := "\uFEFF" + strings.Join(dialectCSV, "\r\n")
	dir := t.TempDir()
	file := writeFile(t, dir, "a.csv", csvLines(header, "sfmc,p-0,,,,,"))
	got, infos := mustRead(t, ingest.Options{Stdin: strings.NewReader(content)}, file, "-")
	if len(got.rows) != 5 || got.rows[1].File != "-" || got.rows[1].Line != 2 || got.rows[4].SubjectID != "p-é" {
		t.Fatalf("rows = %+v", got.rows)
	}
	sum := sha256.Sum256([]byte(content))
	if infos[1].Path != "-" || infos[1].SHA256 != hex.EncodeToString(sum[:]) || infos[1].Size != int64(len(content)) {
		t.Errorf("stdin info = %+v", infos[1])
	}
	if _, err := ingest.Expand([]string{"-", "-"}); err == nil {
		t.Error("Expand accepted standard input twice")
	}
}

func TestColumnRenames(t *testing.T) {
	content := csvLines("Vendor Name,profile_hash,subject_id,kind", "sfmc,p-1,ignored,", "batch-ios,u-1,ignored,install_id")
	p := writeFile(t, t.TempDir(), "in.csv", content)
	opts := ingest.Options{Columns: map[string]string{"vendor": "Vendor Name", "subject_id": "profile_hash", "id_type": "kind"}}
	got, _ := mustRead(t, opts, p)
	want := []privsync.Row{
		{File: p, Line: 2, Key: privsync.Key{Vendor: "sfmc", SubjectID: "p-1"}},
		{File: p, Line: 3, Key: privsync.Key{Vendor: "batch-ios", IDType: "install_id", SubjectID: "u-1"}},
	}
	if !slices.Equal(got.rows, want) || len(got.rejects) != 0 {
		t.Errorf("rows = %+v, rejects %v", got.rows, got.rejectReasons())
	}
	for _, cols := range []map[string]string{
		{"subject": "x"},
		{"subject_id": " "},
		{"subject_id": "vendor"},
	} {
		if _, _, err := read(t, ingest.Options{Columns: cols}, p); err == nil {
			t.Errorf("Columns %v accepted", cols)
		}
	}
}

func TestExpandDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"part=2/data_0.parquet", "part=1/data_1.CSV", "part=1/data_0.csv", "_SUCCESS",
		"part=1/.data_0.csv.crc", "part=1/data_0.csv.crc", ".hidden/x.csv", "_temporary/0/x.csv", "part=10/a.csv",
	} {
		writeFile(t, dir, name, "")
	}
	got, err := ingest.Expand([]string{dir, "-"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "part=1/data_0.csv"), filepath.Join(dir, "part=1/data_1.CSV"),
		filepath.Join(dir, "part=10/a.csv"), filepath.Join(dir, "part=2/data_0.parquet"), "-",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Expand = %q\nwant %q", got, want)
	}
}

// TestCheckBeforeStreaming: a bad second input stops Read before any row of
// the first is streamed.
func TestCheckBeforeStreaming(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "a.csv", csvLines(header, "sfmc,p-1,,,,,"))
	bad := writeFile(t, dir, "b.csv", csvLines("vendor", "sfmc"))
	got, _, err := read(t, ingest.Options{}, good, bad)
	var fe *ingest.FileError
	if !errors.As(err, &fe) || fe.Path != bad {
		t.Fatalf("err = %v, want a FileError for %s", err, bad)
	}
	if len(got.rows) != 0 {
		t.Errorf("%d rows streamed before the check failed", len(got.rows))
	}
	if err := ingest.Check(context.Background(), []string{good}, ingest.Options{Vendors: testVendors}); err != nil {
		t.Errorf("Check(good) = %v", err)
	}
	if err := ingest.Check(context.Background(), []string{good, bad}, ingest.Options{Vendors: testVendors}); !errors.As(err, &fe) {
		t.Errorf("Check(bad) = %v", err)
	}
}

type countingProgress struct{ n atomic.Int64 }

func (c *countingProgress) Add(n int64) { c.n.Add(n) }

type failingHandler struct {
	collector
	after int
}

var errStop = errors.New("stop")

func (f *failingHandler) Row(r *privsync.Row) error {
	if len(f.rows) == f.after {
		return errStop
	}
	return f.collector.Row(r)
}

func TestProgressAndStops(t *testing.T) {
	dir := t.TempDir()
	src := generate(t, dir, 30000)
	pq := filepath.Join(dir, "gen.parquet")
	if err := convert(src, pq); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{src, pq} {
		var prog countingProgress
		_, infos := mustRead(t, ingest.Options{Progress: &prog}, p)
		st, _ := os.Stat(p)
		if prog.n.Load() != st.Size() || infos[0].Size != st.Size() || infos[0].Rows != 30000 {
			t.Errorf("%s: progress %d, info %+v; size %d", p, prog.n.Load(), infos[0], st.Size())
		}
		h := &failingHandler{after: 10}
		if _, err := ingest.Read(context.Background(), []string{p}, ingest.Options{Vendors: testVendors}, h); !errors.Is(err, errStop) {
			t.Errorf("%s: handler error: Read = %v", p, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := ingest.Read(ctx, []string{p}, ingest.Options{Vendors: testVendors}, &collector{}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: canceled: Read = %v", p, err)
		}
	}
}
