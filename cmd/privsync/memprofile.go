package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/libc"
)

// memPhase is the phase the run last finished (logMemory), for the timeline.
var memPhase atomic.Pointer[string]

// memSampleEvery is how often startMemProfile looks at the resident set.
const memSampleEvery = 250 * time.Millisecond

// startMemProfile, when path is set (PRIVSYNC_MEMPROFILE, undocumented: the
// heap twin of PRIVSYNC_CPUPROFILE, for bench/backfill.sh), watches the
// process's resident set: it writes a heap profile to path+".peak" each
// time the resident set passes its peak by 5% (the last one written is the
// heap near the peak), one a minute (path+".01m", ...), and a line of
// figures a second to path+".tsv" (SQLite's C heap only in a binary built
// with -tags memory.counters, which has modernc.org/memory count it). The
// returned func writes one more profile to path (the heap at the end) and
// prints the peak's figures to standard error: resident set, Go heap, and
// the memory outside the Go runtime (SQLite's C heap, mappings).
func startMemProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak memFigures
	var profiled uint64
	timeline, err := os.Create(path + ".tsv")
	if err != nil {
		os.Stderr.WriteString("privsync: PRIVSYNC_MEMPROFILE: " + err.Error() + "\n")
		return func() {}
	}
	fmt.Fprintln(timeline, "seconds\trss_mib\tgo_heap_live_mib\tgo_heap_objects_mib\tgo_resident_mib\toutside_go_mib\tsqlite_c_mib\tafter")
	start := time.Now()
	perSecond := int(time.Second / memSampleEvery)
	wg.Go(func() {
		t := time.NewTicker(memSampleEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-t.C:
			}
			f := readMemFigures()
			if i > 0 && i%(60*perSecond) == 0 {
				writeHeapProfile(fmt.Sprintf("%s.%02dm", path, i/(60*perSecond)))
			}
			if i%perSecond == 0 {
				fmt.Fprintf(timeline, "%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", time.Since(start).Seconds(), f.RSS>>20, f.HeapLive>>20, f.HeapObjects>>20, f.GoResident>>20, f.outsideGo()>>20, libc.MemStat().Bytes>>20, phaseName())
			}
			if f.RSS <= peak.RSS {
				continue
			}
			peak = f
			if f.RSS >= profiled+profiled/20 {
				profiled = f.RSS
				writeHeapProfile(path + ".peak")
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		timeline.Close()
		writeHeapProfile(path)
		end := readMemFigures()
		fmt.Fprintf(os.Stderr, "privsync: PRIVSYNC_MEMPROFILE: peak RSS %s (kernel high-water mark %s) with Go heap live %s, Go runtime resident %s, outside Go %s; at the end: RSS %s, Go heap live %s\n",
			mib(peak.RSS), mib(end.PeakRSS), mib(peak.HeapLive), mib(peak.GoResident), mib(peak.outsideGo()), mib(end.RSS), mib(end.HeapLive))
	}
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		os.Stderr.WriteString("privsync: PRIVSYNC_MEMPROFILE: " + err.Error() + "\n")
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		os.Stderr.WriteString("privsync: PRIVSYNC_MEMPROFILE: " + err.Error() + "\n")
	}
}

// memFigures is the process's memory at one moment, in bytes.
type memFigures struct {
	RSS, PeakRSS uint64 // resident set now and its high-water mark (Linux; 0 elsewhere)
	HeapLive     uint64 // Go heap reachable at the last collection
	HeapObjects  uint64 // Go heap in objects, live or not yet swept
	GoResident   uint64 // mapped by the Go runtime and not returned to the OS
}

// outsideGo is the resident memory the Go runtime does not account for:
// SQLite's C heap (modernc.org/libc maps it itself), the binary, and
// file mappings. Go memory not yet touched makes it an estimate from below.
func (f memFigures) outsideGo() uint64 {
	if f.RSS < f.GoResident {
		return 0
	}
	return f.RSS - f.GoResident
}

var memMetrics = []string{"/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/total:bytes", "/memory/classes/heap/released:bytes"}

func readMemFigures() memFigures {
	s := make([]metrics.Sample, len(memMetrics))
	for i, n := range memMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	f := memFigures{HeapLive: v(0), HeapObjects: v(1), GoResident: v(2) - v(3)}
	f.RSS, f.PeakRSS = procStatus()
	return f
}

// procStatus reads the resident set and its high-water mark from
// /proc/self/status (Linux); zeros where there is none.
func procStatus() (rss, hwm uint64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var into *uint64
		switch string(k) {
		case "VmRSS":
			into = &rss
		case "VmHWM":
			into = &hwm
		default:
			continue
		}
		kb, _ := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
		*into = kb << 10
	}
	return rss, hwm
}

func mib(b uint64) string { return strconv.FormatUint(b>>20, 10) + " MiB" }

// logMemory logs the process's memory at debug level as a phase ends.
func logMemory(ctx context.Context, log *slog.Logger, phase string) {
	memPhase.Store(&phase)
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	f := readMemFigures()
	log.DebugContext(ctx, "memory", "after", phase, "rss_mib", f.RSS>>20, "peak_rss_mib", f.PeakRSS>>20, "go_heap_live_mib", f.HeapLive>>20,
		"go_heap_objects_mib", f.HeapObjects>>20, "go_resident_mib", f.GoResident>>20, "outside_go_mib", f.outsideGo()>>20)
}

func phaseName() string {
	if p := memPhase.Load(); p != nil {
		return *p
	}
	return "-"
}
