package executor_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"testing"
	"testing/synctest"

	"github.com/privsync/privsync/executor/sim"
)

var (
	simSeed  = flag.Uint64("seed", 0, "run only this simulation seed (TestSimulation)")
	simSeeds = flag.Int("seeds", 0, "how many simulation seeds TestSimulation runs (default 1000, 100 under -race)")
	simFrom  = flag.Uint64("seed-from", 1, "the first simulation seed")
	simTrace = flag.Bool("log-requests", false, "log every request of the simulation and its injected fault (with -seed)")
)

// TestSimulation plays seeded scenarios of several nights against the real
// executor and ledger, the vendor simulators behind a faulty network, and
// crashes, checking the invariants after every night (executor/sim).
// -seeds N runs more; -seed N replays one.
func TestSimulation(t *testing.T) {
	n := *simSeeds
	if n == 0 {
		n = 1000
		if sim.Race {
			n = 100 // the race detector is after data races, not more interleavings
		}
	}
	var seeds []uint64
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := range n {
			seeds = append(seeds, *simFrom+uint64(i))
		}
	}
	// A scenario's heap is small and short-lived: collecting it four times
	// less often saves a tenth of the simulation's CPU.
	old := debug.SetGCPercent(400)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	if *simTrace {
		sim.Trace = os.Stderr
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			dir := sim.TempDir(t)
			synctest.Test(t, func(t *testing.T) {
				r := &sim.Direct{Dir: dir}
				defer r.Close()
				err := sim.Run(context.Background(), seed, r)
				var f *sim.Failure
				if errors.As(err, &f) {
					t.Fatalf("%v\nreplay: go test ./executor -run 'TestSimulation$' -seed %d -v", err, seed)
				}
				if err != nil {
					t.Fatalf("seed %d: %v\nreplay: go test ./executor -run 'TestSimulation$' -seed %d -v", seed, err, seed)
				}
			})
		})
	}
}
