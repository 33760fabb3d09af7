package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/privsync/privsync/executor/sim"
)

// TestSimulationOnTheLedger plays a few executor/sim scenarios (crashes at
// every kind of commit, splits, follow-ups, expiries) for the ledger's own
// sake; the executor's tests play a thousand.
func TestSimulationOnTheLedger(t *testing.T) {
	n := uint64(40)
	if sim.Race {
		n = 8
	}
	for seed := uint64(1); seed <= n; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			dir := sim.TempDir(t)
			synctest.Test(t, func(t *testing.T) {
				r := &sim.Direct{Dir: dir}
				defer r.Close()
				if err := sim.Run(context.Background(), seed, r); err != nil {
					t.Fatalf("%v\nreplay: go test ./executor -run 'TestSimulation$' -seed %d -v", err, seed)
				}
			})
		})
	}
}
