package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
	"github.com/privsync/privsync/planner"
)

// run is `privsync run`: resume leftovers, plan, execute, report. Its
// phases: open (flags, config, input, ledger), begin (resume or start the
// run, close an interrupted one of other input), leftovers, plan, execute,
// finish; the verdict becomes the exit code in exitCode.
func (m *Main) run(ctx context.Context, args []string) (err error) {
	var j job
	defer func() {
		// Written whatever the outcome, a bad config included: the
		// monitoring must learn of a run that failed.
		if j.c.metrics != nil {
			if werr := j.c.metrics.write(j.metricsFile, time.Now(), exitCode(err)); werr != nil {
				fmt.Fprintf(m.Stderr, "privsync: %v\n", werr)
			}
		}
	}()
	if err := m.openJob(ctx, &j, args); err != nil {
		return err
	}
	defer j.close()
	if err := m.beginRun(ctx, &j); err != nil {
		return err
	}
	logMemory(ctx, j.c.log, "begin")
	if err := m.sendLeftovers(ctx, &j); err != nil {
		return err
	}
	if err := m.planRun(ctx, &j); err != nil {
		return err
	}
	logMemory(ctx, j.c.log, "plan")
	res, err := m.execute(ctx, &j.c, j.db, j.vendors, j.run.ID, j.waitUntil(), j.rep)
	logMemory(ctx, j.c.log, "execute")
	if err != nil {
		if ctx.Err() != nil {
			j.rep.sync(context.WithoutCancel(ctx))
			return fmt.Errorf("interrupted: the ledger is consistent and the next run resumes run %s", j.run.ID)
		}
		return err
	}
	j.stopped = mergeStopped(j.stopped, res)
	err = m.finishRun(ctx, &j)
	logMemory(ctx, j.c.log, "finish")
	return err
}

// job is one `privsync run` as its phases hand it on.
type job struct {
	c        common
	pf       planFlags
	src      *source
	db       *ledger.DB
	mode     string
	key      string
	prev     *ledger.Run // an interrupted run, or nil
	run      *ledger.Run
	rep      *reportSync
	vendors  []executor.Vendor
	wait     time.Duration
	deadline time.Time // the end of the wait: --wait after the first request may leave
	stats    *planner.Stats
	stopped  map[string]string

	metricsFile string // --metrics-file, "" for none
}

// waitUntil is the end of the run's wait, which starts when its first
// batch may leave (leftovers and the new plan share it).
func (j *job) waitUntil() time.Time {
	if j.deadline.IsZero() {
		j.deadline = time.Now().Add(j.wait)
	}
	return j.deadline
}

func (j *job) close() {
	if j.rep != nil {
		j.rep.close()
	}
	if j.db != nil {
		j.db.Close()
	}
	if j.src != nil {
		j.src.close()
	}
}

// openJob parses the flags, loads the config, checks the input and opens
// the ledger.
func (m *Main) openJob(ctx context.Context, j *job, args []string) error {
	var wait time.Duration
	fs := m.flagSet("run", "run [flags] INPUT...")
	j.c.register(fs)
	j.pf.register(fs)
	fs.DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for vendors to confirm (leftovers of an interrupted run included); what is pending then is picked up by the next run or status --poll")
	fs.StringVar(&j.metricsFile, "metrics-file", "", "write the run's figures to `file` in the Prometheus text format (for node_exporter's textfile collector), replacing it atomically")
	if err := parse(fs, args); err != nil {
		return err
	}
	if j.metricsFile != "" {
		j.c.metrics = newRunMetrics(time.Now())
	}
	if err := j.c.setup(m); err != nil {
		return err
	}
	var err error
	if j.src, err = m.newSource(ctx, &j.c, j.pf, fs.Args()); err != nil {
		return err
	}
	j.mode = "incremental"
	if j.pf.snapshot {
		j.mode = "snapshot"
	}
	if j.key, err = inputKey(j.src.inputs, j.mode, j.src.objects); err != nil {
		return withCode(ExitUsage, err)
	}
	if j.db, err = m.openLedger(ctx, j.c.ledger); err != nil {
		return err // locked or unreadable: exit 1
	}
	j.wait = wait
	return nil
}

// openLedger opens the ledger (tests wrap it: the simulation kills a run
// at a commit).
func (m *Main) openLedger(ctx context.Context, path string) (*ledger.DB, error) {
	db, err := ledger.Open(ctx, path)
	if err == nil && m.ledgerHook != nil {
		m.ledgerHook(db)
	}
	return db, err
}

// beginRun resumes the interrupted run of the same input, or starts a new
// one; an interrupted run of other input is closed (its report gets its
// summary) once the new input is known to be readable, since its leftovers
// are sent before anything of the new input is.
func (m *Main) beginRun(ctx context.Context, j *job) error {
	if err := catchUpLastReport(ctx, j.db, j.c.reportDir, j.c.cfg.signer); err != nil {
		return err
	}
	prev, err := j.db.UnfinishedRun(ctx)
	if err != nil {
		return fmt.Errorf("looking for an interrupted run: %w", err)
	}
	j.prev = prev
	j.run = &ledger.Run{ID: newRunID(time.Now()), StartedAt: time.Now().UTC(), Mode: j.mode, InputKey: j.key}
	switch {
	case prev != nil && prev.InputKey == j.key:
		j.run = prev
		j.c.log.Info("resuming the interrupted run of the same input", "run", j.run.ID)
	case prev != nil:
		// Read the whole input first: exit 2 must mean nothing was sent.
		if err := j.src.validate(ctx); err != nil {
			return err
		}
		j.c.log.Info("an earlier run was interrupted: its leftover batches are sent first, reported in this run", "earlier", prev.ID)
		if err := j.db.SetRunState(ctx, prev.ID, ledger.RunFinished, nil); err != nil {
			return err
		}
		// Its summary now, chained to the run before it: rows cut from the
		// end of its report can be told at once.
		if err := writeMissingSummary(ctx, j.db, j.c.reportDir, prev, j.c.cfg.signer); err != nil {
			return err
		}
		fallthrough
	default:
		if err := j.db.StartRun(ctx, j.run, []string{}); err != nil {
			return err
		}
	}
	j.rep, err = openReport(j.c.reportDir, j.run.ID, j.db)
	if err != nil {
		return err
	}
	j.rep.signer = j.c.cfg.signer
	j.vendors, err = m.connectors(ctx, &j.c)
	return err
}

// connectors builds the vendors (tests give their own).
func (m *Main) connectors(ctx context.Context, c *common) ([]executor.Vendor, error) {
	if m.vendorsHook != nil {
		return m.vendorsHook(ctx, c.cfg)
	}
	return c.connectors(ctx)
}

// sendLeftovers sends the batches an interrupted run of other input left,
// before the new plan is written (so it sees their outcomes).
func (m *Main) sendLeftovers(ctx context.Context, j *job) error {
	if j.prev == nil || j.prev.ID == j.run.ID {
		return nil
	}
	res, err := m.execute(ctx, &j.c, j.db, j.vendors, j.run.ID, j.waitUntil(), j.rep)
	j.stopped = mergeStopped(j.stopped, res)
	return err
}

// planRun plans the input and writes the plan, all or nothing. A plan
// refused by --max-changes leaves no trace of a run that sent nothing.
func (m *Main) planRun(ctx context.Context, j *job) error {
	opts := j.c.plannerOptions(j.pf, j.run.StartedAt)
	err := j.db.WritePlan(ctx, j.run.ID, func(l planner.Ledger, s planner.Sink) error {
		var err error
		if j.stats, err = planner.Plan(ctx, j.src, l, s, opts); err != nil {
			return err
		}
		if j.pf.maxChanges > 0 && j.stats.Changes() > j.pf.maxChanges {
			return usageErr("the plan has %d operations, more than --max-changes %d: nothing was sent; check the export", j.stats.Changes(), j.pf.maxChanges)
		}
		return nil
	})
	if err != nil {
		if exitCode(err) == ExitUsage && j.rep.w.Rows() == 0 {
			j.rep.close()
			j.rep = nil
			if derr := j.db.DropRun(ctx, j.run.ID); derr != nil {
				j.c.log.Warn("could not remove the refused run", "run", j.run.ID, "error", derr)
			} else if derr := os.Remove(report.Path(j.c.reportDir, j.run.ID)); derr != nil {
				j.c.log.Warn("could not remove the refused run's empty report", "error", derr)
			}
		}
		return fmt.Errorf("planning: %w", err)
	}
	if err := j.db.SetRunState(ctx, j.run.ID, ledger.RunRunning, j.stats); err != nil {
		return err
	}
	if err := j.db.SetRunInputs(ctx, j.run.ID, j.src.files); err != nil {
		return err
	}
	if err := j.rep.sync(ctx); err != nil {
		return err
	}
	if !j.c.quiet {
		printPlan(m.Stderr, "text", j.stats)
	}
	return nil
}

// finishRun closes the run, writes its summaries and says how it went.
func (m *Main) finishRun(ctx context.Context, j *job) error {
	pending, err := j.db.FinishRun(ctx, j.run.ID, j.stats)
	if err != nil {
		return err
	}
	logMemory(ctx, j.c.log, "closing the run in the ledger")
	if err := j.rep.finish(ctx, j.run); err != nil {
		return err
	}
	logMemory(ctx, j.c.log, "the report's summary")
	// The report's rows are the run's events, counted as they were written.
	counts := map[string]int{}
	for o, n := range j.rep.w.Outcomes() {
		counts[o] = int(n)
	}
	if j.c.metrics != nil {
		if err := j.c.metrics.countItems(ctx, j.db, j.run.ID); err != nil {
			return fmt.Errorf("counting the run's items for the metrics file: %w", err)
		}
	}
	problems, err := j.db.Problems(ctx, j.run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "run %s: %s; report %s\n", j.run.ID, outcomeLine(counts), j.rep.path)
	if pending > 0 {
		fmt.Fprintf(m.Stderr, "%d items are still pending at the vendors: the next run or `privsync status --poll` follows them up\n", pending)
	}
	return runVerdict(j.stopped, problems)
}

// runVerdict is the error a finished run ends with: vendors stopped for
// the run (exit 1), or problems the report lists (exit 3).
func runVerdict(stopped map[string]string, problems int) error {
	if len(stopped) > 0 {
		names := make([]string, 0, len(stopped))
		for n, why := range stopped {
			names = append(names, n+": "+why)
		}
		slices.Sort(names)
		return withCode(ExitFailure, fmt.Errorf("vendors stopped for this run: %v", names))
	}
	if problems > 0 {
		return withCode(ExitPartial, errors.New("finished, but some items failed, expired, were rejected or are in conflict: see the report"))
	}
	return nil
}

func mergeStopped(into map[string]string, res *executor.Result) map[string]string {
	if res == nil {
		return into
	}
	for n, why := range res.Stopped {
		if into == nil {
			into = map[string]string{}
		}
		into[n] = why
	}
	return into
}

func (m *Main) execute(ctx context.Context, c *common, db *ledger.DB, vendors []executor.Vendor, runID string, deadline time.Time, rep *reportSync) (*executor.Result, error) {
	return m.executeWith(ctx, c, db, vendors, runID, deadline, rep, false)
}

func (m *Main) executeWith(ctx context.Context, c *common, db *ledger.DB, vendors []executor.Vendor, runID string, deadline time.Time, rep *reportSync, pollOnly bool) (*executor.Result, error) {
	prog := m.newProgress(c, vendors)
	defer prog.finish()
	kick, stop := rep.follow(ctx, c.log)
	res, err := executor.Execute(ctx, db, vendors, executor.Options{RunID: runID, Deadline: deadline, PollOnly: pollOnly, Log: c.log, Progress: prog,
		Resolved: func(context.Context) { kick() }})
	stop()
	// As the per-outcome syncs were, the last one is best effort: the
	// callers sync (and fail on it) before they finish the report.
	if err := rep.sync(ctx); err != nil && ctx.Err() == nil {
		c.log.Error("writing the report", "error", err)
	}
	if c.metrics != nil && res != nil {
		c.metrics.addRequests(res.Stats)
	}
	return res, err
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
// times (objects: URLs, sizes and ETags), and the mode. An object
// rewritten under the same name is another input.
func inputKey(files []string, mode string, objs *objects) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, mode)
	for _, f := range files {
		if f == ingest.Stdin {
			fmt.Fprintln(h, "-")
			continue
		}
		id, err := objs.statInput(f)
		if err != nil {
			return "", err
		}
		io.WriteString(h, id)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// newRunID names a run by its start time, with a random suffix.
func newRunID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
