package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"github.com/privsync/privsync/planner"
)

// Night is one night's input and weather.
type Night struct {
	Rows   []privsync.Row
	Faults Faults
	Async  time.Duration // how long the vendors take to process a request
	Gap    time.Duration // time since the night before
	// Crashes are the kill points of successive attempts at this night's
	// run (commit number; 0 ends the list: that attempt runs to the end).
	Crashes []Crash
	// NextInput: after a killed attempt, the next attempt reads the next
	// night's input (the killed run's leftovers are then sent first).
	NextInput bool
	Quiet     bool // no faults: the vendors must end up in the desired state
}

// Crash is where a process dies.
type Crash struct {
	At    int  // the ledger commit it dies at
	After bool // after the commit landed
}

// Subject is one simulated person at one vendor.
type Subject struct {
	Key  privsync.Key
	Kind privsync.Kind
}

// Scenario is a seeded sequence of nights.
type Scenario struct {
	Seed     uint64
	Start    time.Time
	Subjects []Subject
	Nights   []Night
	Wait     time.Duration // run --wait
}

// Magic reports whether the subject is one the vendors never succeed for.
func (s Subject) Magic() bool {
	return simkit.Is(s.Key.SubjectID, simkit.MagicFail) || simkit.Is(s.Key.SubjectID, Bad)
}

// desired is what a subject's rows ask, as the model follows them.
type desired struct {
	restr   privsync.Restrictions
	erasure privsync.Erasure
	access  string
	at      time.Time
}

// NewScenario draws a scenario from seed: a few subjects per vendor, three
// to five nights of changes under faults and crashes, then quiet nights.
func NewScenario(seed uint64, start time.Time) *Scenario {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	sc := &Scenario{Seed: seed, Start: start, Wait: time.Duration(2+rng.IntN(10)) * time.Minute}
	add := func(vendor, idType, id string, kind privsync.Kind) {
		sc.Subjects = append(sc.Subjects, Subject{privsync.Key{Vendor: vendor, IDType: idType, SubjectID: id}, kind})
	}
	for i := range 3 + rng.IntN(4) {
		add(SFMC, "", fmt.Sprintf("sf-%d", i), privsync.KindSFMC)
	}
	for i := range 2 + rng.IntN(3) {
		add(Batch, "custom_id", fmt.Sprintf("bt-%d", i), privsync.KindBatch)
	}
	for i := range 2 + rng.IntN(3) {
		add(Bloomreach, "registered", fmt.Sprintf("br-%d", i), privsync.KindBloomreach)
	}
	if rng.IntN(3) == 0 {
		add(SFMC, "", "sf-"+Bad, privsync.KindSFMC)
	}
	if rng.IntN(3) == 0 {
		add(Bloomreach, "registered", "br-sim-fail", privsync.KindBloomreach)
	}
	if rng.IntN(4) == 0 {
		add(SFMC, "", "sf-sim-fail", privsync.KindSFMC)
	}
	state := map[privsync.Key]desired{}
	at := sc.Start
	nights := 3 + rng.IntN(3)
	for n := range nights + 3 {
		quiet := n >= nights
		night := Night{Gap: 24 * time.Hour, Quiet: quiet}
		if n == nights {
			night.Gap = 3 * 24 * time.Hour // let the failures' back-off run out
		}
		at = at.Add(night.Gap)
		if !quiet {
			night.Faults = drawFaults(rng)
			night.Async = []time.Duration{0, time.Second, time.Minute, 2 * time.Hour}[rng.IntN(4)]
			for rng.IntN(3) == 0 && len(night.Crashes) < 3 {
				night.Crashes = append(night.Crashes, Crash{At: 1 + rng.IntN(40), After: rng.IntN(2) == 0})
			}
			night.NextInput = len(night.Crashes) > 0 && rng.IntN(2) == 0 && n+1 < nights
		}
		for _, s := range sc.Subjects {
			d, seen := state[s.Key]
			changed := false
			if !quiet && (!seen || rng.IntN(2) == 0) {
				d, changed = change(rng, s, d, n), true
			}
			if !changed && (quiet || rng.IntN(2) == 0) && seen {
				changed = true // the same row again, or the whole snapshot on quiet nights
			}
			if !changed {
				continue
			}
			if d.at.IsZero() || d != state[s.Key] {
				d.at = at
			}
			state[s.Key] = d
			night.Rows = append(night.Rows, row(s.Key, d))
			if !quiet && seen && rng.IntN(6) == 0 {
				// A backfill row, older than what the ledger holds: stale.
				old := change(rng, s, d, n)
				old.at = d.at.Add(-36 * time.Hour)
				if old.at.After(sc.Start) {
					night.Rows = append(night.Rows, row(s.Key, old))
				}
			}
		}
		sc.Nights = append(sc.Nights, night)
	}
	return sc
}

func drawFaults(rng *rand.Rand) Faults {
	f := Faults{}
	pick := func(max float64) float64 {
		if rng.IntN(2) == 0 {
			return 0
		}
		return rng.Float64() * max
	}
	f.Reset, f.Lost, f.Err5xx, f.Rate429, f.Conflict, f.Forget = pick(0.1), pick(0.1), pick(0.2), pick(0.2), pick(0.2), pick(0.1)
	f.LongRetryAfter = rng.IntN(4) == 0
	if rng.IntN(8) == 0 {
		f.Unauthorized = map[string]bool{[]string{SFMC, Batch, Bloomreach}[rng.IntN(3)]: true}
	}
	return f
}

// change draws the subject's next desired state.
func change(rng *rand.Rand, s Subject, d desired, night int) desired {
	if d.erasure == privsync.EraseDelete {
		return d // erasure is terminal: asking less would be a conflict
	}
	switch s.Kind {
	case privsync.KindSFMC:
		switch r := rng.IntN(10); {
		case r < 1:
			d.erasure = privsync.EraseDelete
		case r < 3 && d.erasure == privsync.EraseNone:
			d.erasure = privsync.EraseSuppress
		case r < 6 && d.erasure == privsync.EraseSuppress:
			d.erasure = privsync.EraseNone // cancel the suppression
		}
		if rng.IntN(2) == 0 {
			d.restr = privsync.Restrictions(rng.IntN(8))
		}
	case privsync.KindBatch:
		if rng.IntN(3) == 0 {
			d.access = fmt.Sprintf("T%d-%d", night, rng.IntN(1000))
		}
		if rng.IntN(5) == 0 {
			d.erasure = privsync.EraseDelete
		}
	case privsync.KindBloomreach:
		if rng.IntN(4) == 0 {
			d.erasure = privsync.EraseDelete
		}
	}
	return d
}

func row(k privsync.Key, d desired) privsync.Row {
	return privsync.Row{Key: k, Restrictions: d.restr, Erasure: d.erasure, AccessRequest: d.access, UpdatedAt: d.at}
}

// Model is what the rows of the nights so far ask, subject by subject: the
// latest row wins; a delete is for ever.
type Model struct {
	Latest  map[privsync.Key]privsync.Row
	Deleted map[privsync.Key]map[uint64]bool // the fingerprints of the rows asking erasure
	Access  map[privsync.Key][]string        // access requests asked, distinct, in order
}

// ModelUpTo follows the rows of nights [0, n].
func (sc *Scenario) ModelUpTo(n int) *Model {
	m := &Model{Latest: map[privsync.Key]privsync.Row{}, Deleted: map[privsync.Key]map[uint64]bool{}, Access: map[privsync.Key][]string{}}
	for _, night := range sc.Nights[:n+1] {
		for _, r := range night.Rows {
			if cur, ok := m.Latest[r.Key]; ok && !r.UpdatedAt.After(cur.UpdatedAt) {
				continue // stale
			}
			m.Latest[r.Key] = r
			if r.Erasure == privsync.EraseDelete {
				if m.Deleted[r.Key] == nil {
					m.Deleted[r.Key] = map[uint64]bool{}
				}
				r.File, r.Line = "", 0
				m.Deleted[r.Key][planner.Fingerprint(&r)] = true
			}
			if r.AccessRequest != "" && !slices.Contains(m.Access[r.Key], r.AccessRequest) {
				m.Access[r.Key] = append(m.Access[r.Key], r.AccessRequest)
			}
		}
	}
	return m
}

// Runner runs `privsync run` once, as a new process, on one night's rows:
// Direct in this package, the whole command in cmd/privsync's tests.
type Runner interface {
	// Run returns the exit code and the ledger as the process leaves it
	// (both meaningless when the world killed the process), and an error
	// for anything the simulation cannot go on from.
	Run(ctx context.Context, w *World, input string, rows []privsync.Row, wait time.Duration) (int, *Inspection, error)
	// Inspect returns the ledger's content and the subjects with items
	// still in flight, from a fresh process.
	Inspect(ctx context.Context) (*Inspection, error)
}
