package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
	"golang.org/x/crypto/ssh"
)

// reportSync keeps a run's audit report in step with the ledger: events
// are committed first, then appended to the file, so the file is always a
// prefix of the ledger's log and a killed run's report is completed by the
// next one.
type reportSync struct {
	w     *report.Writer
	db    *ledger.DB
	dir   string
	runID string
	path  string
	// signer signs the summaries; nil leaves them unsigned.
	signer ssh.Signer
}

func openReport(dir, runID string, db *ledger.DB) (*reportSync, error) {
	w, err := report.Open(dir, runID)
	if err != nil {
		return nil, fmt.Errorf("opening the audit report: %w", err)
	}
	r := &reportSync{w: w, db: db, dir: dir, runID: runID, path: w.Path()}
	return r, r.sync(context.Background())
}

// follow keeps the report in step in the background while the executor
// records outcomes: each kick asks for a sync, and the kicks that arrive
// while one runs are served by the next, so lines are appended (and the
// file flushed) in batches rather than once per outcome. The returned
// func stops it; the caller syncs once more after.
func (r *reportSync) follow(ctx context.Context, log *slog.Logger) (kick, stop func()) {
	kicks := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-kicks:
				if err := r.sync(ctx); err != nil && ctx.Err() == nil {
					log.Error("writing the report", "error", err)
				}
			case <-done:
				return
			}
		}
	})
	kick = func() {
		select {
		case kicks <- struct{}{}:
		default: // a sync is already asked for: it will read this outcome too
		}
	}
	return kick, func() { close(done); wg.Wait() }
}

func (r *reportSync) sync(ctx context.Context) error {
	if err := r.w.Sync(ctx, r.db); err != nil {
		return fmt.Errorf("writing the audit report %s: %w", r.path, err)
	}
	return nil
}

// finish brings the report up to date and writes the run's summaries,
// chained to the run before it. That run's summary is written first if it
// has a report but no summary yet (a run killed and superseded).
func (r *reportSync) finish(ctx context.Context, run *ledger.Run) error {
	return r.finishChained(ctx, run, true)
}

func (r *reportSync) finishChained(ctx context.Context, run *ledger.Run, catchUp bool) error {
	if err := r.sync(ctx); err != nil {
		return err
	}
	prev, err := r.db.RunBefore(ctx, run.ID)
	if err != nil {
		return err
	}
	if prev != nil && catchUp && prev.State == ledger.RunFinished {
		if err := writeMissingSummary(ctx, r.db, r.dir, prev, r.signer); err != nil {
			return err
		}
	}
	raw, err := r.db.RunInputs(ctx, run.ID)
	if err != nil {
		return fmt.Errorf("reading the run's inputs: %w", err)
	}
	inputs, err := report.ParseInputs(raw)
	if err != nil {
		return err
	}
	info := report.SummaryInfo{Mode: run.Mode, StartedAt: run.StartedAt, FinishedAt: time.Now().UTC(), Inputs: inputs, Signer: r.signer}
	if prev != nil {
		info.PreviousRun = prev.ID
	}
	if err := r.w.WriteSummary(ctx, r.db, info); err != nil {
		return fmt.Errorf("writing the run's summary: %w", err)
	}
	return nil
}

func (r *reportSync) close() { r.w.Close() }

// catchUpLastReport completes the report (and summaries) of the latest
// finished run, in case the process was killed after the ledger closed the
// run but before its files were written.
func catchUpLastReport(ctx context.Context, db *ledger.DB, dir string, signer ssh.Signer) error {
	runs, err := db.Runs(ctx, 1)
	if err != nil || len(runs) == 0 || runs[0].State != ledger.RunFinished {
		return err
	}
	rep, err := openReport(dir, runs[0].ID, db)
	if err != nil {
		return err
	}
	defer rep.close()
	rep.signer = signer
	jsonPath, _ := report.SummaryPaths(dir, runs[0].ID)
	if _, err := os.Stat(jsonPath); err == nil {
		return nil
	}
	return rep.finish(ctx, runs[0])
}

// writeMissingSummary writes the summary of a finished run whose report
// is in dir but whose summary is not, so that the next run can chain to it.
// A run whose report is gone too is left alone: the chain then names it.
func writeMissingSummary(ctx context.Context, db *ledger.DB, dir string, run *ledger.Run, signer ssh.Signer) error {
	jsonPath, _ := report.SummaryPaths(dir, run.ID)
	if _, err := os.Stat(jsonPath); err == nil {
		return nil
	}
	if _, err := os.Stat(report.Path(dir, run.ID)); err != nil {
		return nil
	}
	rep, err := openReport(dir, run.ID, db)
	if err != nil {
		return err
	}
	defer rep.close()
	rep.signer = signer
	return rep.finishChained(ctx, run, false)
}
