package access

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/portero-gateway/portero/audit"
)

// Store is the SQLite access store. Every write is one immediate
// transaction (it takes the write lock when it begins, so it never fails
// half-way on a lock held by another writer), retried a few times when the
// file is busy, committed with synchronous=FULL in WAL mode before it is
// acknowledged, carries its audit record (no record, no change), and bumps
// the generation so cached facts are dropped at once.
//
// Reads go through a pool of connections, writes through one. The store
// watches its file (health.go): replaced, deleted or unreadable, it fails
// closed and reopens the file when it can.
type Store struct {
	path       string
	generation atomic.Uint64
	now        func() time.Time
	log        *slog.Logger
	actors     func(context.Context) string // who writes, from the request's context

	mu     sync.RWMutex
	rdb    *sql.DB // readers
	wdb    *sql.DB // the writer: one connection, BEGIN IMMEDIATE
	file   fileID  // the file the pools opened
	down   error   // why the store is unusable; nil when it is usable
	closed bool    // by Close: never reopened

	hooksMu sync.Mutex
	hooks   []func([]audit.Record)
}

// Option configures Open.
type Option func(*Store)

// WithLogger logs store errors (each with its operation) and health
// changes to log.
func WithLogger(log *slog.Logger) Option { return func(s *Store) { s.log = log } }

// WithClock sets the store's clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// migrations are applied in order at start; each runs once, in a
// transaction, and is recorded in schema_migrations.
var migrations = []string{
	1: `
CREATE TABLE tenants (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	hostnames     TEXT NOT NULL DEFAULT '[]',
	status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
	owner         TEXT NOT NULL DEFAULT '',
	master_access INTEGER NOT NULL DEFAULT 1,
	created_at    TEXT NOT NULL
);
CREATE TABLE members (
	tenant     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	user       TEXT NOT NULL,
	role       TEXT NOT NULL,
	businesses TEXT NOT NULL DEFAULT '[]',
	locations  TEXT NOT NULL DEFAULT '[]',
	features   TEXT NOT NULL DEFAULT '{}',
	fields     TEXT NOT NULL DEFAULT '{}',
	rights     TEXT NOT NULL DEFAULT '[]',
	profile    TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
	updated_at TEXT NOT NULL,
	PRIMARY KEY (tenant, user)
);
CREATE INDEX members_by_user ON members(user);
CREATE TABLE partners (
	id   TEXT PRIMARY KEY,
	name TEXT NOT NULL
);
CREATE TABLE partner_users (
	user    TEXT PRIMARY KEY,
	partner TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
	status  TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated'))
);
CREATE TABLE delegations (
	id         TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	partner    TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
	scope      TEXT NOT NULL CHECK (scope IN ('full', 'limited')),
	products   TEXT NOT NULL DEFAULT '[]',
	wallet     INTEGER NOT NULL DEFAULT 0,
	status     TEXT NOT NULL CHECK (status IN ('invited', 'accepted', 'rejected', 'revoked')),
	expires_at TEXT,
	invited_by TEXT NOT NULL,
	invited_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
-- At most one open (invited or accepted) delegation per tenant and partner.
CREATE UNIQUE INDEX delegations_open ON delegations(tenant, partner) WHERE status IN ('invited', 'accepted');
CREATE INDEX delegations_by_partner ON delegations(partner);
-- Bumped by every write, so other processes (portero admin, replicas on
-- the same file) notice changes and drop cached facts.
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 0);
`,
	2: `
CREATE TABLE master_sessions (
	id          TEXT PRIMARY KEY,
	admin       TEXT NOT NULL,
	session     TEXT NOT NULL,
	tenant      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	reason      TEXT NOT NULL,
	ticket      TEXT NOT NULL DEFAULT '',
	mode        TEXT NOT NULL CHECK (mode IN ('full', 'read_only')),
	started_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	ended_at    TEXT,
	end_reason  TEXT NOT NULL DEFAULT '',
	ended_by    TEXT NOT NULL DEFAULT ''
);
-- At most one open session per admin and tenant; lookups by (admin, tenant).
CREATE UNIQUE INDEX master_sessions_open ON master_sessions (admin, tenant) WHERE ended_at IS NULL;
CREATE INDEX master_sessions_expiry ON master_sessions (expires_at) WHERE ended_at IS NULL;
`,
	3: `
-- The audit trail (package audit): hash-chained records, appended in the
-- transaction of the change they record. record is the canonical JSON the
-- hash covers; event, tenant and admin are copies for filtering.
CREATE TABLE audit_log (
	seq    INTEGER PRIMARY KEY,
	event  TEXT NOT NULL,
	tenant TEXT NOT NULL DEFAULT '',
	admin  TEXT NOT NULL DEFAULT '',
	hash   TEXT NOT NULL,
	record TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
CREATE INDEX audit_log_admin ON audit_log (admin, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
-- The trail's head signed with the gateway's key, periodically and at
-- shutdown, so a cut-off tail is seen.
CREATE TABLE audit_checkpoints (
	seq       INTEGER NOT NULL,
	hash      TEXT NOT NULL,
	signed_at TEXT NOT NULL,
	jws       TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
`,
}

// Open opens (creating if needed) the store at path and applies pending
// migrations.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	s := &Store{path: path, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	rdb, wdb, err := openPools(path, true)
	if err != nil {
		return nil, fmt.Errorf("open access store %s: %w", path, err)
	}
	s.rdb, s.wdb = rdb, wdb
	if err := s.migrate(ctx); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("open access store %s: %w", path, err)
	}
	s.file, _ = statFile(path)
	return s, nil
}

// openPools opens the reading pool and the writing connection on path;
// create says whether a missing file may be created.
func openPools(path string, create bool) (rdb, wdb *sql.DB, err error) {
	dsn := func(extra ...string) string {
		q := url.Values{}
		for _, p := range []string{"foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(5000)"} {
			q.Add("_pragma", p)
		}
		if !create {
			q.Set("mode", "rw")
		}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return "file:" + path + "?" + q.Encode()
	}
	if wdb, err = sql.Open("sqlite", dsn("_txlock", "immediate")); err != nil {
		return nil, nil, err
	}
	wdb.SetMaxOpenConns(1)
	if rdb, err = sql.Open("sqlite", dsn()); err != nil {
		wdb.Close()
		return nil, nil, err
	}
	rdb.SetMaxIdleConns(4)
	return rdb, wdb, nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.down == nil {
		s.down = errors.New("closed")
	}
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// Generation changes with every committed write; cached facts from an older
// generation are stale.
func (s *Store) Generation() uint64 { return s.generation.Load() }

// ErrUnavailable is a store that cannot be used now (its file replaced,
// deleted or unreadable); callers fail closed.
var ErrUnavailable = errors.New("access store unavailable")

// pools returns the current connections, or ErrUnavailable.
func (s *Store) pools() (rdb, wdb *sql.DB, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.down != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, s.down)
	}
	return s.rdb, s.wdb, nil
}

// errRow is a row that could not be read.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

type scanner interface{ Scan(...any) error }

// queryRow reads one row through the reading pool; an error other than
// "no row" is logged with the query.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) scanner {
	rdb, _, err := s.pools()
	if err != nil {
		return errRow{err}
	}
	return loggedRow{rdb.QueryRowContext(ctx, q, args...), s, q}
}

type loggedRow struct {
	row *sql.Row
	s   *Store
	q   string
}

func (l loggedRow) Scan(dest ...any) error {
	err := l.row.Scan(dest...)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		l.s.failed(readOp(l.q), err)
	}
	return err
}

// query reads rows through the reading pool.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rdb, _, err := s.pools()
	if err != nil {
		return nil, err
	}
	rows, err := rdb.QueryContext(ctx, q, args...)
	if err != nil {
		s.failed(readOp(q), err)
	}
	return rows, err
}

// readOp names a read by its query, for the log.
func readOp(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 80 {
		q = q[:80] + "…"
	}
	return "read: " + q
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.wdb.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	var current int
	if err := s.wdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current >= len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d): use a newer portero", current, len(migrations)-1)
	}
	for v := current + 1; v < len(migrations); v++ {
		tx, err := s.wdb.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, s.stamp()); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Writes are retried this many times in all when the file is busy (another
// process holds the write lock past the busy timeout).
const maxWriteAttempts = 5

// write runs a writing transaction for operation op: f changes the facts
// and returns the audit records of the change, which are appended to the
// trail in the same transaction (no record, no change). The stored
// generation moves in it too, and this process's cached facts are dropped
// at once.
func (s *Store) write(ctx context.Context, op string, f func(*sql.Tx) ([]audit.Record, error)) error {
	_, err := s.commit(ctx, op, true, f)
	return err
}

// commit runs f in an immediate transaction, appends its records to the
// trail, moves the generation when bump, and commits; a busy file is
// retried with backoff. Committed records go to the hooks.
func (s *Store) commit(ctx context.Context, op string, bump bool, f func(*sql.Tx) ([]audit.Record, error)) ([]audit.Record, error) {
	for attempt := 1; ; attempt++ {
		recs, err := s.commitOnce(ctx, bump, f)
		if err == nil {
			if bump {
				s.generation.Add(1)
			}
			s.committed(recs)
			return recs, nil
		}
		if isBusy(err) && attempt < maxWriteAttempts && ctx.Err() == nil {
			wait := time.Duration(attempt*attempt)*10*time.Millisecond + rand.N(10*time.Millisecond)
			s.log.Warn("access store busy; retrying the write", "op", op, "attempt", attempt, "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		if !isUserError(err) {
			s.failed(op, err)
		}
		return nil, err
	}
}

func (s *Store) commitOnce(ctx context.Context, bump bool, f func(*sql.Tx) ([]audit.Record, error)) ([]audit.Record, error) {
	_, wdb, err := s.pools()
	if err != nil {
		return nil, err
	}
	tx, err := wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	recs, err := f(tx)
	if err != nil {
		return nil, err
	}
	if recs, err = s.appendRecords(ctx, tx, recs); err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	if bump {
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'generation'`); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return recs, nil
}

// isBusy says whether err is SQLite's "database is busy/locked".
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// isUserError says whether err is the caller's (bad input, conflict,
// missing record) rather than the store's.
func isUserError(err error) bool {
	var fe *FieldError
	var ie *ImportError
	return errors.As(err, &fe) || errors.As(err, &ie) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// failed logs a store error with its operation, and marks the store down
// when the error says its file is unusable.
func (s *Store) failed(op string, err error) {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) {
		return
	}
	s.log.Error("access store error", "op", op, "file", s.path, "error", err.Error())
	if fileBroken(err) {
		s.markDown(err)
	}
}

// OnCommit registers fn to receive the audit records of each committed
// write, in order (the export mirrors them).
func (s *Store) OnCommit(fn func([]audit.Record)) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.hooks = append(s.hooks, fn)
}

func (s *Store) committed(recs []audit.Record) {
	if len(recs) == 0 {
		return
	}
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	for _, fn := range s.hooks {
		fn(recs)
	}
}

func (s *Store) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func fromJSON[T any](s string) T {
	var v T
	_ = json.Unmarshal([]byte(s), &v)
	return v
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}
