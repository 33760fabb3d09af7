package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
	"github.com/privsync/privsync/planner"
)

// runReport runs `privsync report ARGS...` and returns its exit code and
// output.
func runReport(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(string) string { return "" }}
	code = m.Exit(m.Run(context.Background(), append([]string{"report"}, args...)))
	return code, out.String(), errOut.String()
}

// reportFixture is a ledger with two runs that name the same subject, and
// the first run's report and summary.
type reportFixture struct {
	dir, ledger, reports, csv string
}

func newReportFixture(t *testing.T) *reportFixture {
	t.Helper()
	ctx := context.Background()
	fx := &reportFixture{dir: t.TempDir()}
	fx.ledger = filepath.Join(fx.dir, "privsync.db")
	fx.reports = filepath.Join(fx.dir, "reports")
	db, err := ledger.Open(ctx, fx.ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Now = func() time.Time { return time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC) }
	for r, run := range []string{"run-1", "run-2"} {
		if err := db.StartRun(ctx, &ledger.Run{ID: run, StartedAt: db.Now().Add(time.Duration(r) * time.Hour), Mode: "incremental"}, []any{}); err != nil {
			t.Fatal(err)
		}
		err := db.WritePlan(ctx, run, func(_ planner.Ledger, sink planner.Sink) error {
			for i, id := range []string{"=1+1", "u-2", "u-3"} {
				re := &privsync.RowError{File: "in.csv", Line: int64(i + 2), Column: "vendor", Value: "acme",
					Reason: "unknown vendor", Vendor: "acme", SubjectID: id}
				if err := sink.Reject(ctx, re, uint64(10*r+i+1)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := report.WriteSummary(ctx, fx.reports, "run-1", db, report.SummaryInfo{Mode: "incremental"}); err != nil {
		t.Fatal(err)
	}
	fx.csv = report.Path(fx.reports, "run-1")
	return fx
}

func TestReportVerify(t *testing.T) {
	fx := newReportFixture(t)
	code, out, errOut := runReport(t, "verify", fx.csv)
	if code != ExitOK || !strings.Contains(out, "valid, 3 rows, final hash ") || !strings.Contains(out, "matches its summary") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}

	// Without its summary it still verifies, and says what to compare.
	alone := filepath.Join(t.TempDir(), "copy.csv")
	b, _ := os.ReadFile(fx.csv)
	if err := os.WriteFile(alone, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runReport(t, "verify", alone); code != ExitOK || !strings.Contains(out, "no summary beside it") {
		t.Fatalf("verify without summary: exit %d\n%s", code, out)
	}

	// One edited byte: exit 1, naming the row.
	bad := bytes.Replace(b, []byte("u-2"), []byte("u-9"), 1)
	if err := os.WriteFile(fx.csv, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runReport(t, "verify", fx.csv)
	if code != ExitFailure || !strings.Contains(errOut, "NOT a valid report: line 3 (row 2, seq 2): bad hash") {
		t.Fatalf("edited report: exit %d\n%s%s", code, out, errOut)
	}

	// The last row cut at its line end: the chain holds, the summary does not.
	cut := b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1]
	if err := os.WriteFile(fx.csv, cut, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runReport(t, "verify", fx.csv)
	if code != ExitFailure || !strings.Contains(out, "valid, 2 rows") || !strings.Contains(errOut, "does NOT match its summary") {
		t.Fatalf("cut report: exit %d\n%s%s", code, out, errOut)
	}

	// Truncated in the middle of a line.
	if err := os.WriteFile(fx.csv, b[:len(b)-5], 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runReport(t, "verify", "--summary", filepath.Join(fx.reports, "run-1.summary.json"), fx.csv); code != ExitFailure || !strings.Contains(errOut, "truncated last line") {
		t.Fatalf("truncated report: exit %d\n%s", code, errOut)
	}
}

func TestReportUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, ExitUsage, "name a subcommand"},
		{[]string{"frob"}, ExitUsage, "unknown subcommand"},
		{[]string{"--help"}, ExitOK, ""},
		{[]string{"verify", "--help"}, ExitOK, ""},
		{[]string{"export", "--help"}, ExitOK, ""},
		{[]string{"verify"}, ExitUsage, "exactly one report FILE"},
		{[]string{"verify", "a.csv", "b.csv"}, ExitUsage, "exactly one report FILE"},
		{[]string{"verify", filepath.Join(t.TempDir(), "missing.csv")}, ExitUsage, "does not exist"},
		{[]string{"export"}, ExitUsage, "either --run ID or --subject ID"},
		{[]string{"export", "--run", "a", "--subject", "b"}, ExitUsage, "either --run ID or --subject ID"},
		{[]string{"export", "--run", "a", "--format", "xml"}, ExitUsage, "use csv, jsonl or parquet"},
		{[]string{"export", "--run", "a", "--config", filepath.Join(t.TempDir(), "none.toml")}, ExitUsage, "none.toml does not exist"},
		{[]string{"export", "--run", "a", "--ledger", filepath.Join(t.TempDir(), "none.db")}, ExitUsage, "none.db does not exist"},
	} {
		code, out, errOut := runReport(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("report %q: exit %d, want %d saying %q\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
}

func TestReportExport(t *testing.T) {
	fx := newReportFixture(t)

	code, out, errOut := runReport(t, "export", "--ledger", fx.ledger, "--run", "run-2", "--format", "jsonl")
	if code != ExitOK {
		t.Fatalf("export --run: exit %d\n%s", code, errOut)
	}
	var evs []report.ExportEvent
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e report.ExportEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	if len(evs) != 3 || evs[0].RunID != "run-2" || evs[0].Seq != 1 || evs[0].SubjectID != "=1+1" || evs[2].Seq != 3 {
		t.Fatalf("export --run run-2: %+v", evs)
	}

	// One subject across runs, as a regulator asks, in CSV.
	code, out, errOut = runReport(t, "export", "--ledger", fx.ledger, "--subject", "=1+1")
	if code != ExitOK {
		t.Fatalf("export --subject: exit %d\n%s", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(report.ExportColumns, ",") {
		t.Fatalf("export --subject:\n%s", out)
	}
	for i, run := range []string{"run-1", "run-2"} {
		if recs[i+1][0] != run || recs[i+1][4] != "'=1+1" || recs[i+1][8] != "rejected" {
			t.Errorf("row %d: %q", i+1, recs[i+1])
		}
	}

	// A subject the ledger does not know: a header, and a note.
	code, out, errOut = runReport(t, "export", "--ledger", fx.ledger, "--subject", "nobody")
	if code != ExitOK || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "no event about this subject") {
		t.Fatalf("unknown subject: exit %d\n%s%s", code, out, errOut)
	}

	// An unknown run is a usage error.
	if code, _, errOut := runReport(t, "export", "--ledger", fx.ledger, "--run", "run-9"); code != ExitUsage || !strings.Contains(errOut, `no run "run-9"`) {
		t.Fatalf("unknown run: exit %d\n%s", code, errOut)
	}

	// The ledger from the config: only its ledger key matters, vendor
	// secrets need not be set for an export.
	cfg := filepath.Join(fx.dir, "privsync.toml")
	toml := "ledger = " + strconvQuote(fx.ledger) + "\n[vendors.sfmc]\nkind = \"sfmc\"\ncustomer_mid = \"1\"\napi_key_env = \"UNSET_SFMC_KEY\"\n"
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runReport(t, "export", "--config", cfg, "--run", "run-1", "--format", "csv")
	if code != ExitOK || strings.Count(out, "\n") != 4 {
		t.Fatalf("export with --config: exit %d\n%s%s", code, out, errOut)
	}
}

func TestReportExportDefaultLedger(t *testing.T) {
	fx := newReportFixture(t)
	t.Chdir(fx.dir) // privsync.db, no privsync.toml
	code, out, errOut := runReport(t, "export", "--run", "run-1")
	if code != ExitOK || strings.Count(out, "\n") != 4 {
		t.Fatalf("export with the default ledger: exit %d\n%s%s", code, out, errOut)
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestFinishChainsASupersededRun: a run killed and superseded by a run on
// another input has a report but no summary; when the later run ends, the
// earlier one's summary is written first, so the later one chains to it.
func TestFinishChainsASupersededRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reports := filepath.Join(dir, "reports")
	db, err := ledger.Open(ctx, filepath.Join(dir, "privsync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	runs := []*ledger.Run{{ID: "20261123T060000Z-aaaa", StartedAt: start, Mode: "incremental"},
		{ID: "20261123T070000Z-bbbb", StartedAt: start.Add(time.Hour), Mode: "incremental"}}
	for i, run := range runs {
		if err := db.StartRun(ctx, run, []any{}); err != nil {
			t.Fatal(err)
		}
		err := db.WritePlan(ctx, run.ID, func(_ planner.Ledger, sink planner.Sink) error {
			re := &privsync.RowError{File: "in.csv", Line: 2, Column: "vendor", Value: "acme", Reason: "unknown vendor", Vendor: "acme", SubjectID: "u-1"}
			return sink.Reject(ctx, re, uint64(i+1))
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := openReport(reports, run.ID, db)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := rep.finish(ctx, run); err != nil {
				t.Fatal(err)
			}
		}
		rep.close()
		// The first run is killed here; the second supersedes it.
		if err := db.SetRunState(ctx, run.ID, ledger.RunFinished, nil); err != nil {
			t.Fatal(err)
		}
	}
	first, err := report.FileSHA256(filepath.Join(reports, runs[0].ID+".summary.json"))
	if err != nil {
		t.Fatalf("the superseded run has no summary: %v", err)
	}
	s, err := report.ReadSummary(filepath.Join(reports, runs[1].ID+".summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Previous == nil || s.Previous.RunID != runs[0].ID || s.Previous.SummarySHA256 != first {
		t.Errorf("previous = %+v, want %s %s", s.Previous, runs[0].ID, first)
	}
	code, out, errOut := runReport(t, "verify", "--all", reports, "--ledger", filepath.Join(dir, "privsync.db"))
	if code != ExitOK || !strings.Contains(out, "valid, 2 runs in one chain") {
		t.Errorf("verify --all: exit %d\n%s%s", code, out, errOut)
	}
}
