package ledger

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// A transaction larger than walSizeLimit (a backfill's first plan) grows
// the WAL file; once it is checkpointed, the next write cuts the file
// back to the limit rather than leaving gigabytes on disk.
func TestWALCutBackAfterABigTransaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	write := func(q string) {
		t.Helper()
		if err := d.inTx(ctx, func(tx *sql.Tx) error { _, err := tx.Exec(q); return err }); err != nil {
			t.Fatal(err)
		}
	}
	write(`CREATE TABLE big (b BLOB)`)
	write(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 80)
		INSERT INTO big SELECT zeroblob(1 << 20) FROM n`)
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if n := walSize(); n <= walSizeLimit {
		t.Fatalf("the WAL is %d bytes after an 80 MiB transaction: the test writes too little", n)
	}
	write(`DELETE FROM big`) // after the auto-checkpoint of the insert: restarts the WAL
	write(`INSERT INTO big VALUES (x'01')`)
	if n := walSize(); n > walSizeLimit {
		t.Fatalf("the WAL is still %d bytes after checkpoints, want at most %d", n, walSizeLimit)
	}
}
