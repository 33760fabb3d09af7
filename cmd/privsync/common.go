package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ingest/objstore"
	"github.com/privsync/privsync/planner"
	"github.com/schollz/progressbar/v3"
)

// common holds the flags every command that reads a config shares.
type common struct {
	config    string
	ledger    string
	reportDir string
	logLevel  string
	logFormat string
	quiet     bool

	cfg     *Config
	log     *slog.Logger
	metrics *runMetrics // nil without --metrics-file
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "privsync.toml", "configuration `file` (TOML)")
	fs.StringVar(&c.ledger, "ledger", "", "ledger `file` (default: the config's ledger, else privsync.db)")
	fs.StringVar(&c.reportDir, "report-dir", "", "`directory` for audit reports (default: the config's report_dir, else reports)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn or error (subject ids are logged at debug only)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json (one object a line, for log shippers)")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress bars, warnings and errors only")
}

// setup loads the config and the logger after flags are parsed.
func (c *common) setup(m *Main) error {
	var err error
	if c.log, err = m.logger(c.logLevel, c.logFormat, c.quiet); err != nil {
		return err
	}
	if c.cfg, err = loadConfig(c.config, m.Getenv); err != nil {
		return err
	}
	if c.ledger == "" {
		c.ledger = c.cfg.Ledger
	}
	if c.ledger == "" {
		c.ledger = "privsync.db"
	}
	if c.reportDir == "" {
		c.reportDir = c.cfg.ReportDir
	}
	if c.reportDir == "" {
		c.reportDir = "reports"
	}
	return nil
}

// planFlags are the flags of plan and run.
type planFlags struct {
	snapshot       bool
	maxChanges     int
	requireSuccess optionalBool
}

func (p *planFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&p.snapshot, "snapshot", false, "the input is the whole truth: clear the restrictions of subjects it does not name")
	fs.IntVar(&p.maxChanges, "max-changes", 0, "refuse a plan of more than `N` operations (guards against a broken export; 0 = no limit)")
	fs.Var(&p.requireSuccess, "require-success-marker", "refuse a directory or prefix without a _SUCCESS marker (a half-written export); default: on with --snapshot")
}

// successRequired says whether directories and prefixes need _SUCCESS.
func (p *planFlags) successRequired() bool {
	if p.requireSuccess.set {
		return p.requireSuccess.v
	}
	return p.snapshot
}

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ v, set bool }

func (b *optionalBool) String() string   { return strconv.FormatBool(b.v) }
func (b *optionalBool) IsBoolFlag() bool { return true }
func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.v, b.set = v, true
	return nil
}

func (c *common) plannerOptions(p planFlags, now time.Time) planner.Options {
	limits := map[string]int{}
	for name, v := range c.cfg.Vendors {
		limits[name] = v.BatchSize
	}
	window := 14 * 24 * time.Hour
	for _, v := range c.cfg.Vendors { // loadConfig refuses sfmc vendors with different periods
		if v.kind() == "sfmc" {
			window = time.Duration(v.SuppressionDay) * 24 * time.Hour
		}
	}
	return planner.Options{Vendors: c.cfg.Kinds(), Limits: limits, Snapshot: p.snapshot,
		Rules: planner.Rules{Now: now, SuppressionWindow: window}}
}

// source reads the inputs through ingest for the planner; it can read them
// twice (standard input is kept in a temporary file for that).
type source struct {
	inputs   []string
	objects  *objects
	opts     ingest.Options
	stdin    string // temporary copy of standard input
	files    []ingest.FileInfo
	progress *progressbar.ProgressBar
}

func (m *Main) newSource(ctx context.Context, c *common, pf planFlags, inputs []string) (_ *source, err error) {
	if len(inputs) == 0 {
		return nil, usageErr("no INPUT given: name CSV or Parquet files, directories of them, object storage prefixes, or - for standard input")
	}
	objs := newObjects()
	defer func() {
		if err != nil {
			objs.close()
		}
	}()
	files, err := ingest.ExpandObjects(ctx, inputs, objs)
	if err != nil {
		return nil, withCode(ExitUsage, err)
	}
	if pf.successRequired() {
		for _, in := range inputs {
			has, isDir, err := objs.hasSuccessMarker(ctx, in)
			if err != nil {
				return nil, withCode(ExitUsage, err)
			}
			if isDir && !has {
				return nil, usageErr("%s has no %s marker: the export may be half-written; nothing was sent (--require-success-marker=false to read it anyway)", in, objstore.SuccessMarker)
			}
		}
	}
	s := &source{inputs: files, objects: objs, opts: ingest.Options{Vendors: c.cfg.Kinds(), Columns: c.cfg.Columns, Objects: objs}}
	var total int64
	for _, f := range files {
		if obj, ok := objs.store.Object(f); ok {
			total += obj.Size
			continue
		}
		if f == ingest.Stdin {
			name, err := copyStdin(ctx, m.Stdin)
			if err != nil {
				return nil, err
			}
			s.stdin = name
			continue
		}
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	if m.Terminal && !c.quiet && total > 0 {
		s.progress = progressbar.NewOptions64(total, progressbar.OptionSetWriter(m.Stderr),
			progressbar.OptionSetDescription("reading"), progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
		s.opts.Progress = counter{s.progress}
	}
	opts, done, err := s.options()
	if err != nil {
		return nil, err
	}
	defer done()
	if err := ingest.Check(ctx, s.inputs, opts); err != nil {
		s.close()
		return nil, inputErr(err)
	}
	return s, nil
}

// copyStdin keeps standard input in a temporary file, returning its name.
// Ctrl-C stops it even while standard input has nothing to read.
func copyStdin(ctx context.Context, in io.Reader) (string, error) {
	tmp, err := os.CreateTemp("", "privsync-stdin-*.csv")
	if err != nil {
		return "", fmt.Errorf("keeping standard input: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(tmp, in)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The copy may stay blocked in a read: the file goes, and the
		// process is about to end.
		err = ctx.Err()
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("keeping standard input: %w", err)
	}
	return tmp.Name(), nil
}

type counter struct{ bar *progressbar.ProgressBar }

func (c counter) Add(n int64) { c.bar.Add64(n) }

// options returns the ingest options with standard input rewound.
func (s *source) options() (ingest.Options, func(), error) {
	o := s.opts
	if s.stdin == "" {
		return o, func() {}, nil
	}
	f, err := os.Open(s.stdin)
	if err != nil {
		return o, nil, fmt.Errorf("reading the copy of standard input: %w", err)
	}
	o.Stdin = f
	return o, func() { f.Close() }, nil
}

func (s *source) Read(ctx context.Context, h planner.RowHandler) error {
	opts, done, err := s.options()
	if err != nil {
		return err
	}
	defer done()
	if s.progress != nil {
		s.progress.Reset()
	}
	infos, err := ingest.Read(ctx, s.inputs, opts, h)
	if err != nil {
		return inputErr(err)
	}
	if s.files == nil {
		s.files = infos
		return nil
	}
	for i := range infos {
		if i >= len(s.files) || infos[i].SHA256 != s.files[i].SHA256 {
			return withCode(ExitUsage, fmt.Errorf("input %s changed while privsync read it: run again on a stable copy", infos[i].Path))
		}
	}
	return nil
}

// validate reads the whole input once, so that an input broken further
// down than its header stops the command before anything is sent.
func (s *source) validate(ctx context.Context) error {
	return s.Read(ctx, discardRows{})
}

type discardRows struct{}

func (discardRows) Row(*privsync.Row) error         { return nil }
func (discardRows) Reject(*privsync.RowError) error { return nil }

func (s *source) close() {
	if s.progress != nil {
		s.progress.Finish()
	}
	if s.stdin != "" {
		os.Remove(s.stdin)
	}
	s.objects.close()
}

// inputErr gives an unreadable input exit code 2.
func inputErr(err error) error {
	var fe *ingest.FileError
	if errors.As(err, &fe) {
		return withCode(ExitUsage, err)
	}
	return err
}
