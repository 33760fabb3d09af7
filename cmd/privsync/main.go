// Command privsync keeps third-party vendors in line with a company's
// privacy decisions: it reads desired privacy states from CSV or Parquet,
// diffs them against its SQLite ledger, sends only the real changes to each
// vendor under its limits, and writes a tamper-evident audit report.
//
// Exit codes:
//
//	0  everything final and successful (or pending by design)
//	1  a run-time failure (the ledger is in use, a vendor stopped, I/O)
//	2  bad usage, configuration or unreadable input: nothing was sent
//	3  finished, but some items failed, were rejected or are in conflict
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	tuneMemory()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	stopProfile := startCPUProfile(os.Getenv("PRIVSYNC_CPUPROFILE"))
	stopMemProfile := startMemProfile(os.Getenv("PRIVSYNC_MEMPROFILE"))
	err := m.Run(ctx, os.Args[1:])
	stopMemProfile()
	stopProfile()
	stop()
	os.Exit(m.Exit(err))
}

// tuneMemory sets the collector's pace and a soft memory limit, unless the
// operator set them (GOGC, GOMEMLIMIT).
//
// The planner's heap is large and long-lived (a few dozen bytes per input
// row) with little garbage: collecting at +50% rather than +100% keeps a
// 10M-row night under 900 MiB for no measurable time. The planner keeps 8
// bytes per input row and the settled set 8 per settled row: ~530 MiB live
// for a 30M-subject night, which +50% of slack (and freed pages not yet
// returned) took past 1 GiB of RSS. A soft limit makes the collector work
// harder near it instead; the ledger's SQLite memory (page cache, statement
// journals) is allocated outside the Go heap and lies outside it.
func tuneMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(768 << 20)
	}
}

// startCPUProfile writes a CPU profile of the whole process to path when it
// is set (PRIVSYNC_CPUPROFILE, undocumented: for bench/backfill.sh and
// bench/plan.sh), and returns what stops it.
func startCPUProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		os.Stderr.WriteString("privsync: PRIVSYNC_CPUPROFILE: " + err.Error() + "\n")
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Stderr.WriteString("privsync: PRIVSYNC_CPUPROFILE: " + err.Error() + "\n")
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
