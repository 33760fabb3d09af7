package planner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/planner"
)

// seedProfiles are the ten example profiles of the SFMC seed: eight
// declarative restriction arrays, then a deletion and a suppression.
func seedProfiles() []privsync.Row {
	sets := []privsync.Restrictions{dnt, dnp, dnpr, dnt | dnp, dnt | dnpr, dnp | dnpr, dnt | dnp | dnpr, 0}
	var rs []privsync.Row
	for i, r := range sets {
		rs = append(rs, at(sfmc(fmt.Sprintf("hashed-id-%02d", i+1), r), now.Add(-time.Hour)))
	}
	rs = append(rs, at(erase(sfmc("hashed-id-09", 0), privsync.EraseDelete), now.Add(-time.Hour)))
	rs = append(rs, at(erase(sfmc("hashed-id-10", 0), privsync.EraseSuppress), now.Add(-time.Hour)))
	return rs
}

// wantArrays are the JSON arrays the seed profiles 01..08 must be sent.
var wantArrays = []string{
	`["do_not_track"]`, `["do_not_profile"]`, `["do_not_process"]`,
	`["do_not_track","do_not_profile"]`, `["do_not_track","do_not_process"]`,
	`["do_not_profile","do_not_process"]`, `["do_not_track","do_not_profile","do_not_process"]`, `[]`,
}

func restrictArray(t *testing.T, e planner.Entry) string {
	t.Helper()
	if len(e.Decision.Ops) != 1 || e.Decision.Ops[0].Op != privsync.OpRestrict {
		t.Fatalf("%s: ops %v, want one restrict", e.Key.SubjectID, opNames(e.Decision.Ops))
	}
	b, err := json.Marshal(e.Decision.Ops[0].Restrictions.Names())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSFMCSeedProfilesNeverSeen(t *testing.T) {
	st, rec := mustPlan(t, rows(seedProfiles()...), newLedger(), testOptions())
	for i := range 7 {
		e := rec.entry(t, fmt.Sprintf("hashed-id-%02d", i+1))
		if got := restrictArray(t, e); got != wantArrays[i] {
			t.Errorf("hashed-id-%02d: array %s, want %s", i+1, got, wantArrays[i])
		}
	}
	// A never-seen subject asking for nothing: nothing is sent, but the row
	// is recorded so it is not looked at again.
	if e := rec.entry(t, "hashed-id-08"); e.Decision.Verdict != planner.Settle || len(e.Decision.Ops) != 0 {
		t.Errorf("hashed-id-08 ([] on a never-seen profile): %+v, want settled with nothing sent", e.Decision)
	}
	if ops := opNames(rec.entry(t, "hashed-id-09").Decision.Ops); fmt.Sprint(ops) != "[rtbf_delete]" {
		t.Errorf("hashed-id-09: %v, want rtbf_delete", ops)
	}
	if ops := opNames(rec.entry(t, "hashed-id-10").Decision.Ops); fmt.Sprint(ops) != "[rtbf_suppress]" {
		t.Errorf("hashed-id-10: %v, want rtbf_suppress", ops)
	}
	want := map[string]map[privsync.Operation]int{"sfmc": {"restrict": 7, "rtbf_delete": 1, "rtbf_suppress": 1}}
	if !reflect.DeepEqual(st.Operations, want) || st.Unchanged != 1 || st.Rows != 10 {
		t.Errorf("stats %+v, want operations %v, 1 unchanged, 10 rows", st, want)
	}
}

func TestSFMCSeedProfilesOverOtherRestrictions(t *testing.T) {
	led := newLedger()
	// Every profile holds a set its row does not ask for (the next one
	// round), and 09 and 10 hold restrictions too.
	others := []privsync.Restrictions{dnp, dnpr, dnt | dnp, dnt | dnpr, dnp | dnpr, dnt | dnp | dnpr, dnt, dnt | dnpr, dnt, dnp}
	for i, r := range others {
		led.set(privsync.Key{Vendor: "sfmc", SubjectID: fmt.Sprintf("hashed-id-%02d", i+1)}, seen(r))
	}
	st, rec := mustPlan(t, rows(seedProfiles()...), led, testOptions())
	for i := range 8 {
		if got := restrictArray(t, rec.entry(t, fmt.Sprintf("hashed-id-%02d", i+1))); got != wantArrays[i] {
			t.Errorf("hashed-id-%02d: array %s, want %s", i+1, got, wantArrays[i])
		}
	}
	if ops := opNames(rec.entry(t, "hashed-id-09").Decision.Ops); fmt.Sprint(ops) != "[rtbf_delete]" {
		t.Errorf("hashed-id-09: %v, want rtbf_delete (erasure supersedes the restrictions)", ops)
	}
	if ops := opNames(rec.entry(t, "hashed-id-10").Decision.Ops); fmt.Sprint(ops) != "[rtbf_suppress]" {
		t.Errorf("hashed-id-10: %v, want rtbf_suppress", ops)
	}
	if st.Changes() != 10 || st.Unchanged != 0 {
		t.Errorf("%d operations, %d unchanged; want 10 and 0", st.Changes(), st.Unchanged)
	}
	// The same profiles holding exactly what they ask: nothing to send.
	led = newLedger()
	for i, r := range []privsync.Restrictions{dnt, dnp, dnpr, dnt | dnp, dnt | dnpr, dnp | dnpr, dnt | dnp | dnpr} {
		led.set(privsync.Key{Vendor: "sfmc", SubjectID: fmt.Sprintf("hashed-id-%02d", i+1)}, seen(r))
	}
	st, _ = mustPlan(t, rows(seedProfiles()[:8]...), led, testOptions())
	if st.Changes() != 0 || st.Unchanged != 8 {
		t.Errorf("profiles holding their restrictions: %d operations, %d unchanged; want 0 and 8", st.Changes(), st.Unchanged)
	}
}

// TestPlanVerdicts runs the per-subject rules through Plan: what reaches
// the sink and what is only counted.
func TestPlanVerdicts(t *testing.T) {
	led := newLedger()
	k := func(id string) privsync.Key { return privsync.Key{Vendor: "sfmc", SubjectID: id} }
	// stale: the ledger holds a newer state.
	st := seen(dnt)
	st.UpdatedAt = now.Add(-time.Hour)
	led.set(k("stale"), st)
	// in flight with the same request, and with another one.
	fly := at(sfmc("fly-same", dnp), now.Add(-2*time.Hour))
	st = seen(0)
	st.InFlight = planner.Fingerprint(&fly)
	led.set(k("fly-same"), st)
	st.InFlight = planner.Fingerprint(&fly) ^ 7
	led.set(k("fly-other"), st)
	// backing off after a failure.
	st = seen(0)
	st.RetryAt = now.Add(time.Hour)
	led.set(k("backoff"), st)
	// settled: the vendor holds what the row asks.
	done := at(sfmc("done", dnt|dnp), now.Add(-3*time.Hour))
	led.settle(done)

	src := rows(
		at(sfmc("stale", dnpr), now.Add(-48*time.Hour)),
		fly,
		at(sfmc("fly-other", dnp), now.Add(-2*time.Hour)),
		sfmc("backoff", dnt),
		done,
		sfmc("nothing", 0),
		sfmc("send", dnt),
	)
	stats, rec := mustPlan(t, src, led, testOptions())
	if stats.Outcomes.Stale != 1 || stats.Waiting != 2 || stats.Unchanged != 3 || stats.Changes() != 1 {
		t.Fatalf("stats %+v: want 1 stale, 2 waiting (fly-other, backoff), 3 unchanged (fly-same, done, nothing), 1 operation", stats)
	}
	var got []string
	for _, e := range rec.Entries {
		got = append(got, e.Key.SubjectID)
	}
	// Only decisions that record something reach the sink: the row asking
	// nothing of a never-seen subject settles, "send" sends.
	if fmt.Sprint(got) != "[nothing send]" {
		t.Fatalf("entries for %v, want [nothing send]", got)
	}
	e := rec.entry(t, "send")
	if e.FP != planner.Fingerprint(&src.items[6].row) || e.File != "in.csv" || e.Line != 8 || !e.UpdatedAt.Equal(now) {
		t.Errorf("entry %+v: want the row's fingerprint, in.csv row 8, updated_at = the run's start", e)
	}
	if len(rec.Batches) != 1 || rec.Batches[0].Op != privsync.OpRestrict || rec.Batches[0].Vendor != "sfmc" {
		t.Errorf("batches %+v, want one sfmc restrict batch", rec.Batches)
	}
	if stats.Rows != 7 {
		t.Errorf("rows %d, want 7", stats.Rows)
	}
}

// TestPlanRejects: invalid rows go to the sink once, and not again once the
// ledger holds their fingerprint.
func TestPlanRejects(t *testing.T) {
	bad := &privsync.RowError{File: "in.csv", Line: 3, Column: "erasure", Value: "forget", Reason: "erasure must be empty, delete or suppress", Vendor: "sfmc", SubjectID: "p2"}
	src := rows(sfmc("p1", dnt))
	src.items = append(src.items, item{rej: bad})
	stats, rec := mustPlan(t, src, newLedger(), testOptions())
	if stats.Outcomes.Rejected != 1 || len(rec.Rejects) != 1 || stats.Rows != 2 {
		t.Fatalf("stats %+v, %d rejects; want 1 rejected of 2 rows", stats, len(rec.Rejects))
	}
	if r := rec.Rejects[0]; r.Err != *bad || r.FP != planner.RejectFingerprint(bad) {
		t.Fatalf("reject %+v, want %+v with its fingerprint", r, bad)
	}
	led := newLedger()
	led.settled = append(led.settled, rec.Rejects[0].FP)
	stats, rec = mustPlan(t, src, led, testOptions())
	if stats.Outcomes.Rejected != 0 || len(rec.Rejects) != 0 {
		t.Fatalf("a reject already reported is reported again: %+v", rec.Rejects)
	}
}

func TestDuplicates(t *testing.T) {
	t.Run("latest updated_at wins", func(t *testing.T) {
		src := rows(
			at(sfmc("d", dnt|dnpr), now.Add(-time.Hour)),
			at(sfmc("d", dnp), now.Add(-48*time.Hour)),
			at(sfmc("d", dnt), now.Add(-24*time.Hour)),
		)
		stats, rec := mustPlan(t, src, newLedger(), testOptions())
		e := rec.entry(t, "d")
		if e.Line != 2 || restrictArray(t, e) != `["do_not_track","do_not_process"]` {
			t.Fatalf("winner: row %d %v, want row 2 (the latest)", e.Line, opNames(e.Decision.Ops))
		}
		if stats.Superseded != 2 || stats.Changes() != 1 || len(rec.Rejects) != 0 {
			t.Fatalf("stats %+v: want 2 superseded, 1 operation, no reject", stats)
		}
	})
	t.Run("rows all before 1970", func(t *testing.T) {
		src := rows(
			at(sfmc("d", dnp), time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)),
			at(sfmc("d", dnt), time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)),
			at(sfmc("d", dnpr), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)),
		)
		stats, rec := mustPlan(t, src, newLedger(), testOptions())
		if e := rec.entry(t, "d"); e.Line != 3 || restrictArray(t, e) != `["do_not_track"]` {
			t.Fatalf("winner: row %d %v, want row 3 (1969, the latest)", e.Line, opNames(e.Decision.Ops))
		}
		if stats.Superseded != 2 {
			t.Fatalf("stats %+v: want 2 superseded", stats)
		}
	})
	t.Run("a row without updated_at is as of the run's start", func(t *testing.T) {
		src := rows(sfmc("d", dnp), at(sfmc("d", dnt), now.Add(-time.Hour)))
		_, rec := mustPlan(t, src, newLedger(), testOptions())
		if e := rec.entry(t, "d"); e.Line != 2 {
			t.Fatalf("winner row %d, want row 2 (no updated_at: now)", e.Line)
		}
	})
	t.Run("identical duplicates are harmless", func(t *testing.T) {
		src := rows(sfmc("d", dnt), sfmc("x", dnp), sfmc("d", dnt))
		stats, rec := mustPlan(t, src, newLedger(), testOptions())
		if e := rec.entry(t, "d"); restrictArray(t, e) != `["do_not_track"]` {
			t.Fatalf("entry %+v", e)
		}
		if stats.Superseded != 1 || stats.Outcomes.Rejected != 0 || stats.Changes() != 2 {
			t.Fatalf("stats %+v: want 1 superseded, no reject, 2 operations", stats)
		}
	})
	t.Run("identical duplicates at the same updated_at", func(t *testing.T) {
		ts := now.Add(-time.Hour)
		src := rows(at(sfmc("d", dnt), ts), at(sfmc("d", dnt), ts))
		stats, rec := mustPlan(t, src, newLedger(), testOptions())
		if len(rec.Entries) != 1 || stats.Superseded != 1 || len(rec.Rejects) != 0 {
			t.Fatalf("stats %+v, %d entries, %d rejects", stats, len(rec.Entries), len(rec.Rejects))
		}
	})
	t.Run("conflicting duplicates without updated_at are rejected", func(t *testing.T) {
		src := rows(sfmc("d", dnt), sfmc("ok", dnp), sfmc("d", dnpr))
		src.items[2].row.File = "part-2.csv"
		stats, rec := mustPlan(t, src, newLedger(), testOptions())
		if len(rec.Entries) != 1 || rec.Entries[0].Key.SubjectID != "ok" {
			t.Fatalf("entries %+v, want only the one for ok", rec.Entries)
		}
		if stats.Outcomes.Rejected != 2 || len(rec.Rejects) != 2 {
			t.Fatalf("%d rejects, want both rows", len(rec.Rejects))
		}
		for i, want := range []struct {
			file string
			line int64
		}{{"in.csv", 2}, {"part-2.csv", 4}} {
			r := rec.Rejects[i].Err
			if r.File != want.file || r.Line != want.line || r.Vendor != "sfmc" || r.SubjectID != "d" {
				t.Errorf("reject %d: %+v, want %s row %d naming sfmc d", i, r, want.file, want.line)
			}
			if !strings.Contains(r.Reason, "in.csv row 2") || !strings.Contains(r.Reason, "part-2.csv row 4") {
				t.Errorf("reject reason %q does not name both rows", r.Reason)
			}
		}
		// Reported once: with their fingerprints settled, neither comes back.
		led := newLedger()
		led.settled = append(led.settled, rec.Rejects[0].FP, rec.Rejects[1].FP)
		if stats, rec := mustPlan(t, src, led, testOptions()); stats.Outcomes.Rejected != 0 || len(rec.Rejects) != 0 || len(rec.Entries) != 1 {
			t.Errorf("second run: %d rejects, %d entries; want 0 and 1", len(rec.Rejects), len(rec.Entries))
		}
	})
	t.Run("conflicting duplicates at the same updated_at are rejected", func(t *testing.T) {
		ts := now.Add(-time.Hour)
		src := rows(at(sfmc("d", dnt), ts), at(erase(sfmc("d", 0), privsync.EraseDelete), ts), at(sfmc("d", dnp), ts.Add(-time.Hour)))
		stats, rec := mustPlan(t, src, newLedger(), testOptions())
		if len(rec.Entries) != 0 || stats.Outcomes.Rejected != 2 || stats.Superseded != 1 {
			t.Fatalf("stats %+v, entries %+v: want the two tied rows rejected, the older superseded", stats, rec.Entries)
		}
	})
	t.Run("same subject id at two vendors is no duplicate", func(t *testing.T) {
		src := rows(sfmc("same", dnt), erase(privsync.Row{Key: privsync.Key{Vendor: "sfmc2", SubjectID: "same"}}, privsync.EraseDelete))
		opts := testOptions()
		opts.Vendors = map[string]privsync.Kind{"sfmc": privsync.KindSFMC, "sfmc2": privsync.KindSFMC}
		stats, _ := mustPlan(t, src, newLedger(), opts)
		if stats.Changes() != 2 || stats.Superseded != 0 || stats.Outcomes.Rejected != 0 {
			t.Fatalf("stats %+v", stats)
		}
	})
	t.Run("a settled row superseded by a newer one", func(t *testing.T) {
		old := at(sfmc("d", dnt), now.Add(-48*time.Hour))
		led := newLedger()
		led.settle(old)
		src := rows(old, at(sfmc("d", dnp), now.Add(-time.Hour)))
		stats, rec := mustPlan(t, src, led, testOptions())
		if e := rec.entry(t, "d"); restrictArray(t, e) != `["do_not_profile"]` || e.Prior.Settled != planner.Fingerprint(&old) {
			t.Fatalf("entry %+v: want the newer row, with the settled state as prior", e)
		}
		if stats.Superseded != 1 || stats.Unchanged != 0 {
			t.Fatalf("stats %+v: want 1 superseded and nothing unchanged", stats)
		}
		// The settled row was not held in memory: its time was read again.
		if src.reads != 2 || stats.Passes != 2 {
			t.Fatalf("%d reads (Passes %d), want 2", src.reads, stats.Passes)
		}
	})
	t.Run("conflicting settled rows are named from a further read", func(t *testing.T) {
		// Both rows settled (say, a ledger from before the rows conflicted):
		// neither is held, so their lines, times and subject come from
		// reading the input again.
		ts := now.Add(-time.Hour)
		a, b := at(sfmc("d", dnt), ts), at(sfmc("d", dnpr), ts)
		led := newLedger()
		led.settle(a, b)
		src := rows(sfmc("x", dnp), a, b)
		stats, rec := mustPlan(t, src, led, testOptions())
		if src.reads != 2 || len(rec.Rejects) != 2 || stats.Unchanged != 0 || len(rec.Entries) != 1 {
			t.Fatalf("%d reads, stats %+v, rejects %+v: want 2 reads, both settled rows rejected, x planned", src.reads, stats, rec.Rejects)
		}
		for i, line := range []int64{3, 4} {
			r := rec.Rejects[i].Err
			if r.Line != line || r.Vendor != "sfmc" || r.SubjectID != "d" || !strings.Contains(r.Reason, "in.csv row 3, in.csv row 4") {
				t.Errorf("reject %d: %+v, want in.csv row %d naming sfmc d and both rows", i, r, line)
			}
		}
	})
}

// TestPlanMemoryPerRow: the planner keeps 8 bytes of every row (its key
// hash), not a record of it; a settled night of 300k rows must not
// allocate more than 32 bytes a row (it was ~80 before, with the refs and
// the sorted key copy).
func TestPlanMemoryPerRow(t *testing.T) {
	const n = 300_000
	src := &memSource{}
	for i := range n {
		src.items = append(src.items, item{row: at(sfmc(fmt.Sprintf("subject-%d", i), dnt), now.Add(-time.Hour))})
	}
	led := newLedger()
	for i := range src.items {
		led.settled = append(led.settled, planner.Fingerprint(&src.items[i].row))
	}
	set, _ := led.Settled(context.Background())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	stats, err := planner.Plan(context.Background(), src, fixedSet{set}, planner.Discard{}, testOptions())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Unchanged != n || stats.Changes() != 0 {
		t.Fatalf("stats %+v: want every row unchanged", stats)
	}
	if perRow := float64(after.TotalAlloc-before.TotalAlloc) / n; perRow > 32 {
		t.Fatalf("planning %d settled rows allocated %.1f bytes a row, want at most 32", n, perRow)
	} else {
		t.Logf("%.1f bytes allocated a row", perRow)
	}
}

// fixedSet is a ledger whose settled set is built once, outside the
// measurement.
type fixedSet struct{ set *planner.FPSet }

func (l fixedSet) Settled(context.Context) (*planner.FPSet, error) { return l.set, nil }
func (fixedSet) Lookup(_ context.Context, keys []privsync.Key) ([]planner.State, error) {
	return make([]planner.State, len(keys)), nil
}
func (fixedSet) Restricted(context.Context, []string, func(privsync.Key, planner.State) error) error {
	return nil
}

func TestSnapshot(t *testing.T) {
	led := newLedger()
	k := func(v, id string) privsync.Key { return privsync.Key{Vendor: v, SubjectID: id} }
	led.set(k("sfmc", "absent"), seen(dnt|dnp))
	led.set(k("sfmc", "present"), seen(dnt))
	led.set(k("sfmc", "absent-clear"), seen(0))
	led.set(k("sfmc", "absent-erased"), withRestrictions(erased(), dnt))
	led.set(k("sfmc", "absent-suppressed"), withRestrictions(suppressed(time.Hour), dnt))
	fly := seen(dnt)
	fly.InFlight = 99
	led.set(k("sfmc", "absent-in-flight"), fly)
	// A subject whose last operation failed is backing off: absence waits
	// for the back-off like any other change.
	backoff := seen(dnp)
	backoff.RetryAt = now.Add(time.Hour)
	led.set(k("sfmc", "absent-backing-off"), backoff)
	// Another kind's subject is not the snapshot's business.
	led.set(privsync.Key{Vendor: "bloomreach", IDType: "registered", SubjectID: "absent-br"}, seen(dnt))

	src := rows(sfmc("present", dnt))
	for _, snapshot := range []bool{false, true} {
		opts := testOptions()
		opts.Snapshot = snapshot
		stats, rec := mustPlan(t, src, led, opts)
		if !snapshot {
			if stats.Changes() != 0 {
				t.Fatalf("incremental mode: %d operations for absent subjects", stats.Changes())
			}
			continue
		}
		if stats.Changes() != 1 || stats.Waiting != 1 {
			t.Fatalf("snapshot: %d operations, %d waiting; want 1 and 1 (entries %+v)", stats.Changes(), stats.Waiting, rec.Entries)
		}
		var cleared []planner.Entry
		for _, e := range rec.Entries {
			if len(e.Decision.Ops) > 0 {
				cleared = append(cleared, e)
			}
		}
		e := cleared[0]
		if e.Key.SubjectID != "absent" || restrictArray(t, e) != `[]` || e.File != "" {
			t.Fatalf("snapshot entry %+v, want absent cleared with []", e)
		}
		if want := planner.Fingerprint(&privsync.Row{Key: e.Key}); e.FP != want {
			t.Errorf("snapshot clear fingerprint %x, want that of a row asking nothing (%x)", e.FP, want)
		}
	}
}

func TestInputChangedBetweenPasses(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(s *memSource)
	}{
		{"a row changed", func(s *memSource) { s.items[2].row.Restrictions = dnt }},
		{"a row added", func(s *memSource) { s.items = append(s.items, item{row: sfmc("d", dnt)}) }},
		{"rows cut off", func(s *memSource) { s.items = s.items[:2] }},
	} {
		t.Run(c.name+" before duplicates are resolved", func(t *testing.T) {
			// The second read is the one that fetches a settled duplicate.
			old := at(sfmc("a", dnt), now.Add(-48*time.Hour))
			led := newLedger()
			led.settle(old)
			src := rows(old, sfmc("b", dnp), sfmc("c", dnpr), at(sfmc("a", dnp), now.Add(-time.Hour)))
			src.mutate = c.mutate
			_, err := planner.Plan(context.Background(), src, led, &recorder{}, testOptions())
			if err == nil || !strings.Contains(err.Error(), "changed") {
				t.Fatalf("Plan over an input that changed between passes: %v, want an error", err)
			}
		})
		t.Run(c.name, func(t *testing.T) {
			src := rows(sfmc("a", dnt), sfmc("b", dnp), sfmc("c", dnpr))
			src.mutate = c.mutate
			opts := testOptions()
			opts.MaxCandidates = 1
			_, err := planner.Plan(context.Background(), src, newLedger(), &recorder{}, opts)
			if err == nil || !strings.Contains(err.Error(), "changed") {
				t.Fatalf("Plan over an input that changed between passes: %v, want an error", err)
			}
		})
	}
}

func TestPlanStopsOnSinkError(t *testing.T) {
	src := rows(sfmc("a", dnt))
	_, err := planner.Plan(context.Background(), src, newLedger(), failingSink{}, testOptions())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v, want the sink's error", err)
	}
}

type failingSink struct{ planner.Discard }

func (failingSink) Batch(context.Context, *planner.Batch) error { return fmt.Errorf("disk full") }
