package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/ledger"
)

// Exit codes, documented in the package comment and the README.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	ExitPartial = 3
)

// exitError carries an exit code with an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr is an error of the user's making: exit 2, nothing was sent.
func usageErr(format string, args ...any) error {
	return &exitError{ExitUsage, fmt.Errorf(format, args...)}
}

// withCode wraps err with an exit code (nil stays nil).
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code, err}
}

// Main is the program: its streams and environment, so tests can run it.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Terminal reports whether stderr is a terminal (progress bars).
	Terminal bool

	// Test hooks: ledgerHook sees every ledger run opens (the simulation
	// kills a run at a commit); vendorsHook builds the vendors instead of
	// the config.
	ledgerHook  func(*ledger.DB)
	vendorsHook func(context.Context, *Config) ([]executor.Vendor, error)
}

// NewMain returns a Main wired to the process.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Terminal: isatty.IsTerminal(os.Stderr.Fd())}
}

const usage = `privsync keeps vendors in line with your privacy decisions.

Usage:
  privsync plan   [flags] INPUT...     dry run: what would be sent, per vendor and operation
  privsync run    [flags] INPUT...     resume leftovers, plan, execute, report
  privsync status [flags]              runs and pending batches; --poll asks the vendors now
  privsync report verify FILE          check a report's hash chain, its summary and signature
  privsync report verify --all DIR     check every run of a report directory and the chain between them
  privsync report export --run ID | --subject ID [--format csv|jsonl]

INPUT is a .csv or .parquet file, a directory of them (read recursively), an
object or prefix in object storage (s3://bucket/prefix/, gs://..., azblob://...),
or - for CSV on standard input. Run 'privsync COMMAND --help' for its flags.

Exit codes: 0 ok, 1 run-time failure, 2 bad usage/config/input (nothing sent),
3 finished but some items failed, were rejected or are in conflict.
`

// Run runs one command.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return usageErr("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "plan":
		return m.plan(ctx, rest)
	case "run":
		return m.run(ctx, rest)
	case "status":
		return m.status(ctx, rest)
	case "report":
		return m.report(ctx, rest)
	case "-h", "--help", "help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	fmt.Fprint(m.Stderr, usage)
	return usageErr("unknown command %q", cmd)
}

// Exit prints err (if any) and returns the exit code for it.
func (m *Main) Exit(err error) int {
	code := exitCode(err)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(m.Stderr, "privsync: %v\n", err)
	}
	return code
}

// exitCode is the one place an error becomes an exit code: nil and a help
// request are 0; an error carrying a code (withCode, usageErr: bad usage,
// configuration or input before anything was sent is 2; a finished run's
// problems are 3; vendors stopped are 1) gives it; anything else (the
// ledger in use, I/O, an interruption) is 1.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	}
	return ExitFailure
}

// flagSet returns a FlagSet whose -h prints a usage for the command.
func (m *Main) flagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: privsync %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags wherever they stand among the arguments, as most CLIs
// do (`privsync plan in.csv --format json`), turning a parse failure into a
// usage error. "--" ends the flags: what follows is an argument even if it
// starts with '-'; "-" alone is an argument (standard input). fs.Args()
// then holds the arguments, in order.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageErr("%v", err)
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" && !isFlagValue(fs, args[:used-1]) {
			pos = append(pos, rest...) // "--" ended the flags
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Leave the arguments where fs.Args() finds them.
	if err := fs.Parse(append([]string{"--"}, pos...)); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

// isFlagValue reports whether the argument after args is the value of a
// flag that takes one (as in `--config --`), rather than a flag of its own.
func isFlagValue(fs *flag.FlagSet, args []string) bool {
	if len(args) == 0 {
		return false
	}
	name := strings.TrimLeft(args[len(args)-1], "-")
	if !strings.HasPrefix(args[len(args)-1], "-") || name == "" || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// logger builds the slog logger for a command: format is text (slog's
// key=value lines) or json (one JSON object a line, for log shippers).
func (m *Main) logger(level, format string, quiet bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("--log-level %q: use debug, info, warn or error", level)
	}
	if quiet && l < slog.LevelWarn {
		l = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(m.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(m.Stderr, opts)), nil
	}
	return nil, usageErr("--log-format %q: use text or json", format)
}
