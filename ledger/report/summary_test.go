package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

var testInfo = SummaryInfo{
	Mode:       "incremental",
	StartedAt:  time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC),
	FinishedAt: time.Date(2026, 11, 23, 6, 4, 30, 0, time.UTC),
	Inputs: []InputFile{{Path: "exports/decisions-2026-11-23.csv", Format: "csv",
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Size: 4096, Rows: 8, Rejected: 1}},
}

func TestWriteSummary(t *testing.T) {
	dir := t.TempDir()
	evs := testEvents()
	for _, id := range []string{"alice@example.com", "bob@example.com"} { // vendor messages that name the subject
		evs = append(evs, &ledger.Event{RunID: testRun, Seq: int64(len(evs) + 1), RecordedAt: "2026-11-23T06:01:00Z",
			Vendor: "bloomreach", SubjectID: id, IDType: "registered", Operation: "anonymize", Outcome: "failed", Attempts: 7,
			Detail: "the vendor rejected it: HTTP 400: customer registered:" + id + " cannot be anonymized"})
	}
	if err := WriteSummary(context.Background(), dir, testRun, &fakeSource{events: evs}, testInfo); err != nil {
		t.Fatal(err)
	}
	jsonPath, mdPath := SummaryPaths(dir, testRun)
	js, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	mdText, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.json", js)
	golden(t, "summary.golden.md", mdText)
	page, err := os.ReadFile(HTMLPath(dir, testRun))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.html", page)
	checkSelfContained(t, page)

	// The summary describes the report beside it, which it completed.
	csvBytes, err := os.ReadFile(Path(dir, testRun))
	if err != nil {
		t.Fatal(err)
	}
	rows, final, err := Verify(bytes.NewReader(csvBytes))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ReadSummary(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if s.Report.Rows != int64(rows) || s.Report.FinalHash != final {
		t.Errorf("summary says %d rows, %s; report has %d, %s", s.Report.Rows, s.Report.FinalHash, rows, final)
	}
	// Counts are the report's rows.
	var total int64
	for _, ops := range s.Counts {
		for _, outs := range ops {
			for _, n := range outs {
				total += n
			}
		}
	}
	if total != int64(rows) {
		t.Errorf("counts add up to %d, the report has %d rows", total, rows)
	}
	if got := s.Counts["batch-ios"]["remove"]["failed"]; got != 1 {
		t.Errorf("batch-ios remove failed = %d, want 1", got)
	}
	if got := s.Counts["(none)"]["(none)"]["rejected"]; got != 1 {
		t.Errorf("rejected rows = %d, want 1", got)
	}
	// Subject ids stay out of the summary.
	for _, e := range evs {
		id := strings.TrimSpace(e.SubjectID)
		if len(id) > 3 && (bytes.Contains(js, []byte(id)) || bytes.Contains(mdText, []byte(id)) || bytes.Contains(page, []byte(id))) {
			t.Errorf("the summary names subject %q", id)
		}
	}
	if !bytes.Contains(mdText, []byte("2 at bloomreach: the vendor rejected it: HTTP 400: customer registered:(subject id) cannot be anonymized")) {
		t.Error("the summary does not group vendor messages that name their subject")
	}
	if bytes.Contains(mdText, []byte("acme")) {
		t.Error("the summary quotes an input value")
	}
}

func TestWriteSummaryEmptyRun(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSummary(context.Background(), dir, testRun, &fakeSource{}, SummaryInfo{Mode: "snapshot"}); err != nil {
		t.Fatal(err)
	}
	jsonPath, mdPath := SummaryPaths(dir, testRun)
	s, err := ReadSummary(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if s.Report.Rows != 0 || s.Report.FinalHash != ZeroHash || s.Inputs == nil {
		t.Errorf("empty summary: %+v", s)
	}
	md, _ := os.ReadFile(mdPath)
	for _, want := range []string{"Nothing had to be sent", "Nothing failed", "Nothing is pending"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("summary does not say %q:\n%s", want, md)
		}
	}
}

func TestParseInputs(t *testing.T) {
	// As the ledger stores ingest.FileInfo: Go field names.
	raw := json.RawMessage(`[{"Path":"a.csv","Format":"csv","SHA256":"abc","Size":10,"Rows":3,"Rejected":1}]`)
	in, err := ParseInputs(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 || in[0] != (InputFile{Path: "a.csv", Format: "csv", SHA256: "abc", Size: 10, Rows: 3, Rejected: 1}) {
		t.Errorf("ParseInputs = %+v", in)
	}
	if in, err := ParseInputs(nil); err != nil || in != nil {
		t.Errorf("ParseInputs(nil) = %v, %v", in, err)
	}
	if _, err := ParseInputs(json.RawMessage(`{`)); err == nil {
		t.Error("ParseInputs accepted bad JSON")
	}
}

func TestReasonOf(t *testing.T) {
	for in, want := range map[string]string{
		`in.csv: row 7, column vendor: unknown vendor (got "acme")`: "unknown vendor",
		`in.csv: row 7: the row has 3 columns`:                      "the row has 3 columns",
		`in.csv row 8: the row asks to undo an erasure`:             "the row asks to undo an erasure",
		"409: user has a pending request":                           "409: user has a pending request",
		"":                                                          "(no detail)",
		"multi\n  line":                                             "multi line",
	} {
		if got := reasonOf(in); got != want {
			t.Errorf("reasonOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPythonRecipe runs the README's recipe on a report, when python3 is
// installed: legal must be able to check a report without privsync.
func TestPythonRecipe(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	dir, b := writeReport(t, testEvents())
	rows, final, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", PythonRecipe, Path(dir, testRun)).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if want := fmt.Sprint(rows, " rows, final hash ", final); strings.TrimSpace(string(out)) != want {
		t.Errorf("python3 says %q, want %q", out, want)
	}
	// And it catches an edit.
	bad := bytes.Replace(b, []byte("completed"), []byte("Completed"), 1)
	path := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "-c", PythonRecipe, path).CombinedOutput(); err == nil || !bytes.Contains(out, []byte("row 1 is bad")) {
		t.Errorf("python3 accepted an edited report: %v\n%s", err, out)
	}
}

// TestRealLedger writes a report from a real ledger, through its exported
// API, and summarises it.
func TestRealLedger(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := ledger.Open(ctx, filepath.Join(dir, "privsync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Now = func() time.Time { return time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC) }
	run := &ledger.Run{ID: "run-1", StartedAt: db.Now(), Mode: "incremental"}
	inputs := []map[string]any{{"Path": "in.csv", "Format": "csv", "SHA256": "abc", "Size": 99, "Rows": 3, "Rejected": 2}}
	if err := db.StartRun(ctx, run, inputs); err != nil {
		t.Fatal(err)
	}
	err = db.WritePlan(ctx, run.ID, func(_ planner.Ledger, sink planner.Sink) error {
		for i, id := range []string{"=cmd|' /C calc'!A0", "u-2"} {
			re := &privsync.RowError{File: "in.csv", Line: int64(i + 2), Column: "vendor", Value: "acme", Reason: "unknown vendor", Vendor: "acme", SubjectID: id}
			if err := sink.Reject(ctx, re, uint64(i+1)); err != nil {
				return err
			}
		}
		return sink.Entry(ctx, &planner.Entry{Key: privsync.Key{Vendor: "bloomreach", IDType: "registered", SubjectID: "u-3"},
			File: "in.csv", Line: 4, FP: 3, Decision: planner.Decision{Notes: []planner.Note{
				{Outcome: privsync.OutcomeUnsupported, Operation: privsync.OpAnonymize, Detail: "bloomreach cannot suppress"}}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	reports := filepath.Join(dir, "reports")
	w, err := Open(reports, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := db.RunInputs(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInputs(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSummary(ctx, reports, run.ID, db, SummaryInfo{Mode: run.Mode, StartedAt: run.StartedAt, Inputs: in}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(Path(reports, run.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, final, err := Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ReadSummary(filepath.Join(reports, "run-1.summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 || s.Report.Rows != 3 || s.Report.FinalHash != final {
		t.Errorf("report %d rows %s, summary %+v", rows, final, s.Report)
	}
	if s.Counts["acme"]["(none)"]["rejected"] != 2 || s.Counts["bloomreach"]["anonymize"]["unsupported"] != 1 {
		t.Errorf("counts %v", s.Counts)
	}
	if len(s.Inputs) != 1 || s.Inputs[0].SHA256 != "abc" || s.Inputs[0].Rejected != 2 {
		t.Errorf("inputs %+v", s.Inputs)
	}
	b, _ := os.ReadFile(Path(reports, run.ID))
	if !bytes.Contains(b, []byte(`'=cmd|' /C calc'!A0`)) {
		t.Errorf("the formula subject is not quoted:\n%s", b)
	}
}

// checkSelfContained fails unless page is one HTML document that loads
// nothing: no script, stylesheet, image, font or frame from elsewhere.
func checkSelfContained(t *testing.T, page []byte) {
	t.Helper()
	lower := strings.ToLower(string(page))
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "<object", "<embed", " src=", " href=", "url(", "@import", "javascript:"} {
		if strings.Contains(lower, bad) {
			t.Errorf("the HTML summary is not self-contained: it has %q", bad)
		}
	}
	for _, want := range []string{"<!doctype html>", "<svg ", "@page", "</html>"} {
		if !strings.Contains(lower, want) {
			t.Errorf("the HTML summary has no %q", want)
		}
	}
}

// A Writer that followed the run (synced in steps as events came, one
// sync failing halfway) sums it up as a fresh one that reads every event:
// the follower counts each row once, and only rows the file holds.
func TestWriteSummaryOfAFollower(t *testing.T) {
	evs := testEvents()
	fresh := t.TempDir()
	if err := WriteSummary(context.Background(), fresh, testRun, &fakeSource{events: evs}, testInfo); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, err := Open(dir, testRun)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for n := 0; n <= len(evs); n += 3 {
		src := &fakeSource{events: evs[:n]}
		if n == 6 {
			src.failAt = 5 // after counting what came before it
			if err := w.Sync(context.Background(), src); !errors.Is(err, errFake) {
				t.Fatalf("Sync = %v, want the source's error", err)
			}
			src.failAt = 0
		}
		if err := w.Sync(context.Background(), src); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteSummary(context.Background(), &fakeSource{events: evs}, testInfo); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{testRun + ".summary.json", testRun + ".summary.md"} {
		want, err := os.ReadFile(filepath.Join(fresh, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s of the follower:\n%s\nwant\n%s", name, got, want)
		}
	}
}
