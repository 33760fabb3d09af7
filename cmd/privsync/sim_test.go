package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	vsim "github.com/privsync/privsync/executor/sim"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
)

var (
	cmdSimSeed  = flag.Uint64("seed", 0, "run only this simulation seed (TestSimulation)")
	cmdSimSeeds = flag.Int("seeds", 0, "how many simulation seeds TestSimulation runs (default 100, 20 under -race)")
)

const simConfig = `ledger = "ledger.db"
report_dir = "reports"

[vendors.sfmc]
kind = "sfmc"
base_url = "sim"
customer_mid = "` + vsim.CustomerMID + `"
batch_size = 1000

[vendors.batch-ios]
kind = "batch"
base_url = "sim"
app_api_key = "` + vsim.AppAPIKey + `"

[vendors.bloomreach]
kind = "bloomreach"
base_url = "sim"
project_token = "` + vsim.ProjectToken + `"
`

// TestSimulation plays the executor/sim scenarios through the whole
// command: CSV files, the config, `privsync run` as a process would run it
// (killed at a ledger commit, then run again), its exit code, and the
// audit reports and summaries it leaves.
func TestSimulation(t *testing.T) {
	n := *cmdSimSeeds
	if n == 0 {
		n = 100
		if vsim.Race {
			n = 20
		}
	}
	seeds := []uint64{*cmdSimSeed}
	if *cmdSimSeed == 0 {
		seeds = seeds[:0]
		for i := range n {
			seeds = append(seeds, uint64(i+1))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			dir := vsim.TempDir(t)
			if err := os.WriteFile(filepath.Join(dir, "privsync.toml"), []byte(simConfig), 0o600); err != nil {
				t.Fatal(err)
			}
			synctest.Test(t, func(t *testing.T) {
				err := vsim.Run(context.Background(), seed, &mainRunner{dir: dir})
				var f *vsim.Failure
				if errors.As(err, &f) || err != nil {
					t.Fatalf("%v\nreplay: go test ./cmd/privsync -run 'TestSimulation$' -seed %d -v", err, seed)
				}
			})
		})
	}
}

// mainRunner runs `privsync run` in process on the scenario's rows,
// written as CSV (the same input is the same file).
type mainRunner struct{ dir string }

func (r *mainRunner) Run(ctx context.Context, w *vsim.World, input string, rows []privsync.Row, wait time.Duration) (int, *vsim.Inspection, error) {
	path := filepath.Join(r.dir, input+".csv")
	if _, err := os.Stat(path); err != nil {
		if err := writeCSV(path, rows); err != nil {
			return 0, nil, err
		}
	}
	var stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stderr, Stderr: &stderr, Getenv: func(string) string { return "" },
		ledgerHook:  func(db *ledger.DB) { db.SetCommitHook(w.CommitHook) },
		vendorsHook: func(context.Context, *Config) ([]executor.Vendor, error) { return w.Vendors() },
	}
	err := m.Run(ctx, []string{"run", "--config", filepath.Join(r.dir, "privsync.toml"), "--ledger", filepath.Join(r.dir, "ledger.db"),
		"--report-dir", filepath.Join(r.dir, "reports"), "--wait", wait.String(), "--quiet", path})
	code := exitCode(err)
	if w.Killed() {
		return code, nil, nil
	}
	if code == ExitUsage {
		return code, nil, fmt.Errorf("run exited 2: %v\n%s", err, stderr.String())
	}
	in, err := r.Inspect(ctx)
	if err != nil {
		return code, nil, err
	}
	in.Checks = append(in.Checks, r.checkReports(ctx)...)
	return code, in, nil
}

func (r *mainRunner) Inspect(ctx context.Context) (*vsim.Inspection, error) {
	db, err := ledger.Open(ctx, filepath.Join(r.dir, "ledger.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return vsim.InspectLedger(ctx, db)
}

// checkReports checks the reports' part of I4: every report verifies, and
// every finished run's report with rows has its summary, which matches it.
func (r *mainRunner) checkReports(ctx context.Context) []string {
	db, err := ledger.Open(ctx, filepath.Join(r.dir, "ledger.db"))
	if err != nil {
		return []string{err.Error()}
	}
	defer db.Close()
	runs, err := db.Runs(ctx, 1000)
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	dir := filepath.Join(r.dir, "reports")
	for _, run := range runs {
		f, err := os.Open(report.Path(dir, run.ID))
		if err != nil {
			bad = append(bad, fmt.Sprintf("I4: run %s has no report: %v", run.ID, err))
			continue
		}
		rows, hash, err := report.Verify(f)
		f.Close()
		if err != nil {
			bad = append(bad, fmt.Sprintf("I4: the report of run %s does not verify: %v", run.ID, err))
			continue
		}
		if run.State != ledger.RunFinished || rows == 0 {
			continue
		}
		jsonPath, _ := report.SummaryPaths(dir, run.ID)
		s, err := report.ReadSummary(jsonPath)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("I4: the report of run %s (%d rows) has no summary: %v", run.ID, rows, err))
		case s.Report.Rows != int64(rows) || s.Report.FinalHash != hash:
			bad = append(bad, fmt.Sprintf("I4: the summary of run %s says %d rows, the report has %d", run.ID, s.Report.Rows, rows))
		}
	}
	return bad
}

func writeCSV(path string, rows []privsync.Row) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"vendor", "subject_id", "id_type", "restrictions", "erasure", "access_request", "updated_at"})
	for _, r := range rows {
		w.Write([]string{r.Vendor, r.SubjectID, r.IDType, r.Restrictions.String(), r.Erasure.String(), r.AccessRequest, r.UpdatedAt.UTC().Format(time.RFC3339)})
	}
	w.Flush()
	return os.WriteFile(path, b.Bytes(), 0o600)
}
