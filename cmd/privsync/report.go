package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/ledger/report"
)

const reportUsage = `Usage:
  privsync report verify [--summary FILE] [--allowed-signers FILE] FILE
      check a report's hash chain (and its row count and final hash
      against the run's summary, and the summary's signature); exit 0
      valid, 1 broken
  privsync report verify --all DIR [--allowed-signers FILE] [--ledger FILE]
      check every report and summary of a report directory and the chain
      of runs; names any run missing, reordered or altered, and which
      summaries are unsigned
  privsync report export --run ID | --subject ID [--format csv|jsonl|parquet] [--ledger FILE] [--config FILE]
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
		return m.reportVerify(ctx, args[1:])
	case "export":
		return m.reportExport(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(m.Stdout, reportUsage)
		return nil
	}
	fmt.Fprint(m.Stderr, reportUsage)
	return usageErr("report: unknown subcommand %q (use verify or export)", args[0])
}

// reportVerify is `privsync report verify FILE` and `--all DIR`.
func (m *Main) reportVerify(ctx context.Context, args []string) error {
	var summary, signersPath, all, ledgerPath string
	fs := m.flagSet("report verify", "report verify [--summary FILE] [--allowed-signers FILE] FILE | --all DIR")
	fs.StringVar(&summary, "summary", "", "the run's summary `file` to compare the row count and final hash with (default: FILE's {run_id}.summary.json beside it, if present)")
	fs.StringVar(&signersPath, "allowed-signers", "", "OpenSSH allowed-signers `file` (as for ssh-keygen -Y verify): the summaries must be signed by a key it allows")
	fs.StringVar(&all, "all", "", "check every report and summary of the report `directory`, and the chain of runs")
	fs.StringVar(&ledgerPath, "ledger", "", "with --all: the ledger `file`, whose finished runs must all be in the directory (catches a removed newest run)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var allowed *report.AllowedSigners
	if signersPath != "" {
		f, err := os.Open(signersPath)
		if err != nil {
			return usageErr("report verify: --allowed-signers: %v", err)
		}
		allowed, err = report.ParseAllowedSigners(f)
		f.Close()
		if err != nil {
			return usageErr("report verify: --allowed-signers %s: %v", signersPath, err)
		}
	}
	if all != "" {
		if fs.NArg() != 0 || summary != "" {
			return usageErr("report verify --all DIR takes no report FILE and no --summary")
		}
		return m.verifyDir(ctx, all, allowed, ledgerPath)
	}
	if ledgerPath != "" {
		return usageErr("report verify: --ledger goes with --all")
	}
	if fs.NArg() != 1 {
		return usageErr("report verify: give exactly one report FILE, or --all DIR")
	}
	return m.verifyReport(fs.Arg(0), summary, allowed)
}

// verifyReport checks one report, its summary (summary, or the one beside
// it), the summary's signature and its link to the previous run.
func (m *Main) verifyReport(path, summary string, allowed *report.AllowedSigners) error {
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
		if allowed != nil {
			return withCode(ExitFailure, fmt.Errorf("%s has no summary to check a signature of: give --summary FILE", path))
		}
		return nil
	}
	raw, err := os.ReadFile(summary)
	if err != nil {
		switch {
		case !isNotExist(err):
			return withCode(ExitFailure, fmt.Errorf("reading the summary: %w", err))
		case explicit:
			return usageErr("report verify: %v", err)
		case allowed != nil:
			return withCode(ExitFailure, fmt.Errorf("no summary beside %s: nothing signed to check", path))
		}
		fmt.Fprintf(m.Stdout, "no summary beside it: compare the row count and final hash with the run's summary by hand\n")
		return nil
	}
	var s report.Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		return withCode(ExitFailure, fmt.Errorf("reading the summary %s: %w", summary, err))
	}
	if s.Report.Rows != int64(rows) || s.Report.FinalHash != final {
		return withCode(ExitFailure, fmt.Errorf("%s does NOT match its summary %s: the summary records %d rows ending with hash %s (rows were removed from, or added to, the end of the report)",
			path, summary, s.Report.Rows, s.Report.FinalHash))
	}
	fmt.Fprintf(m.Stdout, "matches its summary %s\n", summary)
	if err := m.verifySignature(summary, raw, &s, allowed); err != nil {
		return err
	}
	return m.verifyPrevious(summary, &s)
}

// verifyPrevious checks a summary's link to the run before it, when that
// run's summary is beside it.
func (m *Main) verifyPrevious(summary string, s *report.Summary) error {
	if s.Previous == nil {
		return nil
	}
	prev, _ := report.SummaryPaths(filepath.Dir(summary), s.Previous.RunID)
	h, err := report.FileSHA256(prev)
	switch {
	case isNotExist(err):
		fmt.Fprintf(m.Stdout, "the previous run %s is not beside it: check the chain of runs with --all DIR\n", s.Previous.RunID)
		return nil
	case err != nil:
		return withCode(ExitFailure, err)
	case h != s.Previous.SummarySHA256:
		return withCode(ExitFailure, fmt.Errorf("the previous run's summary %s was altered: its SHA-256 is %s, the summary %s recorded %s",
			prev, h, summary, s.Previous.SummarySHA256))
	}
	fmt.Fprintf(m.Stdout, "chained to the previous run %s (its summary is unchanged)\n", s.Previous.RunID)
	return nil
}

// verifySignature checks a summary's signature file, when there is one or
// allowed signers were given.
func (m *Main) verifySignature(summary string, raw []byte, s *report.Summary, allowed *report.AllowedSigners) error {
	sig, err := os.ReadFile(report.SigPath(summary))
	switch {
	case isNotExist(err) && s.SigningKey != "":
		return withCode(ExitFailure, fmt.Errorf("the summary %s says it was signed by %s, but its signature %s is missing", summary, s.SigningKey, report.SigPath(summary)))
	case isNotExist(err) && allowed != nil:
		return withCode(ExitFailure, fmt.Errorf("the summary %s is NOT signed", summary))
	case isNotExist(err):
		fmt.Fprintf(m.Stdout, "the summary is not signed\n")
		return nil
	case err != nil:
		return withCode(ExitFailure, fmt.Errorf("reading the signature: %w", err))
	}
	c, err := report.CheckSignature(raw, sig, allowed)
	if err != nil {
		return withCode(ExitFailure, fmt.Errorf("the summary %s is NOT validly signed: %w", summary, err))
	}
	if s.SigningKey != "" && !report.SameKey(s.SigningKey, c.Key) {
		return withCode(ExitFailure, fmt.Errorf("the summary %s is signed by %s, but names %s", summary, c.Key, s.SigningKey))
	}
	if allowed == nil {
		fmt.Fprintf(m.Stdout, "signed by %s (give --allowed-signers FILE to check that key is yours)\n", c.Key)
		return nil
	}
	fmt.Fprintf(m.Stdout, "good signature by %s (%s)\n", strings.Join(c.Principals, ", "), c.Key)
	return nil
}

// finishedRuns lists the finished runs of a ledger.
func finishedRuns(ctx context.Context, ledgerPath string) ([]string, error) {
	db, err := ledger.OpenReadOnly(ctx, ledgerPath)
	if err != nil {
		if isNotExist(err) {
			return nil, usageErr("report verify: the ledger %s does not exist", ledgerPath)
		}
		return nil, err
	}
	defer db.Close()
	runs, err := db.Runs(ctx, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range runs {
		if r.State == ledger.RunFinished {
			ids = append(ids, r.ID)
		}
	}
	return ids, nil
}

// runLine is one run's line in verify --all's listing.
func runLine(r *report.RunCheck, unsigned bool) string {
	line := r.RunID
	switch {
	case r.Report && r.FinalHash != "":
		line += fmt.Sprintf(": %d rows, final hash %s", r.Rows, r.FinalHash)
	case !r.Report:
		line += ": no report"
	default:
		line += ": report NOT valid"
	}
	switch {
	case r.Summary == nil:
		return line + "; no summary"
	case r.Signature != nil && r.Signature.Principals != nil:
		return line + fmt.Sprintf("; signed by %s (%s)", strings.Join(r.Signature.Principals, ", "), r.Signature.Key)
	case r.Signature != nil:
		return line + fmt.Sprintf("; signed by %s (not checked: no --allowed-signers)", r.Signature.Key)
	case unsigned:
		return line + "; unsigned"
	}
	return line + "; bad signature"
}

// verifyDir is `privsync report verify --all DIR`.
func (m *Main) verifyDir(ctx context.Context, dir string, allowed *report.AllowedSigners, ledgerPath string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usageErr("report verify --all: %s is not a directory", dir)
	}
	opt := report.DirOptions{Allowed: allowed}
	if ledgerPath != "" {
		var err error
		if opt.Expected, err = finishedRuns(ctx, ledgerPath); err != nil {
			return err
		}
	}
	d, err := report.VerifyDir(dir, opt)
	if err != nil {
		return fmt.Errorf("report verify --all: %w", err)
	}
	for _, r := range d.Runs {
		fmt.Fprintln(m.Stdout, runLine(r, slices.Contains(d.Unsigned, r.RunID)))
	}
	if len(d.Unsigned) > 0 {
		fmt.Fprintf(m.Stdout, "%d of %d summaries are unsigned: %s\n", len(d.Unsigned), len(d.Runs), strings.Join(d.Unsigned, ", "))
	}
	if !d.OK() {
		return withCode(ExitFailure, fmt.Errorf("%s does NOT verify (%d problems):\n  %s", dir, len(d.Problems), strings.Join(d.Problems, "\n  ")))
	}
	if d.Latest == nil {
		fmt.Fprintf(m.Stdout, "%s: no summary to check\n", dir)
		return nil
	}
	fmt.Fprintf(m.Stdout, "%s: valid, %d runs in one chain; the newest is %s, final hash %s", dir, len(d.Runs), d.Latest.RunID, d.Latest.FinalHash)
	if ledgerPath == "" {
		fmt.Fprintf(m.Stdout, " (removing the newest run leaves no trace here: compare with the ledger, --ledger FILE, or with its final hash kept apart)")
	}
	fmt.Fprintln(m.Stdout)
	return nil
}

// reportExport is `privsync report export`.
func (m *Main) reportExport(ctx context.Context, args []string) error {
	var runID, subject, format, ledgerPath, config string
	fs := m.flagSet("report export", "report export --run ID | --subject ID [--format csv|jsonl|parquet] [--ledger FILE] [--config FILE]")
	fs.StringVar(&runID, "run", "", "export the events of run `ID`, in report order")
	fs.StringVar(&subject, "subject", "", "export every event about subject `ID`, across runs and vendors, oldest first")
	fs.StringVar(&format, "format", "csv", "output `format`: csv, jsonl (one JSON object per event) or parquet (typed columns, snappy)")
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
	if format != "csv" && format != "jsonl" && format != "parquet" {
		return usageErr("--format %q: use csv, jsonl or parquet", format)
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
