package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/privsync/privsync/executor"
	vsim "github.com/privsync/privsync/executor/sim"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
)

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{flag.ErrHelp, ExitOK},
		{usageErr("bad flag"), ExitUsage},
		{fmt.Errorf("planning: %w", usageErr("too many")), ExitUsage},
		{runVerdict(nil, 2), ExitPartial},
		{runVerdict(map[string]string{"sfmc": "401"}, 2), ExitFailure},
		{runVerdict(nil, 0), ExitOK},
		{errors.New("disk full"), ExitFailure},
		{context.Canceled, ExitFailure},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// runFixture runs privsync in process against the simulation's vendors.
type runFixture struct {
	t   *testing.T
	dir string
	w   *vsim.World
}

func newRunFixture(t *testing.T) *runFixture {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "privsync.toml"), []byte(simConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return &runFixture{t: t, dir: dir, w: vsim.NewWorld(1)}
}

// run runs privsync with args, killed at commit crashAt (0: never).
func (f *runFixture) run(crashAt int, args ...string) (int, string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.w.Start(crashAt, false, cancel, nil)
	var out bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" },
		ledgerHook:  func(db *ledger.DB) { db.SetCommitHook(f.w.CommitHook) },
		vendorsHook: func(context.Context, *Config) ([]executor.Vendor, error) { return f.w.Vendors() }}
	base := []string{args[0], "--config", filepath.Join(f.dir, "privsync.toml"), "--ledger", filepath.Join(f.dir, "ledger.db"),
		"--report-dir", filepath.Join(f.dir, "reports"), "--quiet"}
	err := m.Run(ctx, append(base, args[1:]...))
	return m.Exit(err), out.String()
}

func (f *runFixture) file(name, content string) string {
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

const header = "vendor,subject_id,id_type,restrictions,erasure,access_request,updated_at\n"

// Commits of a run up to its first request: StartRun, WritePlan, running,
// inputs; the fifth marks the first batch sending.
const firstSendCommit = 5

// Defect 5: a run of another input that turns out broken sends nothing,
// not even the leftovers of an interrupted run, and exits 2.
func TestBrokenInputAfterKilledRunSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		a := f.file("a.csv", header+"sfmc,p1,,do_not_track,,,\nsfmc,p2,,,delete,,\n")
		f.run(firstSendCommit, "run", a)
		if !f.w.Killed() || f.w.SubmitCount() != 0 {
			t.Fatalf("the first run was not killed before sending (killed %v, %d requests)", f.w.Killed(), f.w.SubmitCount())
		}
		b := f.file("b.csv", header+"sfmc,p3,,do_not_track,,,\nsfmc,\"p4,,,,,\n")
		code, out := f.run(0, "run", b)
		if code != ExitUsage {
			t.Fatalf("exit %d, want 2; output:\n%s", code, out)
		}
		if n := f.w.SubmitCount(); n != 0 {
			t.Fatalf("exit 2 after sending %d requests", n)
		}
	})
}

// Defect 6: a killed run closed for a run of other input gets its summary.
func TestKilledRunSupersededGetsItsSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		// The unsupported row is in the report as soon as the plan is written.
		a := f.file("a.csv", header+"bloomreach,c1,registered,do_not_track,,,\nsfmc,p1,,do_not_track,,,\n")
		f.run(firstSendCommit, "run", a)
		b := f.file("b.csv", header+"sfmc,p2,,do_not_profile,,,\n")
		if code, out := f.run(0, "run", b); code != ExitOK {
			t.Fatalf("second run exit %d:\n%s", code, out)
		}
		reports, _ := filepath.Glob(filepath.Join(f.dir, "reports", "*.csv"))
		if len(reports) != 2 {
			t.Fatalf("reports %v, want two", reports)
		}
		for _, r := range reports {
			fh, err := os.Open(r)
			if err != nil {
				t.Fatal(err)
			}
			rows, hash, err := report.Verify(fh)
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
			s, err := report.ReadSummary(strings.TrimSuffix(r, ".csv") + ".summary.json")
			if err != nil {
				t.Fatalf("%s (%d rows) has no summary: %v", filepath.Base(r), rows, err)
			}
			if s.Report.Rows != int64(rows) || s.Report.FinalHash != hash {
				t.Fatalf("%s: summary %d rows %s, report %d rows %s", filepath.Base(r), s.Report.Rows, s.Report.FinalHash, rows, hash)
			}
		}
	})
}

// Defect 8: a plan refused by --max-changes leaves no run and no report.
func TestMaxChangesRefusalLeavesNoRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		a := f.file("a.csv", header+"sfmc,p1,,do_not_track,,,\nsfmc,p2,,,delete,,\nsfmc,p3,,do_not_profile,,,\n")
		code, out := f.run(0, "run", "--max-changes", "2", a)
		if code != ExitUsage || !strings.Contains(out, "--max-changes") {
			t.Fatalf("exit %d, want 2 naming --max-changes:\n%s", code, out)
		}
		if n := f.w.SubmitCount(); n != 0 {
			t.Fatalf("%d requests sent", n)
		}
		if reports, _ := filepath.Glob(filepath.Join(f.dir, "reports", "*")); len(reports) != 0 {
			t.Fatalf("files left in reports/: %v", reports)
		}
		db, err := ledger.Open(context.Background(), filepath.Join(f.dir, "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if runs, err := db.Runs(context.Background(), 10); err != nil || len(runs) != 0 {
			t.Fatalf("runs %v, %v; want none", runs, err)
		}
	})
}

// Defect 8: status --poll closes (unlocks) the ledger when polling fails.
func TestStatusPollFailureReleasesTheLedger(t *testing.T) {
	f := newRunFixture(t)
	var out bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" },
		vendorsHook: func(context.Context, *Config) ([]executor.Vendor, error) { return nil, errors.New("no vendors today") }}
	path := filepath.Join(f.dir, "ledger.db")
	err := m.Run(context.Background(), []string{"status", "--poll", "--config", filepath.Join(f.dir, "privsync.toml"), "--ledger", path})
	if err == nil {
		t.Fatal("status --poll succeeded without vendors")
	}
	db, err := ledger.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("the ledger stays locked after a failed poll: %v", err)
	}
	db.Close()
}

// Expired erasures count toward exit 3 (and are planned again).
func TestExpiredErasureExits3(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		f.w.SetNight(vsim.Faults{Forget: 1}, time.Hour)
		a := f.file("a.csv", header+"sfmc,p1,,,delete,,\n")
		code, out := f.run(0, "run", "--wait", "1m", a)
		if code != ExitPartial {
			t.Fatalf("exit %d, want 3:\n%s", code, out)
		}
	})
}
