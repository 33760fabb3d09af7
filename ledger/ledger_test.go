package ledger_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// MustOpenDB opens a new ledger in a temporary directory, closed when the
// test ends.
func MustOpenDB(tb testing.TB) *ledger.DB {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "ledger.db"))
}

func mustOpenAt(tb testing.TB, path string) *ledger.DB {
	tb.Helper()
	db, err := ledger.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("ledger.Open(%s): %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// mustStartRun records a run for plans to be written under.
func mustStartRun(tb testing.TB, db *ledger.DB, id string) {
	tb.Helper()
	r := &ledger.Run{ID: id, StartedAt: time.Now().UTC(), Mode: "incremental"}
	if err := db.StartRun(context.Background(), r, []string{}); err != nil {
		tb.Fatalf("StartRun(%s): %v", id, err)
	}
}

// mustWrite writes entries into the ledger as a plan of a new run would.
func mustWrite(tb testing.TB, db *ledger.DB, runID string, fn func(ctx context.Context, s planner.Sink) error) {
	tb.Helper()
	mustStartRun(tb, db, runID)
	err := db.WritePlan(context.Background(), runID, func(_ planner.Ledger, s planner.Sink) error {
		return fn(context.Background(), s)
	})
	if err != nil {
		tb.Fatalf("WritePlan: %v", err)
	}
}

// settleEntry is an entry with nothing to send: it records fp as settled,
// replacing prior.
func settleEntry(k privsync.Key, fp, prior uint64) *planner.Entry {
	return &planner.Entry{Key: k, FP: fp, UpdatedAt: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		Prior: planner.State{Known: prior != 0, Settled: prior}, Decision: planner.Decision{Verdict: planner.Settle}}
}

// rawQuery reads one integer from the ledger file without the ledger package.
func rawQuery(t *testing.T, path, q string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestMigrationsSetUserVersion(t *testing.T) {
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	path := filepath.Join(t.TempDir(), "l.db")
	db := mustOpenAt(t, path)
	db.Close()
	if v := rawQuery(t, path, "PRAGMA user_version"); v != len(files) {
		t.Fatalf("user_version %d after Open, want %d (one per migration)", v, len(files))
	}
	if n := rawQuery(t, path, "SELECT count(*) FROM sqlite_master WHERE name IN ('runs','subjects','fp_buckets','fp_delta','batches','items','events')"); n != 7 {
		t.Fatalf("%d of the 7 tables exist", n)
	}
	// Opening again applies nothing twice.
	db = mustOpenAt(t, path)
	db.Close()
	if v := rawQuery(t, path, "PRAGMA user_version"); v != len(files) {
		t.Fatalf("user_version %d after a second Open, want %d", v, len(files))
	}
	ro, err := ledger.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenReadOnly of a migrated ledger: %v", err)
	}
	ro.Close()
}

func setUserVersion(t *testing.T, path string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersionMismatch(t *testing.T) {
	ctx := context.Background()
	t.Run("newer ledger", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l.db")
		mustOpenAt(t, path).Close()
		setUserVersion(t, path, 99)
		if db, err := ledger.Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
			if db != nil {
				db.Close()
			}
			t.Fatalf("Open of a ledger from a newer privsync: %v, want an error", err)
		}
		// The failed Open released its lock.
		files, _ := filepath.Glob("migrations/*.sql")
		setUserVersion(t, path, len(files))
		mustOpenAt(t, path).Close()
	})
	t.Run("read-only on an old ledger", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l.db")
		setUserVersion(t, path, 0) // an empty SQLite file: version 0
		if _, err := ledger.OpenReadOnly(ctx, path); err == nil || !strings.Contains(err.Error(), "schema version 0") {
			t.Fatalf("OpenReadOnly of an unmigrated ledger: %v, want a schema version error", err)
		}
	})
}

func TestOpenReadOnlyMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	db, err := ledger.OpenReadOnly(context.Background(), path)
	if err == nil {
		db.Close()
		t.Fatal("OpenReadOnly of a missing file succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not say the file does not exist (the plan command starts from an empty ledger on it)", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", path)
	}
}

func TestOpenLockedInSameProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	db := mustOpenAt(t, path)
	second, err := ledger.Open(context.Background(), path)
	if err == nil {
		second.Close()
		t.Fatal("a second Open of the same ledger succeeded")
	}
	if !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("error %v, want ledger.ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the holder (%s)", err, want)
	}
	// A dry run may still look while the holder works.
	ro, err := ledger.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenReadOnly while locked: %v", err)
	}
	ro.Close()
	db.Close()
	again, err := ledger.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	again.Close()
}

// The child side of TestOpenLockedAcrossProcesses: opens the ledger named
// by the environment and reports how it went on standard output.
func TestHelperOpenLedger(t *testing.T) {
	path := os.Getenv("PRIVSYNC_TEST_LEDGER")
	if path == "" {
		t.Skip("helper process for TestOpenLockedAcrossProcesses")
	}
	db, err := ledger.Open(context.Background(), path)
	if err != nil {
		fmt.Printf("locked=%v err=%v\n", errors.Is(err, ledger.ErrLocked), err)
		return
	}
	fmt.Println("opened")
	// Hold the lock until the parent closes our standard input.
	bufio.NewReader(os.Stdin).ReadString('\n')
	db.Close()
}

func helperCmd(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOpenLedger$", "-test.v=false")
	cmd.Env = append(os.Environ(), "PRIVSYNC_TEST_LEDGER="+path)
	return cmd
}

func TestOpenLockedAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Run("child refused while we hold it", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l.db")
		mustOpenAt(t, path)
		out, err := helperCmd(t, path).Output()
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
		want := fmt.Sprintf("locked=true err=%s", ledger.ErrLocked)
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("child's Open said %q; want ErrLocked naming pid %d", out, os.Getpid())
		}
	})
	t.Run("we are refused while a child holds it", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l.db")
		cmd := helperCmd(t, path)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer stdin.Close()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "opened" {
			t.Fatalf("child did not open the ledger: %q %v", line, err)
		}
		db, err := ledger.Open(context.Background(), path)
		if err == nil {
			db.Close()
			t.Fatal("Open succeeded while a child process holds the ledger")
		}
		if !errors.Is(err, ledger.ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
			t.Fatalf("error %q: want ledger.ErrLocked naming pid %d", err, cmd.Process.Pid)
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
		// The lock went with the child.
		mustOpenAt(t, path).Close()
	})
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	key := func(i int) privsync.Key {
		return privsync.Key{Vendor: "batch-ios", IDType: "custom_id", SubjectID: fmt.Sprintf("user-%d", i)}
	}
	// Every third subject is known, across more keys than one query takes.
	const n = 1000
	mustWrite(t, db, "r1", func(ctx context.Context, s planner.Sink) error {
		for i := 0; i < n; i += 3 {
			e := settleEntry(key(i), uint64(i+1), 0)
			e.AccessRequest = fmt.Sprintf("AR-%d", i)
			if err := s.Entry(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	keys := make([]privsync.Key, n)
	for i := range keys {
		keys[i] = key(n - 1 - i) // not in key order
	}
	states, err := db.Reader().Lookup(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != n {
		t.Fatalf("%d states for %d keys", len(states), n)
	}
	for i, st := range states {
		j := n - 1 - i
		if j%3 != 0 {
			if st != (planner.State{}) {
				t.Fatalf("unknown subject %s: state %+v, want the zero State", keys[i].SubjectID, st)
			}
			continue
		}
		if !st.Known || st.Settled != uint64(j+1) || st.AccessRequest != fmt.Sprintf("AR-%d", j) || st.InFlight != 0 {
			t.Fatalf("subject %s: state %+v", keys[i].SubjectID, st)
		}
	}
	// Same id, other id type or vendor: another subject.
	other := []privsync.Key{{Vendor: "batch-ios", IDType: "install_id", SubjectID: "user-0"}, {Vendor: "sfmc", SubjectID: "user-0"}}
	states, err = db.Reader().Lookup(ctx, other)
	if err != nil || states[0] != (planner.State{}) || states[1] != (planner.State{}) {
		t.Fatalf("Lookup %v: %+v, %v; want zero states", other, states, err)
	}
	if states, err := db.Reader().Lookup(ctx, nil); err != nil || len(states) != 0 {
		t.Fatalf("Lookup of no keys: %v, %v", states, err)
	}
	// A key asked for twice gets its state in both places.
	twice := []privsync.Key{key(3), key(1), key(3)}
	states, err = db.Reader().Lookup(ctx, twice)
	if err != nil || !states[0].Known || states[1].Known || states[2] != states[0] {
		t.Fatalf("Lookup %v: %+v, %v; want the known state twice", twice, states, err)
	}
}

// fpIn makes a fingerprint in bucket b.
func fpIn(b int, low uint64) uint64 { return uint64(b)<<(64-planner.BucketBits) | low }

func settledList(t *testing.T, db *ledger.DB) []uint64 {
	t.Helper()
	cache, err := ledger.CacheSize(db)
	if err != nil {
		t.Fatal(err)
	}
	set, err := db.Reader().Settled(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Settled reads the set through a small page cache: it must give the
	// ledger's back.
	if after, err := ledger.CacheSize(db); err != nil || after != cache {
		t.Fatalf("page cache size %d after Settled (%v), %d before", after, err, cache)
	}
	var out []uint64
	for b := range 1 << planner.BucketBits {
		out = append(out, set.BucketOf(b)...)
	}
	if len(out) != set.Len() {
		t.Fatalf("set holds %d fingerprints, Len says %d", len(out), set.Len())
	}
	// Loaded in hand-overs smaller than a bucket's blob, the same set.
	defer ledger.SetSettledChunkBytes(8)()
	small, err := db.Reader().Settled(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if small.Len() != set.Len() {
		t.Fatalf("set loaded in 8-byte hand-overs holds %d fingerprints, %d otherwise", small.Len(), set.Len())
	}
	for b := range 1 << planner.BucketBits {
		if !slices.Equal(small.BucketOf(b), set.BucketOf(b)) {
			t.Fatalf("bucket %d loaded in 8-byte hand-overs: %x, otherwise %x", b, small.BucketOf(b), set.BucketOf(b))
		}
	}
	return out
}

func TestSettledThroughCompact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	db := mustOpenAt(t, path)
	key := func(i int) privsync.Key { return privsync.Key{Vendor: "sfmc", SubjectID: fmt.Sprintf("p%d", i)} }
	// Night 1: fingerprints in buckets 0, 1, 7 and the last one.
	night1 := []uint64{fpIn(0, 5), fpIn(0, 9), fpIn(1, 1), fpIn(7, 3), fpIn(7, 4), fpIn(1<<planner.BucketBits-1, 2)}
	mustWrite(t, db, "r1", func(ctx context.Context, s planner.Sink) error {
		for i, fp := range night1 {
			if err := s.Entry(ctx, settleEntry(key(i), fp, 0)); err != nil {
				return err
			}
		}
		// A reject's fingerprint is settled too: reported once.
		return s.Reject(ctx, &privsync.RowError{File: "x.csv", Line: 2, Reason: "bad"}, fpIn(3, 1))
	})
	want := append(slices.Clone(night1), fpIn(3, 1))
	slices.Sort(want)
	if got := settledList(t, db); !slices.Equal(got, want) {
		t.Fatalf("settled before Compact (from the journal)\n got %x\nwant %x", got, want)
	}
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := settledList(t, db); !slices.Equal(got, want) {
		t.Fatalf("settled after Compact\n got %x\nwant %x", got, want)
	}
	if n := rawQuery(t, path, "SELECT count(*) FROM fp_delta"); n != 0 {
		t.Fatalf("%d journal rows left after Compact", n)
	}
	if n := rawQuery(t, path, "SELECT count(*) FROM fp_buckets"); n != 5 {
		t.Fatalf("%d buckets stored, want 5", n)
	}

	// Night 2: subjects move on. p0's and p3's new fingerprints replace
	// theirs (bucket 0 keeps one, bucket 7 keeps one); p1's moves from
	// bucket 0 to bucket 2; p2's bucket 1 empties into bucket 9.
	moves := []struct {
		i        int
		from, to uint64
	}{{0, night1[0], fpIn(0, 6)}, {1, night1[1], fpIn(2, 1)}, {2, night1[2], fpIn(9, 9)}, {3, night1[3], fpIn(7, 8)}}
	mustWrite(t, db, "r2", func(ctx context.Context, s planner.Sink) error {
		for _, m := range moves {
			if err := s.Entry(ctx, settleEntry(key(m.i), m.to, m.from)); err != nil {
				return err
			}
		}
		return nil
	})
	want = []uint64{fpIn(0, 6), fpIn(2, 1), fpIn(3, 1), fpIn(7, 4), fpIn(7, 8), fpIn(9, 9), fpIn(1<<planner.BucketBits-1, 2)}
	if got := settledList(t, db); !slices.Equal(got, want) {
		t.Fatalf("settled with the journal\n got %x\nwant %x", got, want)
	}
	for range 2 { // Compact is idempotent
		if err := db.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		if got := settledList(t, db); !slices.Equal(got, want) {
			t.Fatalf("settled after Compact\n got %x\nwant %x", got, want)
		}
	}
	if n := rawQuery(t, path, "SELECT count(*) FROM fp_buckets WHERE bucket = 1"); n != 0 {
		t.Fatalf("emptied bucket 1 is still stored")
	}
	// The ledger's subjects agree with the set.
	states, err := db.Reader().Lookup(ctx, []privsync.Key{key(0), key(1), key(2), key(3), key(4), key(5)})
	if err != nil {
		t.Fatal(err)
	}
	for i, wantFP := range []uint64{fpIn(0, 6), fpIn(2, 1), fpIn(9, 9), fpIn(7, 8), night1[4], night1[5]} {
		if states[i].Settled != wantFP {
			t.Errorf("p%d settled %x, want %x", i, states[i].Settled, wantFP)
		}
	}
}

// Runs of the same second are ordered by their start, whatever the digits
// of its fraction (RFC 3339 trims trailing zeros: as text, 12:00:00Z sorted
// after 12:00:00.5Z).
func TestRunsOrderWithinASecond(t *testing.T) {
	ctx := context.Background()
	db, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i, d := range []time.Duration{0, 120 * time.Millisecond, 123 * time.Millisecond, 500 * time.Millisecond} {
		if err := db.StartRun(ctx, &ledger.Run{ID: fmt.Sprintf("run%d", i), StartedAt: base.Add(d), Mode: "incremental"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := db.Runs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.ID)
	}
	if want := "run3 run2 run1 run0"; strings.Join(got, " ") != want {
		t.Fatalf("runs newest first: %v, want %s", got, want)
	}
	if u, _ := db.UnfinishedRun(ctx); u == nil || u.ID != "run3" {
		t.Fatalf("the latest unfinished run is %v, want run3", u)
	}
}

// A ledger written by the first schema keeps every subject through
// migration 002 (subjects in plan order), its states are found by key, and
// its pending items name their subjects' rows.
func TestMigrationKeepsSubjects(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	init, err := os.ReadFile("migrations/001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(string(init) + `;
		INSERT INTO subjects(vendor, id_type, subject_id, restrictions, erasure, erased_at, updated_at, access_request, in_flight, settled, failures, retry_at)
		VALUES ('sfmc', '', 'b', 3, 0, NULL, 100, '', 0, 77, 0, NULL), ('batch', 'custom_id', 'a', 0, 2, 5, 200, 'T-1', 9, 0, 2, 300);
		INSERT INTO items(batch_id, run_id, vendor, id_type, subject_id, operation, fp, last, outcome)
		VALUES (1, 'r', 'batch', 'custom_id', 'a', 'remove', 9, 1, 'pending'), (1, 'r', 'sfmc', '', 'b', 'restrict', 8, 1, 'completed');
		PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db := mustOpenAt(t, path)
	defer db.Close()
	got, err := db.Reader().Lookup(ctx, []privsync.Key{{Vendor: "batch", IDType: "custom_id", SubjectID: "a"}, {Vendor: "sfmc", SubjectID: "b"}, {Vendor: "sfmc", SubjectID: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	type fields struct {
		known              bool
		restr              privsync.Restrictions
		erasure            planner.Erasure
		erased, upd, retry int64
		access             string
		inFlight, settled  uint64
	}
	of := func(s planner.State) fields {
		ns := func(t time.Time) int64 {
			if t.IsZero() {
				return 0
			}
			return t.UnixNano()
		}
		return fields{s.Known, s.Restrictions, s.Erasure, ns(s.ErasedAt), ns(s.UpdatedAt), ns(s.RetryAt), s.AccessRequest, s.InFlight, s.Settled}
	}
	want := []fields{
		{known: true, erasure: 2, erased: 5, upd: 200, retry: 300, access: "T-1", inFlight: 9},
		{known: true, restr: 3, upd: 100, settled: 77},
		{},
	}
	for i := range want {
		if of(got[i]) != want[i] {
			t.Errorf("subject %d after migration: %+v, want %+v", i, of(got[i]), want[i])
		}
	}
	// A pending item names its subject's row, to be resolved by it.
	if n := rawQuery(t, path, `SELECT count(*) FROM items i JOIN subjects s ON s.id = i.subject
		WHERE i.outcome = 'pending' AND s.subject_id = 'a' AND s.vendor = 'batch'`); n != 1 {
		t.Fatalf("the pending item does not name its subject's row after migration")
	}
	if n := rawQuery(t, path, "SELECT count(*) FROM sqlite_master WHERE name = 'subjects_key'"); n != 1 {
		t.Fatalf("the subjects' key index is missing")
	}
}
