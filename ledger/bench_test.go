package ledger_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// settleAll is a sink that records every decision as if the vendors had
// already confirmed it: nothing in flight, every row's fingerprint settled.
type settleAll struct{ planner.Sink }

func (settleAll) Batch(context.Context, *planner.Batch) error { return nil }

func (s settleAll) Entry(ctx context.Context, e *planner.Entry) error {
	c := *e
	c.Decision = planner.Decision{Verdict: planner.Settle, Notes: e.Decision.Notes}
	c.Batches = nil
	return s.Sink.Entry(ctx, &c)
}

// seedSettled writes a ledger in which every row of inputs is settled: the
// state a ledger is in the morning after `privsync run` sent that night and
// the vendors confirmed everything (confirmed restrictions aside: the plan
// writer records what is sent, not what is confirmed).
func seedSettled(tb testing.TB, path string, inputs []string) *planner.Stats {
	tb.Helper()
	ctx := context.Background()
	db, err := ledger.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	mustStartRun(tb, db, "seed")
	var stats *planner.Stats
	err = db.WritePlan(ctx, "seed", func(_ planner.Ledger, s planner.Sink) error {
		// The ledger is new: planning against Empty spares 10M lookups.
		opts := planOptions(time.Now().UTC())
		opts.MaxCandidates = 1 << 30
		var err error
		stats, err = planner.Plan(ctx, fileSource(inputs), planner.Empty{}, settleAll{s}, opts)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Compact(ctx); err != nil {
		tb.Fatal(err)
	}
	return stats
}

// TestSeedSettledLedger makes the "previous night" ledger of bench/plan.sh:
//
//	PRIVSYNC_SEED_INPUT=night.csv PRIVSYNC_SEED_LEDGER=night.db go test -run TestSeedSettledLedger ./ledger/
func TestSeedSettledLedger(t *testing.T) {
	in, out := os.Getenv("PRIVSYNC_SEED_INPUT"), os.Getenv("PRIVSYNC_SEED_LEDGER")
	if in == "" || out == "" {
		t.Skip("bench/plan.sh's helper: set PRIVSYNC_SEED_INPUT and PRIVSYNC_SEED_LEDGER")
	}
	start := time.Now()
	st := seedSettled(t, out, strings.Split(in, ","))
	t.Logf("seeded %s with %d rows in %v", out, st.Rows, time.Since(start).Round(time.Millisecond))
	db, err := ledger.OpenReadOnly(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set, err := db.Reader().Settled(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := int(st.Rows) - st.Outcomes.Rejected - st.Superseded; set.Len() < want {
		t.Fatalf("%d fingerprints settled, want at least %d", set.Len(), want)
	}
}

func TestSeedSettledPlansNothing(t *testing.T) {
	path := t.TempDir() + "/seed.db"
	seedSettled(t, path, []string{"../testdata/sample.csv"})
	db := mustOpenAt(t, path)
	st := dryRun(t, db, fileSource{"../testdata/sample.csv"}, planOptions(time.Now()))
	if st.Changes() != 0 || st.Outcomes.Rejected != 0 || st.Waiting != 0 {
		t.Fatalf("a seeded night plans %d operations, %d rejects, %d waiting; want nothing", st.Changes(), st.Outcomes.Rejected, st.Waiting)
	}
}

// BenchmarkPlanNightly runs what `privsync plan` runs, in process, so it
// can be profiled (-cpuprofile): ingest's CSV reader, the ledger's
// settled set and lookups, the planner. bench/plan.sh sets the inputs:
//
//	PRIVSYNC_BENCH_INPUT=changed.csv PRIVSYNC_BENCH_LEDGER=night.db go test -run '^$' -bench PlanNightly -benchtime 1x -cpuprofile cpu.out ./ledger/
func BenchmarkPlanNightly(b *testing.B) {
	in, path := os.Getenv("PRIVSYNC_BENCH_INPUT"), os.Getenv("PRIVSYNC_BENCH_LEDGER")
	if in == "" {
		b.Skip("set PRIVSYNC_BENCH_INPUT (and PRIVSYNC_BENCH_LEDGER for a ledger holding the previous night)")
	}
	var led planner.Ledger = planner.Empty{}
	if path != "" {
		db, err := ledger.OpenReadOnly(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		led = db.Reader()
	}
	var st *planner.Stats
	for b.Loop() {
		var err error
		st, err = planner.Plan(context.Background(), fileSource(strings.Split(in, ",")), led, planner.Discard{}, planOptions(time.Now().UTC()))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(st.Changes()), "ops")
}

// BenchmarkBackfillLedger is a backfill's ledger work alone, as `run` does
// it for 100,000 new SFMC subjects with random ids (UUIDs, hashed e-mails:
// ids in no useful order): the plan written, then every batch of 1,000
// loaded, marked sending and submitted, and confirmed whole. It reports
// CPU µs per item (user + system, of the whole process) for each phase:
// steadier than wall time on a shared machine.
//
//	go test -run '^$' -bench BackfillLedger -benchtime 3x ./ledger/
func BenchmarkBackfillLedger(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	now := time.Now().UTC()
	in := make([]privsync.Row, n)
	for i := range in {
		// A multiplicative hash of i: distinct, in no order.
		in[i] = sfmcRow(fmt.Sprintf("%08x-4c27-87b9-%012x", uint32(i*2654435761), i), privsync.DoNotTrack, 0, now)
	}
	var planCPU, execCPU time.Duration
	for b.Loop() {
		db := mustOpenAt(b, filepath.Join(b.TempDir(), "l.db"))
		t0 := cpuTime(b)
		mustPlan(b, db, "r1", now, in...)
		t1 := cpuTime(b)
		for _, bt := range mustOpenBatches(b, db) {
			if err := db.MarkSending(ctx, bt); err != nil {
				b.Fatal(err)
			}
			if err := db.MarkSubmitted(ctx, bt, "ref"); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Resolve(ctx, "r1", bt, all(bt, privsync.OutcomeCompleted)); err != nil {
				b.Fatal(err)
			}
		}
		t2 := cpuTime(b)
		planCPU += t1 - t0
		execCPU += t2 - t1
		db.Close()
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*n) }
	b.ReportMetric(per(planCPU), "plan-cpu-µs/item")
	b.ReportMetric(per(execCPU), "exec-cpu-µs/item")
}

// cpuTime is the CPU time of the whole process so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
