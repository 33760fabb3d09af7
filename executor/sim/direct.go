package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// Direct runs privsync's phases in process, as `privsync run` orders them
// (finish an interrupted run, send its leftovers, plan, execute, close
// the run), with no command line, config or report files: the executor
// and the ledger are what it simulates. Each process reopens the ledger
// (ledger.DB.Reopen: a new process's memory, the same SQLite connection),
// opened volatile: crashes are simulated at commits, not by the OS.
type Direct struct {
	Dir  string // holds the ledger
	runs int
	db   *ledger.DB
}

func (d *Direct) path() string { return filepath.Join(d.Dir, "ledger.db") }

// open returns the ledger as a new process opens it; end ends that
// process's use of it, as its exit would.
func (d *Direct) open(ctx context.Context) (*ledger.DB, error) {
	if d.db != nil {
		return d.db, nil
	}
	db, err := ledger.OpenWith(context.WithoutCancel(ctx), d.path(), ledger.Options{Volatile: true})
	if err != nil {
		return nil, err
	}
	d.db = db
	return db, nil
}

func (d *Direct) end() { d.db = d.db.Reopen() }

// Close closes the ledger.
func (d *Direct) Close() error {
	if d.db == nil {
		return nil
	}
	err := d.db.Close()
	d.db = nil
	return err
}

// Run runs one process.
func (d *Direct) Run(ctx context.Context, w *World, input string, rows []privsync.Row, wait time.Duration) (int, *Inspection, error) {
	db, err := d.open(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer d.end()
	db.SetCommitHook(w.CommitHook)
	code, err := d.run(ctx, db, w, input, rows, wait)
	if w.Killed() {
		return code, nil, nil
	}
	if err != nil {
		return code, nil, err
	}
	in, err := InspectLedger(ctx, db)
	return code, in, err
}

func (d *Direct) run(ctx context.Context, db *ledger.DB, w *World, input string, rows []privsync.Row, wait time.Duration) (int, error) {
	prev, err := db.UnfinishedRun(ctx)
	if err != nil {
		return 0, err
	}
	d.runs++
	run := &ledger.Run{ID: fmt.Sprintf("%s-%d-%s", time.Now().UTC().Format("20060102T150405Z"), d.runs, input),
		StartedAt: time.Now().UTC(), Mode: "incremental", InputKey: input}
	switch {
	case prev != nil && prev.InputKey == input:
		run = prev
	case prev != nil:
		if err := db.SetRunState(ctx, prev.ID, ledger.RunFinished, nil); err != nil {
			return 0, err
		}
		fallthrough
	default:
		if err := db.StartRun(ctx, run, []string{}); err != nil {
			return 0, err
		}
	}
	vendors, err := w.Vendors()
	if err != nil {
		return 0, err
	}
	opts := executor.Options{RunID: run.ID, Deadline: time.Now().Add(wait)}
	stopped := false
	if prev != nil && prev.ID != run.ID {
		res, err := executor.Execute(ctx, db, vendors, opts)
		if err != nil {
			return 0, err
		}
		stopped = len(res.Stopped) > 0
	}
	popts := planner.Options{Vendors: Kinds, Limits: map[string]int{SFMC: 1000, Batch: 1, Bloomreach: 1000}, MaxCandidates: 1000, LookupChunk: 100, Rules: planner.Rules{Now: run.StartedAt, SuppressionWindow: 14 * 24 * time.Hour}}
	var stats *planner.Stats
	err = db.WritePlan(ctx, run.ID, func(l planner.Ledger, s planner.Sink) error {
		stats, err = planner.Plan(ctx, rowSource(rows), l, s, popts)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("planning: %w", err)
	}
	res, err := executor.Execute(ctx, db, vendors, opts)
	if err != nil {
		return 0, err
	}
	if _, err := db.FinishRun(ctx, run.ID, stats); err != nil {
		return 0, err
	}
	problems, err := db.Problems(ctx, run.ID)
	switch {
	case err != nil:
		return 0, err
	case stopped || len(res.Stopped) > 0:
		return 1, nil
	case problems > 0:
		return 3, nil
	}
	return 0, nil
}

// Inspect reads the ledger from a fresh process.
func (d *Direct) Inspect(ctx context.Context) (*Inspection, error) {
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	defer d.end()
	return InspectLedger(ctx, db)
}

// Inspection is a ledger's content as the checks read it.
type Inspection struct {
	*ledger.Dump
	LastRun string
	// Pending holds the subjects with items not final yet.
	Pending map[privsync.Key]bool
	// Problems counts the last run's events that call for exit 3.
	Problems    int
	ProblemRows []string
	// Checks are what the runner found wrong itself (the reports).
	Checks []string
}

// InspectLedger reads what the checks need from db.
func InspectLedger(ctx context.Context, db *ledger.DB) (*Inspection, error) {
	dump, err := db.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Dump: dump, Pending: map[privsync.Key]bool{}}
	for _, it := range dump.Items {
		if it.Outcome == string(privsync.OutcomePending) && it.BatchState != ledger.BatchDone && it.BatchState != ledger.BatchSplit {
			in.Pending[it.Key] = true
		}
	}
	runs, err := db.Runs(ctx, 1)
	if err != nil {
		return nil, err
	}
	if len(runs) > 0 {
		in.LastRun = runs[0].ID
		if in.Problems, err = db.Problems(ctx, in.LastRun); err != nil {
			return nil, err
		}
		for _, e := range dump.Events {
			if e.RunID == in.LastRun && e.Outcome != "completed" && e.Outcome != "accepted" && e.Outcome != "pending" {
				in.ProblemRows = append(in.ProblemRows, fmt.Sprintf("%s %s %s %s: %s", e.Vendor, e.SubjectID, e.Operation, e.Outcome, e.Detail))
			}
		}
	}
	return in, nil
}

// rowSource serves rows to the planner.
type rowSource []privsync.Row

func (s rowSource) Read(ctx context.Context, h planner.RowHandler) error {
	for i := range s {
		r := s[i]
		r.File, r.Line = "night.csv", int64(i+2)
		if err := h.Row(&r); err != nil {
			return err
		}
	}
	return nil
}

// TempDir is a temporary directory for a scenario's ledger (its lock file:
// Direct keeps the ledger itself in memory; other runners keep it there):
// in /dev/shm where there is one (a disk shared by a CI machine's jobs
// would make thousands of scenarios wait on it), else t.TempDir(). It is
// removed when the test ends.
func TempDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "privsync-sim-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
