package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Concurrent writers share transactions; a writer that fails is rolled
// back alone, every other one is committed when inTx returns, and each
// gets its own result.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TABLE g (n INTEGER PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const writers = 200
	errBad := errors.New("bad writer")
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			errs[i] = d.inTx(ctx, func(tx *sql.Tx) error {
				for k := range 3 { // several statements: all or none survive
					if _, err := tx.Exec(`INSERT INTO g(n) VALUES (?)`, i*10+k); err != nil {
						return err
					}
				}
				if i%7 == 0 {
					return fmt.Errorf("writer %d: %w", i, errBad)
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (i%7 == 0) != errors.Is(err, errBad) {
			t.Fatalf("writer %d: %v", i, err)
		}
		var n int
		if err := d.db.QueryRow(`SELECT count(*) FROM g WHERE n / 10 = ?`, i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 3}[i%7 == 0]; n != want {
			t.Fatalf("writer %d: %d rows committed, want %d", i, n, want)
		}
	}
	if d.groups > writers/2+1 { // +1: the CREATE
		t.Errorf("%d transactions for %d concurrent writers: they were not grouped", d.groups, writers)
	}
	t.Logf("%d writers in %d transactions", writers, d.groups-1)
	if d.leading || len(d.queue) != 0 {
		t.Fatalf("after the writers: leading %v, %d queued", d.leading, len(d.queue))
	}
}
