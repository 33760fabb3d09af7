package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
)

const reportUsage = `Usage:
  privsync report verify [--summary FILE] FILE
      check a report's hash chain (and its row count and final hash
      against the run's summary); exit 0 valid, 1 broken
  privsync report export --run ID | --subject ID [--format csv|jsonl] [--ledger FILE] [--config FILE]
      everything the ledger knows about one run, or about one subject
      across runs, on standard output

Run 'privsync report verify --help' or 'privsync report export --help' for flags.
`

// report is `privsync report verify|export`.
func (m *Main) report(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, reportUsage)
		return usageErr("report: name a subcommand, verify or export")
	}
	switch args[0] {
	case "verify":
		return m.reportVerify(args[1:])
	case "export":
		return m.reportExport(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(m.Stdout, reportUsage)
		return nil
	}
	fmt.Fprint(m.Stderr, reportUsage)
	return usageErr("report: unknown subcommand %q (use verify or export)", args[0])
}

// reportVerify is `privsync report verify FILE`.
func (m *Main) reportVerify(args []string) error {
	var summary string
	fs := m.flagSet("report verify", "report verify [--summary FILE] FILE")
	fs.StringVar(&summary, "summary", "", "the run's summary `file` to compare the row count and final hash with (default: FILE's {run_id}.summary.json beside it, if present)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("report verify: give exactly one report FILE")
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		if isNotExist(err) {
			return usageErr("report verify: %s does not exist", path)
		}
		return fmt.Errorf("report verify: %w", err)
	}
	defer f.Close()
	rows, final, err := report.Verify(f)
	if err != nil {
		return withCode(ExitFailure, fmt.Errorf("%s is NOT a valid report: %w", path, err))
	}
	fmt.Fprintf(m.Stdout, "%s: valid, %d rows, final hash %s\n", path, rows, final)

	explicit := summary != ""
	if !explicit && strings.HasSuffix(path, ".csv") {
		summary = strings.TrimSuffix(path, ".csv") + ".summary.json"
	}
	if summary == "" {
		return nil
	}
	s, err := report.ReadSummary(summary)
	if err != nil {
		if !explicit && isNotExist(err) {
			fmt.Fprintf(m.Stdout, "no summary beside it: compare the row count and final hash with the run's summary by hand\n")
			return nil
		}
		if isNotExist(err) {
			return usageErr("report verify: %v", err)
		}
		return withCode(ExitFailure, err)
	}
	if s.Report.Rows != int64(rows) || s.Report.FinalHash != final {
		return withCode(ExitFailure, fmt.Errorf("%s does NOT match its summary %s: the summary records %d rows ending with hash %s (rows were removed from, or added to, the end of the report)",
			path, summary, s.Report.Rows, s.Report.FinalHash))
	}
	fmt.Fprintf(m.Stdout, "matches its summary %s\n", summary)
	return nil
}

// reportExport is `privsync report export`.
func (m *Main) reportExport(ctx context.Context, args []string) error {
	var runID, subject, format, ledgerPath, config string
	fs := m.flagSet("report export", "report export --run ID | --subject ID [--format csv|jsonl] [--ledger FILE] [--config FILE]")
	fs.StringVar(&runID, "run", "", "export the events of run `ID`, in report order")
	fs.StringVar(&subject, "subject", "", "export every event about subject `ID`, across runs and vendors, oldest first")
	fs.StringVar(&format, "format", "csv", "output `format`: csv or jsonl (one JSON object per event)")
	fs.StringVar(&ledgerPath, "ledger", "", "ledger `file` (default: the config's ledger, else privsync.db)")
	fs.StringVar(&config, "config", "privsync.toml", "configuration `file` (TOML), read only for its ledger; not needed with --ledger")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("report export: unexpected argument %q", fs.Arg(0))
	}
	if (runID == "") == (subject == "") {
		return usageErr("report export: give either --run ID or --subject ID")
	}
	if format != "csv" && format != "jsonl" {
		return usageErr("--format %q: use csv or jsonl", format)
	}
	if ledgerPath == "" {
		var err error
		if ledgerPath, err = configLedger(fs, config); err != nil {
			return err
		}
	}
	db, err := ledger.OpenReadOnly(ctx, ledgerPath)
	if err != nil {
		if isNotExist(err) {
			return usageErr("report export: the ledger %s does not exist (give --ledger FILE)", ledgerPath)
		}
		return err
	}
	defer db.Close()
	if runID != "" {
		if _, err := db.RunInputs(ctx, runID); errors.Is(err, sql.ErrNoRows) {
			return usageErr("report export: the ledger %s has no run %q", ledgerPath, runID)
		} else if err != nil {
			return fmt.Errorf("reading run %s: %w", runID, err)
		}
	}
	x, err := report.NewExporter(m.Stdout, format)
	if err != nil {
		return usageErr("%v", err)
	}
	if runID != "" {
		err = db.Events(ctx, runID, 0, x.Write)
	} else {
		err = db.SubjectEvents(ctx, subject, x.Write)
	}
	if ferr := x.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("report export: %w", err)
	}
	if x.Count() == 0 && subject != "" {
		fmt.Fprintf(m.Stderr, "privsync: the ledger %s holds no event about this subject\n", ledgerPath)
	}
	return nil
}

// configLedger finds the ledger from the config, reading only its ledger
// key (an export needs no vendor secrets). A missing default config means
// the default ledger.
func configLedger(fs *flag.FlagSet, path string) (string, error) {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	var c struct {
		Ledger string `toml:"ledger"`
	}
	if _, err := toml.DecodeFile(path, &c); err != nil {
		if isNotExist(err) && !explicit {
			return "privsync.db", nil
		}
		if isNotExist(err) {
			return "", usageErr("reading config: %s does not exist (give --config, or --ledger FILE)", path)
		}
		return "", usageErr("reading config %s: %v", path, err)
	}
	if c.Ledger == "" {
		return "privsync.db", nil
	}
	return c.Ledger, nil
}
