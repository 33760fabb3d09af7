package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// plan is `privsync plan`: a dry run that prints what would be sent.
func (m *Main) plan(ctx context.Context, args []string) error {
	var c common
	var pf planFlags
	var format string
	fs := m.flagSet("plan", "plan [flags] INPUT...")
	c.register(fs)
	pf.register(fs)
	fs.StringVar(&format, "format", "text", "output `format`: text or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return usageErr("--format %q: use text or json", format)
	}
	if err := c.setup(m); err != nil {
		return err
	}
	src, err := m.newSource(ctx, &c, pf, fs.Args())
	if err != nil {
		return err
	}
	defer src.close()

	var led planner.Ledger = planner.Empty{}
	if db, err := ledger.OpenReadOnly(ctx, c.ledger); err == nil {
		defer db.Close()
		led = db.Reader()
	} else if !isNotExist(err) {
		return err
	}
	stats, err := planner.Plan(ctx, src, led, planner.Discard{}, c.plannerOptions(pf, time.Now().UTC()))
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	if err := printPlan(m.Stdout, format, stats); err != nil {
		return err
	}
	if pf.maxChanges > 0 && stats.Changes() > pf.maxChanges {
		return usageErr("the plan has %d operations, more than --max-changes %d: check the export before sending it", stats.Changes(), pf.maxChanges)
	}
	return nil
}

func printPlan(w io.Writer, format string, s *planner.Stats) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "VENDOR\tOPERATION\tSUBJECTS\n")
	vendors := make([]string, 0, len(s.Operations))
	for v := range s.Operations {
		vendors = append(vendors, v)
	}
	slices.Sort(vendors)
	for _, v := range vendors {
		ops := make([]string, 0)
		for op := range s.Operations[v] {
			ops = append(ops, string(op))
		}
		slices.Sort(ops)
		for _, op := range ops {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", v, op, s.Operations[v][privsync.Operation(op)])
		}
	}
	if len(vendors) == 0 {
		fmt.Fprintf(tw, "(nothing to send)\t\t\n")
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d rows: %d unchanged, %d superseded by a later row, %d waiting for an operation in flight\n",
		s.Rows, s.Unchanged, s.Superseded, s.Waiting)
	fmt.Fprintf(w, "not sent: %d unsupported, %d conflict, %d rejected, %d stale\n",
		s.Outcomes.Unsupported, s.Outcomes.Conflict, s.Outcomes.Rejected, s.Outcomes.Stale)
	return nil
}
