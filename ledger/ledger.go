// Package ledger is privsync's memory: a SQLite file (modernc.org/sqlite,
// pure Go, WAL) holding what each vendor was told and confirmed about each
// subject, the runs, their batches and items, and the append-only audit
// events the report is written from. It is the only package that touches
// SQLite. Every state change and its audit event commit together.
//
// The diff must scale to nightly exports of ten million subjects, so the
// set of rows already dealt with is not a table to join against but a set
// of 64-bit fingerprints stored as sorted blobs per bucket (fp_buckets),
// loaded in one pass, plus a journal of changes (fp_delta) folded in by
// Compact.
package ledger

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open ledger.
type DB struct {
	db   *sql.DB
	path string
	lock *os.File

	// rdb reads committed rows beside the writer (the report follower's
	// events), on a connection of its own, so those reads run in parallel
	// with the writes instead of queueing for the one writing connection.
	// nil for a volatile ledger: its reads go through db.
	rdb *sql.DB

	// Now is the clock, injectable for tests.
	Now func() time.Time

	mu sync.Mutex // held by the transaction in progress (see inTx)

	gmu     sync.Mutex // guards queue and leading
	queue   []*txReq   // callers waiting for the next group transaction
	leading bool       // a caller is running a group
	groups  int        // group transactions run (under mu), for tests

	// commitHook, when set, commits every write transaction in its place
	// (fault injection: the simulation kills the process around commits).
	commitHook func(commit func() error) error

	// stmts holds the statements the executor runs for every item and
	// batch, prepared once when the ledger opens (hotSQL): parsing them
	// again for each item was most of a backfill's time.
	stmts map[string]*sql.Stmt
	// nextSeq is the next run_seq of a run's log, as addEvent last
	// numbered it in the transaction in progress (nil: ask the log).
	nextSeq *runSeq
	// settled holds the fingerprints of rows settled by committed
	// transactions and not yet in fp_buckets; txSettled those of the
	// transaction in progress. See foldSettled.
	settled   fpLog
	txSettled []uint64
	txFolded  bool // the transaction in progress folded settled
}

type runSeq struct {
	run  string
	next int64
}

// SetCommitHook makes hook commit every write transaction from now on: it
// is handed the commit and decides whether and when to call it. An error
// from hook rolls the transaction back if it was not committed. It exists
// for fault injection (executor/sim abandons a run as SIGKILL would); nil
// removes it.
func (d *DB) SetCommitHook(hook func(commit func() error) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.commitHook = hook
}

// ErrLocked is returned by Open when another process holds the ledger.
var ErrLocked = errors.New("ledger is in use by another privsync process")

// Open opens (creating if needed) the ledger at path, takes its lock so no
// other privsync process can use it at the same time, and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// Options tune OpenWith.
type Options struct {
	// Volatile keeps the ledger in memory (SQLite's memdb, named by path,
	// gone when the last connection closes), with no fsync and the
	// rollback journal in memory: for simulations and tests that open
	// thousands of ledgers. A transaction is still atomic and rolled back
	// when it fails, so a crash simulated at a commit (SetCommitHook)
	// leaves the ledger as a real one would. Keep the DB open (Reopen) for
	// as long as its content is wanted.
	Volatile bool
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o Options) (*DB, error) {
	lock, err := acquireLock(path + ".lock")
	if err != nil {
		return nil, err
	}
	mode := modeDurable
	if o.Volatile {
		mode = modeVolatile
	}
	d, err := open(ctx, path, mode)
	if err != nil {
		releaseLock(lock)
		return nil, err
	}
	d.lock = lock
	if err := d.migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.prepareHot(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if mode == modeDurable {
		r, err := open(ctx, path, modeFollower)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.rdb = r.db
	}
	return d, nil
}

// reader is where reads of committed rows go: the reading connection, or
// the one connection of a volatile ledger.
func (d *DB) reader() *sql.DB {
	if d.rdb != nil {
		return d.rdb
	}
	return d.db
}

// prepareHot prepares hotSQL on the ledger's one connection.
func (d *DB) prepareHot(ctx context.Context) error {
	d.stmts = make(map[string]*sql.Stmt, len(hotSQL))
	for _, q := range hotSQL {
		s, err := d.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing the ledger's statements: %w", err)
		}
		d.stmts[q] = s
	}
	return nil
}

// exec runs q in tx, through its prepared statement when q is one of hotSQL.
func (d *DB) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if s := d.stmts[q]; s != nil {
		return tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

// query runs q through the database or a transaction of it, prepared when
// q is one of hotSQL. The statement is not cancelled with ctx (see quick):
// reads of a few rows are not worth a watcher each.
func (d *DB) query(ctx context.Context, q querier, sqlText string, args ...any) (*sql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // cancellation is seen between reads
	}
	s := d.stmts[sqlText]
	switch q := q.(type) {
	case *sql.Tx:
		if s != nil {
			return q.StmtContext(ctx, s).QueryContext(quick(ctx), args...)
		}
	case *sql.DB:
		if s != nil && q == d.db { // prepared on the writing connection
			return s.QueryContext(quick(ctx), args...)
		}
	}
	return q.QueryContext(ctx, sqlText, args...)
}

// queryRow is exec for a query of one row.
func (d *DB) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if s := d.stmts[q]; s != nil {
		return tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

// OpenReadOnly opens an existing ledger for reading without taking its lock
// (a dry run or a status query may look while a run works).
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening ledger: %w", err)
	}
	d, err := open(ctx, path, modeReadOnly)
	if err != nil {
		return nil, err
	}
	v, err := d.version(ctx)
	if err != nil {
		d.Close()
		return nil, err
	}
	if v != len(migrationFiles()) {
		d.Close()
		return nil, fmt.Errorf("ledger %s has schema version %d, this privsync expects %d: run `privsync run` once to upgrade it", path, v, len(migrationFiles()))
	}
	return d, nil
}

// walSizeLimit is the size the WAL file is cut back to when a checkpoint
// has emptied it.
const walSizeLimit = 64 << 20

// How open opens the file.
const (
	modeDurable  = iota // WAL, fsync at every commit
	modeReadOnly        // beside a writer
	modeVolatile        // Options.Volatile
	modeFollower        // read-only beside this process's writer (DB.rdb)
)

func open(ctx context.Context, path string, mode int) (*DB, error) {
	uri, err := fileURI(path)
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", path, err)
	}
	// temp_store(MEMORY): the statement journal of each SAVEPOINT of a
	// group commit (runGroup) stays in memory; in a temporary file its
	// page writes were a twentieth of a backfill's CPU, in system calls.
	// The WAL holds a transaction until it commits, so the first plan of
	// a 10M-row backfill (written in one) grows it to 2 GB; checkpoints
	// then empty it and later transactions write it from the start, but
	// the file keeps its size unless journal_size_limit cuts it back.
	dsn := uri + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=cache_size(-65536)&_pragma=temp_store(MEMORY)&_pragma=journal_size_limit(" + strconv.Itoa(walSizeLimit) + ")&_txlock=immediate"
	switch mode {
	case modeReadOnly:
		dsn = uri + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=cache_size(-65536)"
	case modeFollower:
		// It reads each event once, in order, just after it was written:
		// a small cache serves it as well as a large one.
		dsn = uri + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=cache_size(-4096)"
	case modeVolatile:
		dsn = uri + "?vfs=memdb&_pragma=busy_timeout(10000)&_pragma=journal_mode(MEMORY)&_pragma=synchronous(OFF)&_txlock=immediate"
	}
	conn, err := newCachingConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", path, err)
	}
	db := sql.OpenDB(conn)
	// One connection: SQLite has one writer anyway, and it keeps every
	// statement of a transaction on the connection that holds it.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening ledger %s: %w", path, err)
	}
	return &DB{db: db, path: path, Now: time.Now}, nil
}

// fileURI is the SQLite URI of the file at path: absolute, its '?', '#'
// and '%' escaped, so the file SQLite opens is the one the lock guards.
func fileURI(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Path: filepath.ToSlash(abs)}
	if !strings.HasPrefix(u.Path, "/") { // a Windows drive letter
		u.Path = "/" + u.Path
	}
	return "file:" + u.EscapedPath(), nil
}

// Close closes the ledger and releases its lock.
func (d *DB) Close() error {
	d.foldBeforeExit()
	if d.db == nil {
		return nil // reopened
	}
	for _, s := range d.stmts {
		s.Close()
	}
	if d.rdb != nil {
		d.rdb.Close()
	}
	err := d.db.Close()
	if d.lock != nil {
		releaseLock(d.lock)
		d.lock = nil
	}
	return err
}

// Reopen ends this process's use of the ledger as Close does, and returns
// the ledger as a new process would open it, without closing the file: what
// the process held in memory is gone (folded first when it can be, as Close
// folds it; dropped when the commit hook refuses, as a killed process drops
// it), while the connection, its lock and its prepared statements are kept.
// It is for the simulation, where thousands of short processes would
// otherwise spend a third of their time opening SQLite and parsing its
// statements. d must not be used afterwards, and nothing may be running on
// it.
func (d *DB) Reopen() *DB {
	d.foldBeforeExit()
	nd := &DB{db: d.db, rdb: d.rdb, path: d.path, lock: d.lock, Now: time.Now, stmts: d.stmts}
	*d = DB{path: d.path} // Close on d closes nothing the new one holds
	return nd
}

// foldBeforeExit folds the settled fingerprints the process holds, best
// effort: what is not folded is looked up by the next plan.
func (d *DB) foldBeforeExit() {
	if d.settled.len() > 0 {
		d.inTx(context.Background(), func(tx *sql.Tx) error { return d.foldSettled(context.Background(), tx, nil, nil) })
	}
}

// Path is the ledger file's path.
func (d *DB) Path() string { return d.path }

func migrationFiles() []string {
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	return names
}

func (d *DB) version(ctx context.Context) (int, error) {
	var v int
	if err := d.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading ledger schema version: %w", err)
	}
	return v, nil
}

// migrate applies the embedded migrations the ledger has not seen, each in
// its own transaction, numbered by PRAGMA user_version.
func (d *DB) migrate(ctx context.Context) error {
	v, err := d.version(ctx)
	if err != nil {
		return err
	}
	files := migrationFiles()
	if v > len(files) {
		return fmt.Errorf("ledger %s has schema version %d, newer than this privsync (%d): use a newer privsync", d.path, v, len(files))
	}
	if v == len(files) {
		return nil
	}
	// A migration that rebuilds a table sorts its whole index: in files,
	// not in memory as the ledger's own statements do (temp_store), or a
	// 10M-subject ledger's upgrade peaked at 1.5 GB.
	if _, err := d.db.ExecContext(ctx, `PRAGMA temp_store = FILE`); err != nil {
		return fmt.Errorf("migrating ledger: %w", err)
	}
	defer d.db.ExecContext(ctx, `PRAGMA temp_store = MEMORY`)
	for i := v; i < len(files); i++ {
		body, err := migrations.ReadFile(files[i])
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", files[i], err)
		}
		tx, err := d.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrating ledger: %w", err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("applying migration %s: %w", path.Base(files[i]), err)
		}
		if _, err := tx.ExecContext(ctx, `PRAGMA user_version = `+strconv.Itoa(i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("applying migration %s: %w", path.Base(files[i]), err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("applying migration %s: %w", path.Base(files[i]), err)
		}
	}
	return nil
}

// quick is the context of a short write transaction: ctx without its
// cancellation. The driver watches a cancellable context with a goroutine
// per statement (a tenth of a backfill's CPU); a transaction of a few
// milliseconds is not worth interrupting, and one that records what a
// vendor answered must commit even as the run is being interrupted.
func quick(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// inTx runs fn in a write transaction and returns once it is committed.
//
// Concurrent callers share transactions (group commit): the first becomes
// the leader and runs every fn queued so far in one transaction, each
// inside its own savepoint, so a fn that fails is rolled back alone; the
// others are committed together with one sync of the WAL. While it
// commits, new callers queue; the first of them leads the next group. A
// caller still returns only after its work is durable, and each fn's
// writes are atomic: write-ahead and "state and event together" hold.
func (d *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	r := &txReq{ctx: ctx, fn: fn, done: make(chan bool, 1)}
	d.gmu.Lock()
	d.queue = append(d.queue, r)
	lead := !d.leading
	d.leading = true
	d.gmu.Unlock()
	if !lead && !<-r.done { // done: false when finished, true when promoted to lead
		return r.err
	}
	d.gmu.Lock()
	group := d.queue
	d.queue = nil
	d.gmu.Unlock()
	d.runGroup(group)
	d.gmu.Lock()
	if len(d.queue) > 0 {
		d.queue[0].done <- true
	} else {
		d.leading = false
	}
	d.gmu.Unlock()
	return r.err
}

// txReq is one caller's work waiting for a group transaction.
type txReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	err  error
	done chan bool
}

// runGroup runs group in one transaction and tells each its result.
func (d *DB) runGroup(group []*txReq) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.groups++
	defer func() {
		for _, q := range group {
			select {
			case q.done <- false:
			default: // the leader's own: it reads r.err
			}
		}
	}()
	fail := func(err error) {
		for _, q := range group {
			if q.err == nil {
				q.err = err
			}
		}
	}
	d.nextSeq = nil // a cache of the transaction before: see addEvent
	d.txSettled, d.txFolded = d.txSettled[:0], false
	tx, err := d.db.BeginTx(context.Background(), nil)
	if err != nil {
		fail(err)
		return
	}
	save := len(group) > 1
	ok := 0
	for _, q := range group {
		if q.err = q.ctx.Err(); q.err != nil {
			continue
		}
		mark, folded := len(d.txSettled), d.txFolded
		if save {
			if _, err := tx.Exec(`SAVEPOINT grp`); err != nil {
				tx.Rollback()
				fail(err)
				return
			}
		}
		if q.err = q.fn(tx); q.err == nil {
			ok++
			if save {
				if _, err := tx.Exec(`RELEASE grp`); err != nil {
					tx.Rollback()
					fail(err)
					return
				}
			}
			continue
		}
		d.txSettled, d.txFolded, d.nextSeq = d.txSettled[:mark], folded, nil
		if save {
			if _, err := tx.Exec(`ROLLBACK TO grp; RELEASE grp`); err != nil {
				tx.Rollback()
				fail(fmt.Errorf("rolling back a failed write (%w): %w", q.err, err))
				return
			}
		}
	}
	if ok == 0 {
		tx.Rollback()
		return
	}
	// Through the commit hook when one is set (fault injection). Only a
	// transaction that committed settles its fingerprints: one rolled back,
	// or killed by the hook before its commit, settled nothing.
	committed := false
	commit := func() error {
		if err := tx.Commit(); err != nil {
			return err
		}
		committed = true
		return nil
	}
	if d.commitHook != nil {
		err = d.commitHook(commit)
	} else {
		err = commit()
	}
	if committed {
		if d.txFolded {
			d.settled = fpLog{}
		}
		d.settled.add(d.txSettled)
	}
	if err != nil {
		tx.Rollback() // a no-op once committed
		fail(err)
	}
}

// foldSettled folds the settled fingerprints of committed transactions,
// then add and remove, into the buckets, inside tx (a transaction of
// inTx). The fingerprints wait in memory until a plan is written, a run
// finishes or the ledger closes: the set only spares the planner lookups
// (a row whose fingerprint it lacks is looked up, and the subject's
// settled column says it is unchanged), so losing them in a crash costs
// time, never a wrong decision. add and remove are sets: fold reorders
// them (as it does the settled chunks), and copies none of them.
func (d *DB) foldSettled(ctx context.Context, tx *sql.Tx, add, remove []uint64) error {
	if err := fold(ctx, tx, append(slices.Clone(d.settled.chunks), add), remove); err != nil {
		return err
	}
	// Folded once this transaction commits; a rollback folds them again
	// next time (they are settled either way).
	d.txFolded = true
	return nil
}

// fpLog is a list of fingerprints kept in chunks of fpChunk: a backfill
// settles one per row, 80 MB for ten million, which a single slice copied
// whole each time it grew (and its copy for the fold) held two and three
// times over.
type fpLog struct {
	chunks [][]uint64
	n      int
}

const fpChunk = 1 << 16

func (l *fpLog) len() int { return l.n }

func (l *fpLog) add(fps []uint64) {
	l.n += len(fps)
	for len(fps) > 0 {
		if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == fpChunk {
			l.chunks = append(l.chunks, make([]uint64, 0, fpChunk))
		}
		last := &l.chunks[len(l.chunks)-1]
		k := min(len(fps), fpChunk-len(*last))
		*last = append(*last, fps[:k]...)
		fps = fps[k:]
	}
}

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// lockHolder reads who holds a lock file, for the error message.
func lockHolder(f *os.File) string {
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	return strings.TrimSpace(string(b[:n]))
}
