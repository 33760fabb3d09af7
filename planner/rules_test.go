package planner_test

import (
	"slices"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

const (
	dnt  = privsync.DoNotTrack
	dnp  = privsync.DoNotProfile
	dnpr = privsync.DoNotProcess
)

var (
	sent    = planner.Send
	settle  = planner.Settle
	same    = planner.Unchanged
	stale   = planner.Stale
	waiting = planner.Waiting
)

// seen is a state the ledger holds, for a subject confirmed a week ago.
func seen(r privsync.Restrictions) planner.State {
	return planner.State{Known: true, Restrictions: r, UpdatedAt: now.Add(-7 * 24 * time.Hour)}
}

func suppressed(ago time.Duration) planner.State {
	st := seen(0)
	st.Erasure, st.ErasedAt = planner.Suppressed, now.Add(-ago)
	return st
}

func erased() planner.State {
	st := seen(0)
	st.Erasure, st.ErasedAt = planner.Erased, now.Add(-30*24*time.Hour)
	return st
}

func withAccess(st planner.State, ar string) planner.State { st.AccessRequest = ar; return st }

func withRestrictions(st planner.State, r privsync.Restrictions) planner.State {
	st.Restrictions = r
	return st
}

type ruleCase struct {
	name    string
	row     privsync.Row
	state   planner.State
	verdict planner.Verdict
	ops     []string // opNames
	notes   []string // noteNames
}

func runRuleCases(t *testing.T, kind privsync.Kind, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row := c.row
			d := planner.Decide(kind, &row, c.state, planner.Fingerprint(&row), testRules)
			if d.Verdict != c.verdict {
				t.Errorf("verdict %d, want %d", d.Verdict, c.verdict)
			}
			if got := opNames(d.Ops); !slices.Equal(got, c.ops) {
				t.Errorf("ops %q, want %q", got, c.ops)
			}
			if got := noteNames(d.Notes); !slices.Equal(got, c.notes) {
				t.Errorf("notes %q, want %q", got, c.notes)
			}
			for _, n := range d.Notes {
				if n.Detail == "" {
					t.Errorf("note %s:%s has no detail for the report", n.Outcome, n.Operation)
				}
			}
		})
	}
}

func TestDecideSFMC(t *testing.T) {
	p := func(r privsync.Restrictions) privsync.Row { return sfmc("p1", r) }
	withAR := func(r privsync.Row, ar string) privsync.Row { r.AccessRequest = ar; return r }
	runRuleCases(t, privsync.KindSFMC, []ruleCase{
		{name: "delete", row: erase(p(0), privsync.EraseDelete), state: seen(dnt), verdict: sent, ops: []string{"rtbf_delete"}},
		{name: "suppress", row: erase(p(0), privsync.EraseSuppress), state: seen(dnt), verdict: sent, ops: []string{"rtbf_suppress"}},
		{name: "delete never seen", row: erase(p(0), privsync.EraseDelete), verdict: sent, ops: []string{"rtbf_delete"}},
		{name: "erasure supersedes restrictions", row: erase(p(dnt|dnp), privsync.EraseDelete), verdict: sent, ops: []string{"rtbf_delete"}},
		{name: "suppress supersedes restrictions", row: erase(p(dnpr), privsync.EraseSuppress), state: seen(dnt), verdict: sent, ops: []string{"rtbf_suppress"}},

		{name: "suppressed, no erasure, same restrictions", row: p(0), state: suppressed(24 * time.Hour),
			verdict: sent, ops: []string{"remove_rtbf_suppress"}},
		{name: "suppressed, no erasure, other restrictions", row: p(dnt | dnpr), state: suppressed(24 * time.Hour),
			verdict: sent, ops: []string{"remove_rtbf_suppress", "restrict[do_not_track|do_not_process]"}},
		{name: "suppressed, restrictions cleared", row: p(0), state: withRestrictions(suppressed(time.Hour), dnp),
			verdict: sent, ops: []string{"remove_rtbf_suppress", "restrict[]"}},
		{name: "suppressed, last moment of the window", row: p(0), state: suppressed(14*24*time.Hour - time.Second),
			verdict: sent, ops: []string{"remove_rtbf_suppress"}},
		{name: "suppressed, window closed", row: p(0), state: suppressed(14 * 24 * time.Hour),
			verdict: settle, notes: []string{"conflict:restrict"}},
		{name: "suppressed, window long closed, restrictions", row: p(dnt), state: suppressed(40 * 24 * time.Hour),
			verdict: settle, notes: []string{"conflict:restrict"}},
		{name: "suppressed, now delete", row: erase(p(0), privsync.EraseDelete), state: suppressed(time.Hour),
			verdict: sent, ops: []string{"rtbf_delete"}},
		{name: "suppressed, suppress again", row: erase(p(0), privsync.EraseSuppress), state: suppressed(time.Hour),
			verdict: settle},
		{name: "suppressed, window closed, delete", row: erase(p(0), privsync.EraseDelete), state: suppressed(20 * 24 * time.Hour),
			verdict: settle},

		{name: "restrictions differ", row: p(dnt | dnp), state: seen(dnt), verdict: sent, ops: []string{"restrict[do_not_track|do_not_profile]"}},
		{name: "restrictions narrowed", row: p(dnp), state: seen(dnt | dnp | dnpr), verdict: sent, ops: []string{"restrict[do_not_profile]"}},
		{name: "restrictions cleared", row: p(0), state: seen(dnpr), verdict: sent, ops: []string{"restrict[]"}},
		{name: "restrictions as confirmed", row: p(dnt | dnpr), state: seen(dnt | dnpr), verdict: settle},
		{name: "never seen, restrictions", row: p(dnpr), verdict: sent, ops: []string{"restrict[do_not_process]"}},
		{name: "never seen, asks nothing", row: p(0), verdict: settle},

		{name: "access request", row: withAR(p(0), "T-1"), verdict: settle, notes: []string{"unsupported:review"}},
		{name: "access request with restrictions", row: withAR(p(dnt), "T-1"), state: seen(0),
			verdict: sent, ops: []string{"restrict[do_not_track]"}, notes: []string{"unsupported:review"}},
		{name: "access request already reported", row: withAR(p(dnt), "T-1"), state: withAccess(seen(dnt), "T-1"), verdict: settle},

		{name: "erased, restrictions", row: p(dnt), state: erased(), verdict: settle, notes: []string{"conflict:restrict"}},
		{name: "erased, nothing", row: p(0), state: erased(), verdict: settle, notes: []string{"conflict:restrict"}},
		{name: "erased, delete again", row: erase(p(0), privsync.EraseDelete), state: erased(), verdict: settle},
	})
}

func TestDecideBatch(t *testing.T) {
	u := func(e privsync.Erasure, ar string) privsync.Row { return batchRow("u1", e, ar) }
	restricted := u(0, "")
	restricted.Restrictions = dnt
	runRuleCases(t, privsync.KindBatch, []ruleCase{
		{name: "delete", row: u(privsync.EraseDelete, ""), verdict: sent, ops: []string{"remove"}},
		{name: "new access request", row: u(0, "AR-1"), verdict: sent, ops: []string{"review"}},
		{name: "another access request", row: u(0, "AR-2"), state: withAccess(seen(0), "AR-1"), verdict: sent, ops: []string{"review"}},
		{name: "access request already asked", row: u(0, "AR-1"), state: withAccess(seen(0), "AR-1"), verdict: settle},
		{name: "review then delete", row: u(privsync.EraseDelete, "AR-1"), verdict: sent, ops: []string{"review", "remove"}},
		{name: "delete after an old review", row: u(privsync.EraseDelete, "AR-1"), state: withAccess(seen(0), "AR-1"),
			verdict: sent, ops: []string{"remove"}},
		{name: "restrictions unsupported", row: restricted, verdict: settle, notes: []string{"unsupported:restrict"}},
		{name: "suppress unsupported", row: u(privsync.EraseSuppress, ""), verdict: settle, notes: []string{"unsupported:remove"}},
		{name: "suppress unsupported, review still sent", row: u(privsync.EraseSuppress, "AR-9"), verdict: sent,
			ops: []string{"review"}, notes: []string{"unsupported:remove"}},
		{name: "never seen, asks nothing", row: u(0, ""), verdict: settle},
		{name: "erased, asks less", row: u(0, ""), state: erased(), verdict: settle, notes: []string{"conflict:remove"}},
		{name: "erased, new access request", row: u(0, "AR-3"), state: erased(), verdict: settle,
			notes: []string{"conflict:remove", "conflict:review"}},
		{name: "erased, delete again", row: u(privsync.EraseDelete, ""), state: erased(), verdict: settle},
	})
}

func TestDecideBloomreach(t *testing.T) {
	c := func(e privsync.Erasure) privsync.Row { return bloomRow("c1", e) }
	restricted := c(0)
	restricted.Restrictions = dnp
	access := c(0)
	access.AccessRequest = "DSAR-1"
	accessDelete := c(privsync.EraseDelete)
	accessDelete.AccessRequest = "DSAR-1"
	runRuleCases(t, privsync.KindBloomreach, []ruleCase{
		{name: "delete", row: c(privsync.EraseDelete), verdict: sent, ops: []string{"anonymize"}},
		{name: "restrictions unsupported", row: restricted, verdict: settle, notes: []string{"unsupported:restrict"}},
		{name: "suppress unsupported", row: c(privsync.EraseSuppress), verdict: settle, notes: []string{"unsupported:anonymize"}},
		{name: "access unsupported", row: access, verdict: settle, notes: []string{"unsupported:review"}},
		{name: "access unsupported, delete sent", row: accessDelete, verdict: sent, ops: []string{"anonymize"}, notes: []string{"unsupported:review"}},
		{name: "never seen, asks nothing", row: c(0), verdict: settle},
		{name: "erased, asks less", row: c(0), state: erased(), verdict: settle, notes: []string{"conflict:anonymize"}},
		{name: "erased, delete again", row: c(privsync.EraseDelete), state: erased(), verdict: settle},
	})
}

// TestDecideAcrossKinds checks the rules every vendor kind shares: stale
// rows, operations in flight, back-off, and erasure being terminal.
func TestDecideAcrossKinds(t *testing.T) {
	rowsByKind := map[privsync.Kind]privsync.Row{
		privsync.KindSFMC:       erase(sfmc("s1", 0), privsync.EraseDelete),
		privsync.KindBatch:      batchRow("b1", privsync.EraseDelete, ""),
		privsync.KindBloomreach: bloomRow("c1", privsync.EraseDelete),
	}
	for _, kind := range privsync.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			row := rowsByKind[kind]
			fp := planner.Fingerprint(&row)
			older := at(row, now.Add(-48*time.Hour))
			newer := func() planner.State { st := seen(0); st.UpdatedAt = now.Add(-24 * time.Hour); return st }
			inFlight := func(f uint64) planner.State { st := seen(0); st.InFlight = f; return st }
			retry := func(d time.Duration) planner.State { st := seen(0); st.RetryAt = now.Add(d); return st }
			settled := func(f uint64) planner.State { st := seen(0); st.Settled = f; return st }
			cases := []struct {
				name  string
				row   privsync.Row
				fp    uint64
				state planner.State
				want  planner.Verdict
			}{
				{"stale: older than the state", older, planner.Fingerprint(&older), newer(), stale},
				{"not stale: same time as the state", at(row, now.Add(-24*time.Hour)), fp, newer(), sent},
				{"not stale: newer than the state", at(row, now.Add(-time.Hour)), fp, newer(), sent},
				{"no updated_at is taken as the run's start", row, fp, newer(), sent},
				{"no updated_at, state from the future", row, fp, func() planner.State { st := seen(0); st.UpdatedAt = now.Add(time.Hour); return st }(), stale},
				{"old row, subject never seen", older, planner.Fingerprint(&older), planner.State{}, sent},
				{"in flight, same request", row, fp, inFlight(fp), same},
				{"in flight, same request, stale time", older, fp, func() planner.State { st := inFlight(fp); st.UpdatedAt = now; return st }(), same},
				{"in flight, other request", row, fp, inFlight(fp ^ 1), waiting},
				{"backing off", row, fp, retry(time.Hour), waiting},
				{"back-off over", row, fp, retry(-time.Second), sent},
				{"back-off ends now", row, fp, retry(0), sent},
				{"settled, same request", row, fp, settled(fp), same},
				{"settled, other request", row, fp, settled(fp ^ 1), sent},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					r := c.row
					d := planner.Decide(kind, &r, c.state, c.fp, testRules)
					if d.Verdict != c.want {
						t.Fatalf("verdict %d, want %d (decision %+v)", d.Verdict, c.want, d)
					}
					if c.want != sent && len(d.Ops) > 0 {
						t.Fatalf("verdict %d with operations %v", d.Verdict, opNames(d.Ops))
					}
				})
			}
		})
	}
}

// TestErasedIsTerminal: once erased, no row of any kind sends anything.
func TestErasedIsTerminal(t *testing.T) {
	var rs []privsync.Row
	for _, r := range []privsync.Restrictions{0, dnt, dnp | dnpr} {
		for _, e := range []privsync.Erasure{privsync.EraseNone, privsync.EraseDelete, privsync.EraseSuppress} {
			for _, ar := range []string{"", "AR-new"} {
				for _, base := range []privsync.Row{sfmc("s", 0), batchRow("b", 0, ""), bloomRow("c", 0)} {
					base.Restrictions, base.Erasure, base.AccessRequest = r, e, ar
					rs = append(rs, base)
				}
			}
		}
	}
	for _, r := range rs {
		d := planner.Decide(vendors[r.Vendor], &r, erased(), planner.Fingerprint(&r), testRules)
		if len(d.Ops) > 0 || d.Verdict != settle {
			t.Errorf("%s row %+v on an erased subject: verdict %d, ops %v", r.Vendor, r, d.Verdict, opNames(d.Ops))
		}
		if r.Erasure == privsync.EraseNone && !slices.ContainsFunc(d.Notes, func(n planner.Note) bool { return n.Outcome == privsync.OutcomeConflict }) {
			t.Errorf("%s row asking less of an erased subject: no conflict reported (notes %v)", r.Vendor, noteNames(d.Notes))
		}
	}
}

func TestDecideAbsent(t *testing.T) {
	inFlight := seen(dnt)
	inFlight.InFlight = 42
	cases := []struct {
		name  string
		state planner.State
		ops   []string
	}{
		{"restricted subject is cleared", seen(dnt | dnpr), []string{"restrict[]"}},
		{"unrestricted subject is left alone", seen(0), nil},
		{"erased subject stays erased", withRestrictions(erased(), dnt), nil},
		{"suppressed subject stays suppressed", withRestrictions(suppressed(time.Hour), dnt), nil},
		{"subject with an operation in flight waits", inFlight, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := planner.DecideAbsent(c.state)
			if got := opNames(d.Ops); !slices.Equal(got, c.ops) {
				t.Fatalf("ops %q, want %q", got, c.ops)
			}
			want := same
			if len(c.ops) > 0 {
				want = sent
			}
			if d.Verdict != want {
				t.Fatalf("verdict %d, want %d", d.Verdict, want)
			}
		})
	}
}
