package ledger_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
)

// Resolve records runs of like outcomes with one statement per table; the
// ledger it leaves must be the one the item-by-item path leaves, row for
// row, in every table: the same scenario (confirmations, failures with
// details, expiries, data URLs, follow-ups released and failed) is played
// both ways and the tables compared.
func TestResolveSetBasedMatchesItemByItem(t *testing.T) {
	setBased := playResolveScenario(t, 2)
	itemByItem := playResolveScenario(t, 1<<30)
	if len(setBased) != len(itemByItem) {
		t.Fatalf("%d rows set-based, %d item by item", len(setBased), len(itemByItem))
	}
	for i := range setBased {
		if setBased[i] != itemByItem[i] {
			t.Fatalf("row %d differs:\nset-based:    %s\nitem by item: %s", i, setBased[i], itemByItem[i])
		}
	}
	// The scenario must reach what it is meant to compare.
	dump := strings.Join(setBased, "\n")
	for _, want := range []string{"|failed|", "|expired|", "|completed|", "data report: https://", "not sent: the preceding",
		"do_not_track|do_not_process", "items|0|"} {
		if !strings.Contains(dump, want) {
			t.Errorf("the scenario never reaches %q", want)
		}
	}
}

// playResolveScenario plays two runs on a new ledger with a fixed clock,
// resolving runs of like outcomes set-based when they are at least
// setMin long, and returns every row of the ledger's tables as text.
func playResolveScenario(t *testing.T, setMin int) []string {
	defer ledger.SetSetMin(setMin)()
	ctx := context.Background()
	db, path, now := openStillClock(t)
	var rs []privsync.Row
	for i := range 40 {
		restr := privsync.Restrictions(i % 8)
		var e privsync.Erasure
		switch i % 5 {
		case 1:
			e = privsync.EraseSuppress
		case 2:
			e = privsync.EraseDelete
		}
		rs = append(rs, sfmcRow(fmt.Sprintf("s%02d", i), restr, e, now.Add(-time.Hour)))
	}
	mustPlan(t, db, "r1", now, rs...)
	// Outcomes in runs: three completed, two failed alike, one expired,
	// one completed with a data URL, then one failed with its own detail.
	outcome := func(i int, it ledger.Item) ledger.Result {
		r := ledger.Result{ItemID: it.ID}
		switch i % 8 {
		case 0, 1, 2:
			r.Outcome = privsync.OutcomeCompleted
		case 3, 4:
			r.Outcome, r.Detail = privsync.OutcomeFailed, "user not found"
		case 5:
			r.Outcome = privsync.OutcomeExpired
		case 6:
			r.Outcome, r.DataURL, r.Detail = privsync.OutcomeCompleted, "https://example.invalid/"+it.SubjectID, "ready"
		case 7:
			r.Outcome, r.Detail = privsync.OutcomeFailed, "detail "+it.SubjectID
		}
		return r
	}
	play := func(runID string) {
		work := mustSubmit(t, db)
		for len(work) > 0 {
			b := work[0]
			work = work[1:]
			var results []ledger.Result
			for i, it := range b.Items {
				results = append(results, outcome(i, it))
			}
			// Half the batch first, the rest (and a repeat) in a second call.
			half := len(results) / 2
			if _, err := db.Resolve(ctx, runID, b, results[:half]); err != nil {
				t.Fatal(err)
			}
			released, err := db.Resolve(ctx, runID, b, results)
			if err != nil {
				t.Fatal(err)
			}
			for _, nb := range released {
				if err := db.MarkSending(ctx, nb); err != nil {
					t.Fatal(err)
				}
				if err := db.MarkSubmitted(ctx, nb, "ref2"); err != nil {
					t.Fatal(err)
				}
				work = append(work, nb)
			}
		}
		if _, err := db.FinishRun(ctx, runID, nil); err != nil {
			t.Fatal(err)
		}
	}
	play("r1")
	// The next day every subject asks for other restrictions and no
	// erasure: the suppressed ones (or maybe suppressed, after a failure)
	// get their suppression removed first, then the restriction follows.
	now = now.Add(24 * time.Hour)
	for i := range rs {
		rs[i].Erasure, rs[i].Restrictions, rs[i].UpdatedAt = privsync.EraseNone, privsync.Restrictions((i+3)%8), now.Add(-time.Hour)
	}
	mustPlan(t, db, "r2", now, rs...)
	play("r2")
	return dumpTables(t, path)
}

// dumpTables returns every row of the ledger at path's tables as text, in
// a stable order.
func dumpTables(t *testing.T, path string) []string {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var out []string
	for _, q := range []string{
		`SELECT 'subjects', vendor, id_type, subject_id, restrictions, erasure, erased_at, access_request, in_flight, settled, failures, retry_at FROM subjects ORDER BY 2, 3, 4`,
		`SELECT 'items', last, id, batch_id, subject_id, operation, restrictions, fp, outcome, detail, data_url FROM items ORDER BY id`,
		`SELECT 'batches', id, state, after_batch, attempts, vendor_ref FROM batches ORDER BY id`,
		`SELECT 'events', run_id, run_seq, recorded_at, vendor, subject_id, id_type, operation, restrictions, outcome, vendor_ref, attempts, detail, item_id FROM events ORDER BY seq`,
		`SELECT 'fp', bucket, hex(fps) FROM fp_buckets ORDER BY bucket`,
	} {
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if i > 0 {
					b.WriteByte('|')
				}
				fmt.Fprint(&b, v)
			}
			out = append(out, b.String())
		}
		rows.Close()
	}
	return out
}

// The plan is written many rows to a statement; the ledger it leaves must
// be the one a statement per row leaves: a first run of 1,000 rows, its
// outcomes, then a second run that changes some rows, keeps others (settled
// with nothing to send) and follows suppressions up.
func TestPlanMultiRowMatchesRowByRow(t *testing.T) {
	many := playPlanScenario(t, 128)
	one := playPlanScenario(t, 1)
	if len(many) != len(one) {
		t.Fatalf("%d rows written %d to a statement, %d one by one", len(many), 128, len(one))
	}
	for i := range many {
		if many[i] != one[i] {
			t.Fatalf("row %d differs:\nmany rows: %s\none row:   %s", i, many[i], one[i])
		}
	}
	items := 0
	for _, r := range many {
		if strings.HasPrefix(r, "items|") {
			items++
		}
	}
	if items < 1500 {
		t.Fatalf("only %d items planned", items)
	}
}

func playPlanScenario(t *testing.T, rowsPerInsert int) []string {
	defer ledger.SetPlanRows(rowsPerInsert)()
	ctx := context.Background()
	db, path, now := openStillClock(t)
	var rs []privsync.Row
	for i := range 1000 {
		e := privsync.EraseNone
		if i%3 == 0 {
			e = privsync.EraseSuppress
		}
		rs = append(rs, sfmcRow(fmt.Sprintf("s%04d", i), privsync.Restrictions(i%8), e, now.Add(-time.Hour)))
	}
	mustPlan(t, db, "r1", now, rs...)
	for _, b := range mustSubmit(t, db) {
		if _, err := db.Resolve(ctx, "r1", b, all(b, privsync.OutcomeCompleted)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.FinishRun(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	now = now.Add(24 * time.Hour)
	for i := range rs {
		if i%2 == 0 {
			rs[i].Erasure, rs[i].Restrictions, rs[i].UpdatedAt = privsync.EraseNone, privsync.Restrictions((i+1)%8), now.Add(-time.Hour)
		}
	}
	mustPlan(t, db, "r2", now, rs...)
	return dumpTables(t, path)
}

// openStillClock opens a new ledger whose clock stands still, so two plays
// of a scenario write the same times.
func openStillClock(t *testing.T) (db *ledger.DB, path string, now time.Time) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "l.db")
	db = mustOpenAt(t, path)
	now = time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	return db, path, now
}
