package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// run is `privsync run`: resume leftovers, plan, execute, report.
func (m *Main) run(ctx context.Context, args []string) error {
	var c common
	var pf planFlags
	var wait time.Duration
	fs := m.flagSet("run", "run [flags] INPUT...")
	c.register(fs)
	pf.register(fs)
	fs.DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for vendors to confirm; what is pending then is picked up by the next run or status --poll")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.setup(m); err != nil {
		return err
	}
	src, err := m.newSource(ctx, &c, fs.Args())
	if err != nil {
		return err
	}
	defer src.close()
	db, err := ledger.Open(ctx, c.ledger)
	if err != nil {
		return err // locked or unreadable: exit 1
	}
	defer db.Close()

	mode := "incremental"
	if pf.snapshot {
		mode = "snapshot"
	}
	key, err := inputKey(src.inputs, mode)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	if err := catchUpLastReport(ctx, db, c.reportDir, c.cfg.signer); err != nil {
		return err
	}
	prev, err := db.UnfinishedRun(ctx)
	if err != nil {
		return fmt.Errorf("looking for an interrupted run: %w", err)
	}
	run := &ledger.Run{ID: newRunID(time.Now()), StartedAt: time.Now().UTC(), Mode: mode, InputKey: key}
	switch {
	case prev != nil && prev.InputKey == key:
		run = prev
		c.log.Info("resuming the interrupted run of the same input", "run", run.ID)
	case prev != nil:
		c.log.Info("an earlier run was interrupted: its leftover batches are sent first, reported in this run", "earlier", prev.ID)
		if err := db.SetRunState(ctx, prev.ID, ledger.RunFinished, nil); err != nil {
			return err
		}
		fallthrough
	default:
		if err := db.StartRun(ctx, run, []string{}); err != nil {
			return err
		}
	}
	rep, err := openReport(c.reportDir, run.ID, db)
	if err != nil {
		return err
	}
	defer rep.close()
	rep.signer = c.cfg.signer

	vendors, err := c.connectors(ctx)
	if err != nil {
		return err
	}
	// Leftovers of an earlier run go first, before the new plan is written.
	if prev != nil && prev.ID != run.ID {
		if _, err := m.execute(ctx, &c, db, vendors, run.ID, wait, rep); err != nil {
			return err
		}
	}
	opts := c.plannerOptions(pf, run.StartedAt)
	var stats *planner.Stats
	err = db.WritePlan(ctx, run.ID, func(l planner.Ledger, s planner.Sink) error {
		var err error
		if stats, err = planner.Plan(ctx, src, l, s, opts); err != nil {
			return err
		}
		if pf.maxChanges > 0 && stats.Changes() > pf.maxChanges {
			return usageErr("the plan has %d operations, more than --max-changes %d: nothing was sent; check the export", stats.Changes(), pf.maxChanges)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	if err := db.SetRunState(ctx, run.ID, ledger.RunRunning, stats); err != nil {
		return err
	}
	if err := db.SetRunInputs(ctx, run.ID, src.files); err != nil {
		return err
	}
	if err := rep.sync(ctx); err != nil {
		return err
	}
	if !c.quiet {
		printPlan(m.Stderr, "text", stats)
	}
	res, err := m.execute(ctx, &c, db, vendors, run.ID, wait, rep)
	if err != nil {
		if ctx.Err() != nil {
			rep.sync(context.WithoutCancel(ctx))
			return fmt.Errorf("interrupted: the ledger is consistent and the next run resumes run %s", run.ID)
		}
		return err
	}
	pending, err := db.FinishRun(ctx, run.ID, stats)
	if err != nil {
		return err
	}
	if err := rep.finish(ctx, run); err != nil {
		return err
	}
	counts, err := db.OutcomeCounts(ctx, run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "run %s: %s; report %s\n", run.ID, outcomeLine(counts), rep.path)
	if pending > 0 {
		fmt.Fprintf(m.Stderr, "%d items are still pending at the vendors: the next run or `privsync status --poll` follows them up\n", pending)
	}
	if len(res.Stopped) > 0 {
		names := make([]string, 0, len(res.Stopped))
		for n, why := range res.Stopped {
			names = append(names, n+": "+why)
		}
		slices.Sort(names)
		return withCode(ExitFailure, fmt.Errorf("vendors stopped for this run: %v", names))
	}
	if counts[string(privsync.OutcomeFailed)]+counts[string(privsync.OutcomeRejected)]+counts[string(privsync.OutcomeConflict)] > 0 {
		return withCode(ExitPartial, errors.New("finished, but some items failed, were rejected or are in conflict: see the report"))
	}
	return nil
}

func (m *Main) execute(ctx context.Context, c *common, db *ledger.DB, vendors []executor.Vendor, runID string, wait time.Duration, rep *reportSync) (*executor.Result, error) {
	return m.executeWith(ctx, c, db, vendors, runID, wait, rep, false)
}

func (m *Main) executeWith(ctx context.Context, c *common, db *ledger.DB, vendors []executor.Vendor, runID string, wait time.Duration, rep *reportSync, pollOnly bool) (*executor.Result, error) {
	prog := m.newProgress(c, vendors)
	defer prog.finish()
	return executor.Execute(ctx, db, vendors, executor.Options{RunID: runID, Wait: wait, PollOnly: pollOnly, Log: c.log, Progress: prog,
		Resolved: func(ctx context.Context) {
			if err := rep.sync(ctx); err != nil {
				c.log.Error("writing the report", "error", err)
			}
		}})
}

func outcomeLine(counts map[string]int) string {
	s := ""
	for _, o := range []privsync.Outcome{privsync.OutcomeCompleted, privsync.OutcomeAccepted, privsync.OutcomeFailed,
		privsync.OutcomeRejected, privsync.OutcomeUnsupported, privsync.OutcomeConflict, privsync.OutcomeExpired, privsync.OutcomePending} {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", counts[string(o)], o)
	}
	return s
}

// inputKey recognises the same input again: paths, sizes and modification
// times, and the mode.
func inputKey(files []string, mode string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, mode)
	for _, f := range files {
		if f == ingest.Stdin {
			fmt.Fprintln(h, "-")
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("reading input %s: %w", f, err)
		}
		abs, _ := filepath.Abs(f)
		fmt.Fprintln(h, abs, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// newRunID names a run by its start time, with a random suffix.
func newRunID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
