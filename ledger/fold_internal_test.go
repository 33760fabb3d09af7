package ledger

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/privsync/privsync/planner"
)

// The settled fingerprints of a backfill are kept in chunks and folded a
// bucket at a time: the buckets must end as a whole-set merge (a map here)
// says, with the journal applied first, fingerprints in several chunks and
// buckets touched by some lists only.
func TestFoldSettledInChunks(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[uint64]bool{}
	random := func(n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = rng.Uint64()
		}
		return out
	}
	// Already in the buckets: a first fold.
	base := random(50_000)
	if err := d.inTx(ctx, func(tx *sql.Tx) error { return fold(ctx, tx, [][]uint64{base}, nil) }); err != nil {
		t.Fatal(err)
	}
	for _, fp := range base {
		want[fp] = true
	}
	// The journal: adds some, removes some of the base; the rest then
	// removes one of the journal's adds and adds back one of its removes.
	jAdd, jRemove := random(1_000), base[:1_000]
	if err := d.inTx(ctx, func(tx *sql.Tx) error {
		for _, fp := range jAdd {
			if _, err := tx.Exec(`INSERT INTO fp_delta(fp, present) VALUES (?, 1)`, int64(fp)); err != nil {
				return err
			}
		}
		for _, fp := range jRemove {
			if _, err := tx.Exec(`INSERT OR REPLACE INTO fp_delta(fp, present) VALUES (?, 0)`, int64(fp)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, fp := range jAdd {
		want[fp] = true
	}
	for _, fp := range jRemove {
		delete(want, fp)
	}
	settled := random(3*fpChunk + 17) // four chunks, the last one short
	settled = append(settled, jRemove[0], base[5_000])
	d.settled.add(settled)
	if got := len(d.settled.chunks); got != 4 {
		t.Fatalf("%d settled in %d chunks, want 4", d.settled.len(), got)
	}
	extra := random(100)
	remove := []uint64{jAdd[0], base[2_000], extra[0]}
	for _, l := range [][]uint64{settled, extra} {
		for _, fp := range l {
			want[fp] = true
		}
	}
	for _, fp := range remove {
		delete(want, fp)
	}
	if err := d.inTx(ctx, func(tx *sql.Tx) error { return d.foldSettled(ctx, tx, extra, remove) }); err != nil {
		t.Fatal(err)
	}
	if d.settled.len() != 0 {
		t.Fatalf("%d settled fingerprints left after the fold committed", d.settled.len())
	}
	set, err := d.Reader().Settled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for b := range 1 << planner.BucketBits {
		got = append(got, set.BucketOf(b)...)
	}
	wantList := make([]uint64, 0, len(want))
	for fp := range want {
		wantList = append(wantList, fp)
	}
	slices.Sort(wantList)
	if !slices.Equal(got, wantList) {
		t.Fatalf("buckets hold %d fingerprints, want %d (first difference at %d)", len(got), len(wantList), firstDiff(got, wantList))
	}
	var journal int
	if err := d.db.QueryRow(`SELECT COUNT(*) FROM fp_delta`).Scan(&journal); err != nil || journal != 0 {
		t.Fatalf("journal holds %d rows after the fold (%v), want 0", journal, err)
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
