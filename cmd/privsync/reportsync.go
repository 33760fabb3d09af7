package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
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
}

func openReport(dir, runID string, db *ledger.DB) (*reportSync, error) {
	w, err := report.Open(dir, runID)
	if err != nil {
		return nil, fmt.Errorf("opening the audit report: %w", err)
	}
	r := &reportSync{w: w, db: db, dir: dir, runID: runID, path: w.Path()}
	return r, r.sync(context.Background())
}

func (r *reportSync) sync(ctx context.Context) error {
	if err := r.w.Sync(ctx, r.db); err != nil {
		return fmt.Errorf("writing the audit report %s: %w", r.path, err)
	}
	return nil
}

// finish brings the report up to date and writes the run's summaries.
func (r *reportSync) finish(ctx context.Context, run *ledger.Run) error {
	if err := r.sync(ctx); err != nil {
		return err
	}
	raw, err := r.db.RunInputs(ctx, run.ID)
	if err != nil {
		return fmt.Errorf("reading the run's inputs: %w", err)
	}
	inputs, err := report.ParseInputs(raw)
	if err != nil {
		return err
	}
	info := report.SummaryInfo{Mode: run.Mode, StartedAt: run.StartedAt, FinishedAt: time.Now().UTC(), Inputs: inputs}
	if err := report.WriteSummary(ctx, r.dir, run.ID, r.db, info); err != nil {
		return fmt.Errorf("writing the run's summary: %w", err)
	}
	return nil
}

func (r *reportSync) close() { r.w.Close() }

// catchUpLastReport completes the report (and summaries) of the latest
// finished run, in case the process was killed after the ledger closed the
// run but before its files were written.
func catchUpLastReport(ctx context.Context, db *ledger.DB, dir string) error {
	runs, err := db.Runs(ctx, 1)
	if err != nil || len(runs) == 0 || runs[0].State != ledger.RunFinished {
		return err
	}
	rep, err := openReport(dir, runs[0].ID, db)
	if err != nil {
		return err
	}
	defer rep.close()
	jsonPath, _ := report.SummaryPaths(dir, runs[0].ID)
	if _, err := os.Stat(jsonPath); err == nil {
		return nil
	}
	return rep.finish(ctx, runs[0])
}
