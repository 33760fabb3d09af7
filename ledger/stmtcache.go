package ledger

import (
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// maxCachedStmts bounds a connection's statement cache: the ledger's SQL
// is a fixed set of texts, but a text built per call must not grow it.
const maxCachedStmts = 256

// cachingConnector opens SQLite connections that keep every statement they
// are asked to run prepared, keyed by its text. Parsing a statement (SQLite
// compiled to Go) costs tens of microseconds, more than running most of
// the ledger's; database/sql prepares and finalizes one for each ExecContext
// and QueryContext that is not a prepared *sql.Stmt.
type cachingConnector struct {
	driver.Connector
}

func newCachingConnector(dsn string) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return cachingConnector{c}, nil
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	for _, ok := range []bool{
		implements[driver.ConnPrepareContext](conn), implements[driver.ExecerContext](conn), implements[driver.QueryerContext](conn),
		implements[driver.ConnBeginTx](conn), implements[driver.Pinger](conn), implements[driver.SessionResetter](conn), implements[driver.Validator](conn),
	} {
		if !ok {
			conn.Close()
			return nil, errors.New("the sqlite driver's connection lacks an interface the ledger needs")
		}
	}
	return &cachingConn{Conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

func implements[T any](v any) bool {
	_, ok := v.(T)
	return ok
}

// cachingConn is one connection and its prepared statements. database/sql
// uses a connection from one goroutine at a time; a statement whose rows
// are still open is not reused (the query runs unprepared instead).
type cachingConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	s    driver.Stmt
	busy bool // its rows are open
}

// stmt returns q's cached statement, or nil when q is to run uncached.
func (c *cachingConn) stmt(ctx context.Context, q string) (*cachedStmt, error) {
	if cs := c.stmts[q]; cs != nil {
		if cs.busy {
			return nil, nil
		}
		return cs, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil, nil
	}
	s, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{s: s}
	c.stmts[q] = cs
	return cs, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	}
	return cs.s.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
	}
	rows, err := cs.s.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, cs: cs}, nil
}

func (c *cachingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *cachingConn) Close() error {
	var errs []error
	for _, cs := range c.stmts {
		errs = append(errs, cs.s.Close())
	}
	c.stmts = nil
	return errors.Join(append(errs, c.Conn.Close())...)
}

// cachedRows frees its statement for reuse when closed.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.cs.busy = false
	return err
}
