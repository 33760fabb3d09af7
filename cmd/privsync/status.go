package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/privsync/privsync/ledger"
)

// status is `privsync status`: the latest runs and the batches still open;
// with --poll it asks the vendors about submitted batches now.
func (m *Main) status(ctx context.Context, args []string) error {
	var c common
	var poll bool
	var format string
	var wait time.Duration
	var limit int
	fs := m.flagSet("status", "status [flags]")
	c.register(fs)
	fs.BoolVar(&poll, "poll", false, "ask the vendors about submitted batches now (records outcomes in a report of its own)")
	fs.DurationVar(&wait, "wait", time.Minute, "with --poll: how long to keep asking")
	fs.StringVar(&format, "format", "text", "output `format`: text or json")
	fs.IntVar(&limit, "runs", 10, "how many recent runs to list")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("status takes no INPUT (got %q)", fs.Args())
	}
	if format != "text" && format != "json" {
		return usageErr("--format %q: use text or json", format)
	}
	if err := c.setup(m); err != nil {
		return err
	}
	var db *ledger.DB
	var err error
	if poll {
		if db, err = ledger.Open(ctx, c.ledger); err == nil {
			if err = m.pollNow(ctx, &c, db, wait); err != nil {
				db.Close()
			}
		}
	} else {
		db, err = ledger.OpenReadOnly(ctx, c.ledger)
	}
	if err != nil {
		if isNotExist(err) {
			return usageErr("no ledger at %s yet: run `privsync run` first", c.ledger)
		}
		return err
	}
	defer db.Close()
	runs, err := db.Runs(ctx, limit)
	if err != nil {
		return err
	}
	open, err := db.OpenBatchCounts(ctx)
	if err != nil {
		return err
	}
	if format == "json" {
		type runJSON struct {
			ID        string          `json:"id"`
			StartedAt time.Time       `json:"started_at"`
			State     string          `json:"state"`
			Mode      string          `json:"mode"`
			Plan      json.RawMessage `json:"plan"`
		}
		out := struct {
			Runs []runJSON           `json:"runs"`
			Open []ledger.BatchCount `json:"open_batches"`
		}{Open: open}
		for _, r := range runs {
			out.Runs = append(out.Runs, runJSON{r.ID, r.StartedAt, r.State, r.Mode, r.Stats})
		}
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tSTATE\tMODE")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.StartedAt.Format(time.RFC3339), r.State, r.Mode)
	}
	tw.Flush()
	fmt.Fprintln(m.Stdout)
	if len(open) == 0 {
		fmt.Fprintln(m.Stdout, "no open batches: every item has a final outcome")
		return nil
	}
	tw = tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VENDOR\tSTATE\tBATCHES\tITEMS\tLAST ERROR")
	for _, b := range open {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", b.Vendor, b.State, b.Batches, b.Items, b.LastError)
	}
	return tw.Flush()
}

// pollNow asks the vendors about submitted batches, as a run of its own so
// the outcomes it records land in a report.
func (m *Main) pollNow(ctx context.Context, c *common, db *ledger.DB, wait time.Duration) error {
	vendors, err := m.connectors(ctx, c)
	if err != nil {
		return err
	}
	run := &ledger.Run{ID: newRunID(time.Now()), StartedAt: time.Now().UTC(), Mode: "poll"}
	if err := db.StartRun(ctx, run, []string{}); err != nil {
		return err
	}
	rep, err := openReport(c.reportDir, run.ID, db)
	if err != nil {
		return err
	}
	defer rep.close()
	rep.signer = c.cfg.signer
	if _, err := m.executeWith(ctx, c, db, vendors, run.ID, time.Now().Add(wait), rep, true); err != nil {
		return err
	}
	if _, err := db.FinishRun(ctx, run.ID, nil); err != nil {
		return err
	}
	return rep.finish(ctx, run)
}
