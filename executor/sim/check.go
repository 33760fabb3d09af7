package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
)

// vendorView is one subject as its vendor holds it.
type vendorView struct {
	restr      privsync.Restrictions
	erased     bool // deleted, removed, anonymized
	suppressed bool // sfmc: suppressed, not deleted yet
	reviews    int
}

func (w *World) view(k privsync.Key) vendorView {
	var v vendorView
	switch k.Vendor {
	case SFMC:
		p := w.SFMC.State()[CustomerMID][k.SubjectID]
		for _, n := range p.Restrictions {
			f, _ := privsync.ParseRestriction(n)
			v.restr |= f
		}
		v.erased, v.suppressed = p.Erasure == "deleted", p.Erasure == "suppressed"
	case Batch:
		u := w.Batch.State()[AppAPIKey][k.IDType+":"+k.SubjectID]
		v.erased, v.reviews = u.Removed, u.Reviews
	case Bloomreach:
		v.erased = slices.Contains(w.Bloom.State()[ProjectToken].Anonymized, k.IDType+":"+k.SubjectID)
	}
	return v
}

// checkLedger checks I1 (the ledger's confirmed state holds nothing the
// vendor did not confirm), I2 (every erasure asked for is confirmed at the
// vendor, or still planned, pending or failed: never settled unconfirmed)
// and I4 (each item's final outcome is recorded once) on in, the ledger
// at the end of a night whose vendors have since finished their work, and
// m, what the nights so far asked.
func (sc *Scenario) checkLedger(w *World, in *Inspection, m *Model) []string {
	var bad []string
	magic := map[privsync.Key]bool{}
	for _, s := range sc.Subjects {
		magic[s.Key] = s.Magic()
	}
	for _, s := range in.Subjects {
		if magic[s.Key] {
			// A request sent again after a lost answer is confirmed by the
			// vendor's "nothing to change" while the first one still runs
			// (SFMC counts what it was told): for a subject the vendor
			// fails, that confirmation is wrong, and privsync cannot know.
			continue
		}
		v := w.view(s.Key)
		switch {
		case s.Erasure == 2 && !v.erased:
			bad = append(bad, fmt.Sprintf("I1: %v: the ledger holds erased, the vendor did not erase", s.Key))
		case s.Erasure == 1 && !v.suppressed && !v.erased && !in.Pending[s.Key]:
			bad = append(bad, fmt.Sprintf("I1: %v: the ledger holds suppressed, the vendor did not suppress", s.Key))
		case s.Key.Vendor == SFMC && s.Erasure == 0 && !v.erased && !v.suppressed && !in.Pending[s.Key] && s.Failures == 0 &&
			!magic[s.Key] && s.Restrictions&ledger.RestrictionsUnknown == 0 && s.Restrictions != v.restr:
			bad = append(bad, fmt.Sprintf("I1: %v: the ledger holds restrictions %q, the vendor %q", s.Key, s.Restrictions, v.restr))
		}
	}
	subjects := map[privsync.Key]int{}
	for i, s := range in.Subjects {
		subjects[s.Key] = i
	}
	for k, fps := range m.Deleted {
		i, ok := subjects[k]
		if magic[k] || !ok || w.view(k).erased || in.Pending[k] || in.Subjects[i].RetryAt != 0 {
			continue // confirmed, in flight, or failed and planned again after its back-off
		}
		if fps[in.Subjects[i].Settled] {
			bad = append(bad, fmt.Sprintf("I2: %v: erasure settled, never confirmed by the vendor", k))
		}
	}
	final := map[int64][]string{}
	pendingRows := map[string]int{}
	for _, e := range in.Events {
		if e.ItemID == 0 {
			continue
		}
		if e.Outcome == string(privsync.OutcomePending) {
			key := fmt.Sprintf("%s/%d", e.RunID, e.ItemID)
			if pendingRows[key]++; pendingRows[key] == 2 {
				bad = append(bad, fmt.Sprintf("I4: item %d (%s) has two pending rows in run %s", e.ItemID, e.Operation, e.RunID))
			}
			continue
		}
		final[e.ItemID] = append(final[e.ItemID], e.Outcome)
	}
	for _, it := range in.Items {
		got := final[it.ID]
		switch {
		case it.Outcome == string(privsync.OutcomePending) && len(got) > 0:
			bad = append(bad, fmt.Sprintf("I4: item %d is pending but reported %v", it.ID, got))
		case it.Outcome != string(privsync.OutcomePending) && (len(got) != 1 || got[0] != it.Outcome):
			bad = append(bad, fmt.Sprintf("I4: item %d (%v %s) is %s but reported %v", it.ID, it.Key, it.Op, it.Outcome, got))
		}
	}
	return bad
}

// checkConverged checks I5: after quiet nights, each vendor holds what the
// latest rows ask.
func (sc *Scenario) checkConverged(w *World, in *Inspection, m *Model) []string {
	var bad []string
	access := map[privsync.Key]string{}
	for _, s := range in.Subjects {
		access[s.Key] = s.AccessRequest
	}
	for _, s := range sc.Subjects {
		k := s.Key
		if s.Magic() {
			continue
		}
		v, want := w.view(k), m.Latest[k]
		if in.Pending[k] {
			bad = append(bad, fmt.Sprintf("I5: %v: still pending after quiet nights", k))
		}
		if v.erased != (m.Deleted[k] != nil) {
			bad = append(bad, fmt.Sprintf("I5: %v: erased at the vendor %v, asked %v", k, v.erased, m.Deleted[k] != nil))
			continue
		}
		switch {
		case m.Deleted[k] != nil:
		case k.Vendor == SFMC && want.Erasure == privsync.EraseSuppress:
			if !v.suppressed {
				bad = append(bad, fmt.Sprintf("I5: %v: suppression asked, not held by the vendor", k))
			}
		case k.Vendor == SFMC:
			if v.suppressed || v.restr != want.Restrictions {
				bad = append(bad, fmt.Sprintf("I5: %v: the vendor holds %q (suppressed %v), asked %q", k, v.restr, v.suppressed, want.Restrictions))
			}
		case k.Vendor == Batch:
			asked := m.Access[k]
			if v.reviews > len(asked) || (len(asked) > 0 && (v.reviews == 0 || access[k] != asked[len(asked)-1])) {
				bad = append(bad, fmt.Sprintf("I5: %v: %d reviews for access requests %v (ledger: %q)", k, v.reviews, asked, access[k]))
			}
		}
	}
	return bad
}

// Failure is a scenario that broke an invariant.
type Failure struct {
	Seed       uint64
	Violations []string
	Scenario   string // the nights, described
}

func (f *Failure) Error() string {
	return fmt.Sprintf("seed %d broke %d invariants:\n  %s\n%s", f.Seed, len(f.Violations), strings.Join(f.Violations, "\n  "), f.Scenario)
}

// Run plays the scenario of seed with r, checking the invariants after
// every night; it must run inside a synctest bubble (time is fake). It
// returns a *Failure when an invariant broke.
func Run(ctx context.Context, seed uint64, r Runner) error {
	sc := NewScenario(seed, time.Now().UTC())
	w := NewWorld(seed)
	var bad []string
	var prev *Inspection
	prevNight := -1
	var lastRows []privsync.Row
	var lastInput string
	pending := map[privsync.Key]bool{} // none before the first run
	for n, night := range sc.Nights {
		time.Sleep(night.Gap)
		if prev != nil {
			bad = append(bad, note(prevNight, sc.checkLedger(w, prev, sc.ModelUpTo(prevNight)))...)
		}
		w.SetNight(night.Faults, night.Async)
		rows, input := night.Rows, fmt.Sprintf("night-%d", n)
		for attempt := 0; ; attempt++ {
			var crash Crash
			if attempt < len(night.Crashes) {
				crash = night.Crashes[attempt]
			}
			if pending == nil {
				in, err := r.Inspect(ctx)
				if err != nil {
					return fmt.Errorf("seed %d night %d: %w", seed, n, err)
				}
				pending = in.Pending
			}
			time.Sleep(time.Second) // a process starts
			rctx, cancel := context.WithCancel(ctx)
			w.Start(crash.At, crash.After, cancel, pending)
			start := time.Now()
			code, after, err := r.Run(rctx, w, input, rows, sc.Wait)
			cancel()
			pending = nil
			if err != nil {
				return fmt.Errorf("seed %d night %d attempt %d: %w", seed, n, attempt, err)
			}
			bad = append(bad, note(n, w.Violations())...)
			if w.Killed() {
				if attempt == 0 && night.NextInput {
					// Another input: the killed run's leftovers go first.
					rows, input = slices.Clone(rows), input+"-again"
					slices.Reverse(rows)
				}
				continue
			}
			if took := time.Since(start); took > sc.Wait+5*time.Minute {
				bad = append(bad, note(n, []string{fmt.Sprintf("the run took %v with --wait %v", took, sc.Wait)})...)
			}
			pending = after.Pending
			bad = append(bad, note(n, after.Checks)...)
			bad = append(bad, note(n, checkExit(w, after, code))...)
			prev, prevNight, lastRows, lastInput = after, n, rows, input
			break
		}
	}
	// I6: the same input again, at once, sends nothing.
	w.SetNight(Faults{}, 0)
	w.Start(0, false, nil, prev.Pending)
	code, again, err := r.Run(ctx, w, lastInput+"-rerun", lastRows, sc.Wait)
	if err != nil {
		return fmt.Errorf("seed %d rerun: %w", seed, err)
	}
	if n := w.SubmitCount(); n > 0 || code != 0 {
		bad = append(bad, fmt.Sprintf("I6: the same input again sent %d requests and exited %d (%v)", n, code, again.ProblemRows))
	}
	time.Sleep(6 * time.Hour) // the vendors finish what they hold
	m := sc.ModelUpTo(len(sc.Nights) - 1)
	bad = append(bad, note(prevNight, sc.checkLedger(w, prev, m))...)
	bad = append(bad, note(prevNight, sc.checkConverged(w, prev, m))...)
	if len(bad) > 0 {
		var b strings.Builder
		Describe(&b, sc)
		return &Failure{Seed: seed, Violations: bad, Scenario: b.String()}
	}
	return nil
}

// checkExit checks I7: the exit code agrees with the outcomes.
func checkExit(w *World, in *Inspection, code int) []string {
	want := 0
	switch {
	case w.Denied():
		want = 1
	case in.Problems > 0:
		want = 3
	}
	if code != want {
		return []string{fmt.Sprintf("I7: exit %d, the outcomes of run %s say %d (problems %v, credentials refused %v)", code, in.LastRun, want, in.ProblemRows, w.Denied())}
	}
	return nil
}

func note(night int, v []string) []string {
	for i := range v {
		v[i] = fmt.Sprintf("night %d: %s", night, v[i])
	}
	return v
}
