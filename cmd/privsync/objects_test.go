package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/privsync/privsync/ingest/objstore/objstoretest"
)

// splitCSV cuts a CSV file into n part files with the header each, as a
// warehouse writes them: part-00000.csv ... .
func splitCSV(t *testing.T, path string, n int) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	header, rows := lines[0], lines[1:]
	parts := map[string][]byte{}
	per := (len(rows) + n - 1) / n
	for i := 0; i < n; i++ {
		chunk := rows[min(i*per, len(rows)):min((i+1)*per, len(rows))]
		parts[fmt.Sprintf("part-%05d.csv", i)] = []byte(header + strings.Join(chunk, ""))
	}
	return parts
}

// writeDir writes parts into a new directory, with a _SUCCESS marker.
func writeDir(t *testing.T, parts map[string][]byte, success bool) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range parts {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if success {
		os.WriteFile(filepath.Join(dir, "_SUCCESS"), nil, 0o644)
	}
	return dir
}

func TestPlanS3AndGCSPrefixEqualsLocalDirectory(t *testing.T) {
	parts := splitCSV(t, "../../testdata/sample.csv", 3)
	dir := writeDir(t, parts, true)
	code, local, stderr := runPlan(t, "--format", "json", "--snapshot", dir)
	if code != ExitOK {
		t.Fatalf("plan of the local directory: exit %d\n%s", code, stderr)
	}

	s3 := objstoretest.StartS3(t, "warehouse")
	gcs := objstoretest.StartGCS(t, "warehouse")
	for name, data := range parts {
		s3.Put(t, "warehouse", "exports/privacy/2026-11-30/"+name, data)
		gcs.Put("warehouse", "exports/privacy/2026-11-30/"+name, data)
	}
	for _, extra := range []string{"_SUCCESS", ".part-00000.csv.crc", "part-00001.csv.crc", "_temporary/0/part-00009.csv"} {
		s3.Put(t, "warehouse", "exports/privacy/2026-11-30/"+extra, []byte("not data"))
		gcs.Put("warehouse", "exports/privacy/2026-11-30/"+extra, []byte("not data"))
	}
	s3.Requests()
	for _, in := range []string{s3.Input("warehouse", "exports/privacy/2026-11-30/"), "gs://warehouse/exports/privacy/2026-11-30/"} {
		code, remote, stderr := runPlan(t, "--format", "json", "--snapshot", in)
		if code != ExitOK {
			t.Fatalf("plan %s: exit %d\n%s", in, code, stderr)
		}
		if remote != local {
			t.Errorf("plan %s differs from the plan of the same files read locally:\n%s\nvs\n%s", in, remote, local)
		}
	}
	// CSV is streamed: whole-object GETs, no ranges.
	for _, g := range objstoretest.Gets(s3.Requests(), "part-") {
		if g.Range != "" || g.Status != http.StatusOK {
			t.Errorf("a CSV object read with %+v", g)
		}
	}
}

func TestObjectStorageProblemsExit2(t *testing.T) {
	s3 := objstoretest.StartS3(t, "b")
	parts := splitCSV(t, "../../testdata/sample.csv", 2)
	for name, data := range parts {
		s3.Put(t, "b", "half/"+name, data) // no _SUCCESS: half-written
		s3.Put(t, "b", "done/"+name, data)
	}
	s3.Put(t, "b", "done/_SUCCESS", nil)

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing prefix", []string{s3.Input("b", "nothing/")}, "no .csv or .parquet objects under prefix s3://b/nothing/"},
		{"missing bucket", []string{s3.Input("nobucket", "x/")}, "s3://nobucket/x/"},
		{"no marker, required", []string{"--require-success-marker", s3.Input("b", "half/")}, "has no _SUCCESS marker"},
		{"no marker, snapshot", []string{"--snapshot", s3.Input("b", "half/")}, "has no _SUCCESS marker"},
		{"local directory without marker, snapshot", []string{"--snapshot", writeDir(t, parts, false)}, "has no _SUCCESS marker"},
	} {
		code, _, stderr := runPlan(t, c.args...)
		if code != ExitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, want 2 saying %q:\n%s", c.name, code, c.want, stderr)
		}
	}
	for _, args := range [][]string{
		{s3.Input("b", "half/")}, // incremental: the marker is not required
		{"--snapshot", "--require-success-marker=false", s3.Input("b", "half/")},
		{"--snapshot", s3.Input("b", "done/")},
	} {
		if code, _, stderr := runPlan(t, args...); code != ExitOK {
			t.Errorf("plan %q: exit %d\n%s", args, code, stderr)
		}
	}

	// An object rewritten while privsync reads it (after its header was
	// checked, before its rows are read): exit 2, nothing planned.
	var once sync.Once
	gets := 0
	var mu sync.Mutex
	s3.SetBefore(func(r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "done/part-00001.csv") {
			return
		}
		mu.Lock()
		gets++
		n := gets
		mu.Unlock()
		if n == 2 {
			once.Do(func() {
				s3.Store("b", "done/part-00001.csv", append(parts["part-00001.csv"], "sfmc,new-row,,,delete,\n"...))
			})
		}
	})
	code, _, stderr := runPlan(t, s3.Input("b", "done/"))
	s3.SetBefore(nil)
	if code != ExitUsage || !strings.Contains(stderr, "s3://b/done/part-00001.csv: ") || !strings.Contains(stderr, "the object changed since it was listed") {
		t.Errorf("an object rewritten during the read: exit %d, want 2 naming it:\n%s", code, stderr)
	}

	// A credential the store refuses.
	t.Setenv("AWS_ACCESS_KEY_ID", "not-the-right-key")
	code, _, stderr = runPlan(t, s3.Input("b", "done/"))
	if code != ExitUsage || !strings.Contains(stderr, "access denied to s3://b/done/: check the credentials") {
		t.Errorf("a refused credential: exit %d, want 2 saying access denied:\n%s", code, stderr)
	}
}

// TestRunRecordsObjects: the summary names each object by URL with its
// size, ETag and SHA-256; a rewritten object is another input.
func TestRunRecordsObjects(t *testing.T) {
	s3 := objstoretest.StartS3(t, "b")
	parts := splitCSV(t, "../../testdata/e2e/desired.csv", 2)
	for name, data := range parts {
		s3.Put(t, "b", "export/"+name, data)
	}
	dir := t.TempDir()
	run := func() (string, summaryInputs) {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
		code := m.Exit(m.Run(t.Context(), []string{"run", "--config", demoConfig, "--ledger", filepath.Join(dir, "l.db"),
			"--report-dir", dir, "--wait", "5s", "--quiet", s3.Input("b", "export/")}))
		// 3 is fine: the in-process simulator forgets the first run's
		// pending requests, which the second run then finds expired.
		if code != ExitOK && code != ExitPartial {
			t.Fatalf("run: exit %d\n%s", code, errOut.String())
		}
		sums, _ := filepath.Glob(filepath.Join(dir, "*.summary.json"))
		var latest string
		for _, s := range sums {
			latest = max(latest, s)
		}
		data, err := os.ReadFile(latest)
		if err != nil {
			t.Fatal(err)
		}
		var r summaryInputs
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		return latest, r
	}
	first, r := run()
	if len(r.Inputs) != 2 {
		t.Fatalf("inputs %+v, want the two objects", r.Inputs)
	}
	for i, in := range r.Inputs {
		name := fmt.Sprintf("part-%05d.csv", i)
		sum := sha256.Sum256(parts[name])
		if in.Path != "s3://b/export/"+name || in.SHA256 != hex.EncodeToString(sum[:]) || in.Size != int64(len(parts[name])) || in.ETag == "" {
			t.Errorf("input %d: %+v, want URL, size %d, its SHA-256 and ETag", i, in, len(parts[name]))
		}
	}
	// Another export under the same name: another input, another run.
	s3.Put(t, "b", "export/part-00001.csv", append(parts["part-00001.csv"], "sfmc,late-row,,do_not_track,,\n"...))
	second, r2 := run()
	if second == first || r2.Inputs[1].ETag == r.Inputs[1].ETag || r2.Inputs[1].SHA256 == r.Inputs[1].SHA256 {
		t.Errorf("a rewritten object was not taken as a new input: %s %+v vs %s %+v", first, r.Inputs[1], second, r2.Inputs[1])
	}
}

type summaryInputs struct {
	Inputs []struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
		ETag   string `json:"etag"`
	} `json:"inputs"`
}

// TestPlanS3ParquetReadsRanges: Parquet part files in S3 plan as they do
// locally, and are read only by ranged GETs (footer, column chunks), never
// a whole-object GET.
func TestPlanS3ParquetReadsRanges(t *testing.T) {
	const local = "../../testdata/sample-parts"
	code, want, stderr := runPlan(t, "--format", "json", local)
	if code != ExitOK {
		t.Fatalf("plan of the local parts: exit %d\n%s", code, stderr)
	}
	s3 := objstoretest.StartS3(t, "b")
	err := filepath.WalkDir(local, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(local, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s3.Put(t, "b", "export/"+filepath.ToSlash(rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s3.Put(t, "b", "export/_SUCCESS", nil)
	s3.Requests()
	code, got, stderr := runPlan(t, "--format", "json", "--snapshot", s3.Input("b", "export/"))
	if code != ExitOK {
		t.Fatalf("plan of the S3 parts: exit %d\n%s", code, stderr)
	}
	if got != want {
		t.Errorf("the S3 plan differs from the local one:\n%s\nvs\n%s", got, want)
	}
	gets := objstoretest.Gets(s3.Requests(), ".parquet")
	if len(gets) == 0 {
		t.Fatal("no GET of a Parquet object")
	}
	for _, g := range gets {
		if !strings.HasPrefix(g.Range, "bytes=") || g.Status != http.StatusPartialContent {
			t.Errorf("a Parquet object read without a range: %+v", g)
		}
	}
	t.Logf("%d ranged GETs for %d Parquet objects", len(gets), 2)
}
