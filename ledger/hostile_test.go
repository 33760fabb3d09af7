package ledger_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
)

// TestOpenPathWithURICharacters: a ledger path holding characters that mean
// something in a SQLite URI opens, and locks, that very file.
func TestOpenPathWithURICharacters(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"a?b.db", "50%.db", "x#y.db", "%3F.db", "sp ace;&=+.db", "mode=ro?.db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			db, err := ledger.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			mustStartRun(t, db, "r1")
			if _, err := ledger.Open(ctx, path); !errors.Is(err, ledger.ErrLocked) {
				t.Errorf("a second Open of %s: %v, want ErrLocked (the lock must guard the file opened)", name, err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 16)
			f, err := os.Open(path)
			if err != nil {
				t.Fatalf("the ledger is not at %s: %v", path, err)
			}
			_, err = f.Read(head)
			f.Close()
			if err != nil || string(head) != "SQLite format 3\x00" {
				t.Fatalf("%s is not a SQLite file: %q, %v", path, head, err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if n := e.Name(); n != name && n != name+".lock" && n != name+"-wal" && n != name+"-shm" {
					t.Errorf("stray file %q beside ledger %q", n, name)
				}
			}
			// The sqlite3 shell opens a plain file name, URI rules aside.
			if sh, err := exec.LookPath("sqlite3"); err == nil {
				out, err := exec.Command(sh, "-readonly", path, "SELECT count(*) FROM runs").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "1" {
					t.Errorf("sqlite3 %s: %s, %v; want 1 run", path, out, err)
				}
			}
			ro, err := ledger.OpenReadOnly(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			ro.Close()
		})
	}
}

// TestUpdatedAtRoundTrip pins the ledger's representation of updated_at:
// every instant ingest accepts comes back exactly, and absent stays absent
// (not 1970, not the zero time of an accepted value).
func TestUpdatedAtRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	ats := []time.Time{
		ingest.MinUpdatedAt, ingest.MaxUpdatedAt, time.Unix(0, 0).UTC(), time.Unix(0, -1).UTC(),
		time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC), {},
	}
	keys := make([]privsync.Key, len(ats))
	mustWrite(t, db, "r1", func(ctx context.Context, s planner.Sink) error {
		for i, at := range ats {
			keys[i] = privsync.Key{Vendor: "sfmc", SubjectID: string(rune('a' + i))}
			e := settleEntry(keys[i], uint64(i+1), 0)
			e.UpdatedAt = at
			if err := s.Entry(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	states, err := db.Reader().Lookup(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		if !st.UpdatedAt.Equal(ats[i]) || st.UpdatedAt.IsZero() != ats[i].IsZero() {
			t.Errorf("updated_at %v came back as %v", ats[i], st.UpdatedAt)
		}
	}
	if !slices.IsSortedFunc(ats[:2], func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatal("bounds out of order")
	}
}
