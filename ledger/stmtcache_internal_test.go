package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// The statement cache runs a statement again while its own rows are still
// open (a nested read of the same text), keeps no more than its bound, and
// gives every text its own answer.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	d, err := OpenWith(ctx, filepath.Join(t.TempDir(), "l.db"), Options{Volatile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE c (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := d.db.ExecContext(ctx, `INSERT INTO c(n) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT n FROM c WHERE n >= ? ORDER BY n`
	tx, err := d.db.BeginTx(ctx, nil) // one connection: the nested query shares it
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var n int
		if err := outer.Scan(&n); err != nil {
			t.Fatal(err)
		}
		var inner int
		if err := tx.QueryRowContext(ctx, q, n).Scan(&inner); err != nil {
			t.Fatalf("nested query of the same text: %v", err)
		}
		if inner != n {
			t.Fatalf("nested query from %d gave %d", n, inner)
		}
		got = append(got, n)
	}
	if err := outer.Close(); err != nil || fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("outer rows %v, %v: the nested query disturbed them", got, err)
	}
	for i := range maxCachedStmts + 10 {
		var n int
		if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + count(*) FROM c`, i)).Scan(&n); err != nil || n != i+3 {
			t.Fatalf("statement %d: %d, %v", i, n, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var cached int
	conn, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Raw(func(dc any) error {
		cached = len(dc.(*cachingConn).stmts)
		return nil
	})
	if cached > maxCachedStmts {
		t.Fatalf("%d statements cached, the bound is %d", cached, maxCachedStmts)
	}
}

// Reopen hands a new process the ledger's content on the same connection,
// without what the old process held in memory; closing the old DB closes
// nothing; the content lives as long as the new one is open.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	old, err := OpenWith(ctx, filepath.Join(t.TempDir(), "l.db"), Options{Volatile: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.StartRun(ctx, &Run{ID: "r1", Mode: "incremental"}, nil); err != nil {
		t.Fatal(err)
	}
	old.SetCommitHook(func(commit func() error) error { return commit() })
	old.settled.add([]uint64{1})
	d := old.Reopen()
	defer d.Close()
	if err := old.Close(); err != nil {
		t.Fatalf("closing the reopened DB: %v", err)
	}
	if d.commitHook != nil || d.settled.len() != 0 {
		t.Fatalf("the new process inherited the old one's hook or memory")
	}
	runs, err := d.Runs(ctx, 10)
	if err != nil || len(runs) != 1 || runs[0].ID != "r1" {
		t.Fatalf("runs after Reopen %v, %v: want r1", runs, err)
	}
}
