package sim

import (
	"fmt"
	"io"
)

// Trace, when set, is told every request the transport serves and the
// fault it injected (go test ./executor -run 'TestSimulation$' -seed N
// -log-requests -v): for replaying one seed, not for parallel runs.
var Trace io.Writer

// Describe writes the scenario of seed night by night, for a failing seed.
func Describe(out io.Writer, sc *Scenario) {
	for n, night := range sc.Nights {
		fmt.Fprintf(out, "night %d: faults %+v async %v crashes %v next-input %v quiet %v\n", n, night.Faults, night.Async, night.Crashes, night.NextInput, night.Quiet)
		for _, r := range night.Rows {
			fmt.Fprintf(out, "  %s %s %s restr=%q erasure=%q access=%q at %s\n", r.Vendor, r.IDType, r.SubjectID, r.Restrictions, r.Erasure, r.AccessRequest, r.UpdatedAt.Format("01-02T15"))
		}
	}
}
