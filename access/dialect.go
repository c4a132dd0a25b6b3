package access

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is what differs between the store's two databases: SQLite (a
// file, the embedded default) and PostgreSQL (shared by replicas). The
// queries are written once, with ? placeholders and portable SQL; a dialect
// rebinds them, opens its pools, serialises writers and tells its errors
// apart.
type dialect interface {
	// name is "sqlite" or "postgres", for logs and errors.
	name() string
	// rebind turns the ? placeholders of q into the database's own.
	rebind(q string) string
	// schema picks the dialect's text of a migration.
	schema(m migration) string
	// readOptions are the options of a read transaction that must see one
	// snapshot (Facts).
	readOptions() *sql.TxOptions
	// lockWrites runs first in every writing transaction: after it, no
	// other writer, in this process or another, is inside one.
	lockWrites(ctx context.Context, tx *sql.Tx) error
	// announce runs last in every writing transaction that moved the
	// generation: other processes learn of the write from it.
	announce(ctx context.Context, tx *sql.Tx) error
	// retryable says whether a failed write may be run again as it is
	// (SQLite busy, PostgreSQL serialisation failure or deadlock).
	retryable(err error) bool
	// unreachable says whether err means the database could not be
	// reached or went away (PostgreSQL: connection refused or lost, the
	// server shutting down or starting), rather than a query failing: the
	// caller answers 503, as for a store that fails closed.
	unreachable(err error) bool
}

// migration is one schema version's SQL; postgres is empty when the text
// is the same for both databases.
type migration struct{ sqlite, postgres string }

// both is a migration whose SQL is the same for both databases.
func both(q string) migration { return migration{sqlite: q} }

// sqliteDialect is the file store: one writing connection, BEGIN IMMEDIATE.
type sqliteDialect struct{}

func (sqliteDialect) name() string                              { return "sqlite" }
func (sqliteDialect) rebind(q string) string                    { return q }
func (sqliteDialect) schema(m migration) string                 { return m.sqlite }
func (sqliteDialect) readOptions() *sql.TxOptions               { return &sql.TxOptions{ReadOnly: true} }
func (sqliteDialect) lockWrites(context.Context, *sql.Tx) error { return nil } // BEGIN IMMEDIATE took the lock
func (sqliteDialect) announce(context.Context, *sql.Tx) error   { return nil } // the watcher polls meta
func (sqliteDialect) retryable(err error) bool                  { return isBusy(err) }
func (sqliteDialect) unreachable(error) bool                    { return false } // health.go watches the file

// isBusy says whether err is SQLite's "database is busy/locked".
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// writeLockKey is the PostgreSQL advisory lock every writer of a store
// holds for its transaction: writes are serialised across replicas as
// SQLite serialises them on a file, so the audit trail stays one chain and
// read-then-write checks (one open delegation per partner) hold.
const writeLockKey = 0x706f727465726f // "portero"

// postgresDialect is the shared store of several replicas.
type postgresDialect struct {
	channel string // the LISTEN/NOTIFY channel of this store's schema
	origin  string // names this Store in its notifications, so it skips its own

	mu    sync.RWMutex
	bound map[string]string
}

func (*postgresDialect) name() string { return "postgres" }

func (d *postgresDialect) rebind(q string) string {
	d.mu.RLock()
	b, ok := d.bound[q]
	d.mu.RUnlock()
	if ok {
		return b
	}
	b = rebindDollar(q)
	d.mu.Lock()
	if d.bound == nil {
		d.bound = map[string]string{}
	}
	if len(d.bound) < 4096 { // queries are a fixed set; a bound keeps a mistake from growing it
		d.bound[q] = b
	}
	d.mu.Unlock()
	return b
}

// rebindDollar numbers the ? placeholders of q as $1, $2, …, leaving
// quoted text alone.
func rebindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (*postgresDialect) schema(m migration) string {
	if m.postgres != "" {
		return m.postgres
	}
	return m.sqlite
}

func (*postgresDialect) readOptions() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

func (*postgresDialect) lockWrites(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(writeLockKey))
	return err
}

func (d *postgresDialect) announce(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, d.channel, d.origin)
	return err
}

func (*postgresDialect) retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01" // serialization_failure, deadlock_detected
	}
	return false
}

func (*postgresDialect) unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-03: admin or crash
		// shutdown, cannot connect now (starting up or recovering).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		errors.Is(err, sql.ErrConnDone)
}

// unavailable marks err as ErrUnavailable when it says the database could
// not be reached.
func (s *Store) unavailable(err error) error {
	if err != nil && !errors.Is(err, ErrUnavailable) && s.d != nil && s.d.unreachable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// isUnique says whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint")
}

// isForeignKey says whether err is a foreign-key violation.
func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint")
}

// dbTx is a writing or reading transaction whose queries are written with
// ? placeholders, whatever the database.
type dbTx struct {
	tx *sql.Tx
	d  dialect
}

func (t *dbTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.d.rebind(q), args...)
}

func (t *dbTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.d.rebind(q), args...)
}

func (t *dbTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.d.rebind(q), args...)
}

func (t *dbTx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.d.rebind(q))
}
