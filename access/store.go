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

	_ "modernc.org/sqlite" // the database/sql driver

	"github.com/portero-gateway/portero/audit"
)

// Store is the access store, on a SQLite file (the embedded default) or on
// PostgreSQL (shared by replicas). Every write is one transaction that
// first takes the store's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL:
// an advisory lock), so writers never interleave, in one process or
// several; it is retried a few times when the database says so, committed
// durably before it is acknowledged, carries its audit record (no record,
// no change), and bumps the generation so cached facts are dropped at once
// here and, through the database, on every other process.
//
// On SQLite, reads go through a pool of connections and writes through
// one; the store watches its file (health.go): replaced, deleted or
// unreadable, it fails closed and reopens the file when it can. On
// PostgreSQL, one pool serves both and a listening connection
// (postgres.go) learns of other replicas' writes.
type Store struct {
	path       string // the SQLite file, or the PostgreSQL URL without its password
	d          dialect
	pg         *pgListener // PostgreSQL only
	generation atomic.Uint64
	now        func() time.Time
	log        *slog.Logger
	actors     func(context.Context) string // who writes, from the request's context
	pgOpts     PostgresOptions

	mu     sync.RWMutex
	rdb    *sql.DB // readers
	wdb    *sql.DB // the writer: one connection, BEGIN IMMEDIATE
	file   fileID  // the file the pools opened
	down   error   // why the store is unusable; nil when it is usable
	closed bool    // by Close: never reopened

	hooksMu sync.Mutex
	hooks   []func([]audit.Record)

	stmtsMu sync.Mutex
	stmts   atomic.Pointer[factStmts] // the facts lookup's, on rdb
}

// Option configures Open.
type Option func(*Store)

// WithLogger logs store errors (each with its operation) and health
// changes to log.
func WithLogger(log *slog.Logger) Option { return func(s *Store) { s.log = log } }

// WithPostgres sets how a PostgreSQL store connects: its password and
// pool limits. A SQLite store ignores it.
func WithPostgres(o PostgresOptions) Option { return func(s *Store) { s.pgOpts = o } }

// WithClock sets the store's clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// migrations are applied in order at start; each runs once, in a
// transaction, and is recorded in schema_migrations.
var migrations = []migration{
	1: both(`
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
	"user"     TEXT NOT NULL,
	role       TEXT NOT NULL,
	businesses TEXT NOT NULL DEFAULT '[]',
	locations  TEXT NOT NULL DEFAULT '[]',
	features   TEXT NOT NULL DEFAULT '{}',
	fields     TEXT NOT NULL DEFAULT '{}',
	rights     TEXT NOT NULL DEFAULT '[]',
	profile    TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
	updated_at TEXT NOT NULL,
	PRIMARY KEY (tenant, "user")
);
CREATE INDEX members_by_user ON members("user");
CREATE TABLE partners (
	id   TEXT PRIMARY KEY,
	name TEXT NOT NULL
);
CREATE TABLE partner_users (
	"user"  TEXT PRIMARY KEY,
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
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 0);
`),
	2: both(`
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
`),
	3: {sqlite: `
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
`, postgres: `
-- As on SQLite: the audit trail, appended in the transaction of the change
-- it records, and its signed checkpoints; both append-only.
CREATE TABLE audit_log (
	seq    BIGINT PRIMARY KEY,
	event  TEXT NOT NULL,
	tenant TEXT NOT NULL DEFAULT '',
	admin  TEXT NOT NULL DEFAULT '',
	hash   TEXT NOT NULL,
	record TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
CREATE INDEX audit_log_admin ON audit_log (admin, seq);
CREATE TABLE audit_checkpoints (
	seq       BIGINT NOT NULL,
	hash      TEXT NOT NULL,
	signed_at TEXT NOT NULL,
	jws       TEXT NOT NULL
);
CREATE FUNCTION portero_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION portero_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION portero_append_only();
`},
	4: both(`
-- Server-side session state (sessions.go): revocations, read by every
-- replica on each request through an in-memory mirror kept current by the
-- generation; and single-use tokens (login states, back-channel logout
-- jti), consumed once across replicas. seq orders revocations so a replica
-- reads only the new ones.
CREATE TABLE session_revocations (
	kind       TEXT NOT NULL CHECK (kind IN ('session', 'user', 'idp_session')),
	key        TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	since      TEXT NOT NULL,
	until      TEXT NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (kind, key)
);
CREATE INDEX session_revocations_seq ON session_revocations (seq);
CREATE INDEX session_revocations_until ON session_revocations (until);
CREATE TABLE consumed_tokens (
	kind  TEXT NOT NULL,
	key   TEXT NOT NULL,
	until TEXT NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX consumed_tokens_until ON consumed_tokens (until);
`),
	5: both(`
-- People and partners as the product describes them: names and e-mail
-- addresses, a tenant's default profile and whether its owner is told of
-- master access, partner admins, an invitation's expiry apart from the
-- partnership's end.
ALTER TABLE tenants ADD COLUMN owner_email TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN default_profile TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN notify_master INTEGER NOT NULL DEFAULT 1;
ALTER TABLE members ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE partners ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE partner_users ADD COLUMN role TEXT NOT NULL DEFAULT 'staff';
ALTER TABLE partner_users ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE partner_users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE delegations ADD COLUMN invitation_expires_at TEXT;
ALTER TABLE delegations ADD COLUMN lang TEXT NOT NULL DEFAULT '';
CREATE INDEX partners_by_email ON partners (lower(email));
CREATE INDEX partners_by_name ON partners (lower(name));
-- A member invited by e-mail: bound to the invitee's sub when they sign in
-- with a verified e-mail that matches and follow the link (token_hash is
-- the SHA-256 of the link's single-use token).
CREATE TABLE member_invitations (
	id          TEXT PRIMARY KEY,
	tenant      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	email       TEXT NOT NULL,
	name        TEXT NOT NULL DEFAULT '',
	member      TEXT NOT NULL,
	lang        TEXT NOT NULL DEFAULT '',
	token_hash  TEXT NOT NULL UNIQUE,
	status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'withdrawn')),
	expires_at  TEXT NOT NULL,
	invited_by  TEXT NOT NULL,
	invited_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	accepted_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX member_invitations_open ON member_invitations (tenant, email) WHERE status = 'pending';
-- The e-mail outbox: a message is written in the transaction of the change
-- it announces, then sent by a background sender with retries. key is the
-- event's idempotency key: one message per event, however often the write
-- is retried.
CREATE TABLE outbox (
	id          TEXT PRIMARY KEY,
	key         TEXT NOT NULL UNIQUE,
	kind        TEXT NOT NULL,
	tenant      TEXT NOT NULL DEFAULT '',
	recipient   TEXT NOT NULL,
	lang        TEXT NOT NULL DEFAULT '',
	data        TEXT NOT NULL DEFAULT '{}',
	status      TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     TEXT NOT NULL,
	lease_until TEXT,
	last_error  TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	sent_at     TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_at);
`),
	6: {sqlite: `
-- An invitation (a partner's or a member's) that expired unanswered, and a
-- partnership past its end, are marked 'expired': they stop counting as
-- open (the partner or the person can be invited again) and show as what
-- they are. SQLite cannot change a CHECK in place, so both tables are
-- rebuilt (nothing references them).
CREATE TABLE delegations_v6 (
	id                    TEXT PRIMARY KEY,
	tenant                TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	partner               TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
	scope                 TEXT NOT NULL CHECK (scope IN ('full', 'limited')),
	products              TEXT NOT NULL DEFAULT '[]',
	wallet                INTEGER NOT NULL DEFAULT 0,
	status                TEXT NOT NULL CHECK (status IN ('invited', 'accepted', 'rejected', 'revoked', 'expired')),
	expires_at            TEXT,
	invited_by            TEXT NOT NULL,
	invited_at            TEXT NOT NULL,
	updated_at            TEXT NOT NULL,
	invitation_expires_at TEXT,
	lang                  TEXT NOT NULL DEFAULT ''
);
INSERT INTO delegations_v6 (id, tenant, partner, scope, products, wallet, status, expires_at, invited_by, invited_at, updated_at, invitation_expires_at, lang)
	SELECT id, tenant, partner, scope, products, wallet, status, expires_at, invited_by, invited_at, updated_at, invitation_expires_at, lang FROM delegations;
DROP TABLE delegations;
ALTER TABLE delegations_v6 RENAME TO delegations;
CREATE UNIQUE INDEX delegations_open ON delegations(tenant, partner) WHERE status IN ('invited', 'accepted');
CREATE INDEX delegations_by_partner ON delegations(partner);
CREATE TABLE member_invitations_v6 (
	id          TEXT PRIMARY KEY,
	tenant      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	email       TEXT NOT NULL,
	name        TEXT NOT NULL DEFAULT '',
	member      TEXT NOT NULL,
	lang        TEXT NOT NULL DEFAULT '',
	token_hash  TEXT NOT NULL UNIQUE,
	status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'withdrawn', 'expired')),
	expires_at  TEXT NOT NULL,
	invited_by  TEXT NOT NULL,
	invited_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	accepted_by TEXT NOT NULL DEFAULT ''
);
INSERT INTO member_invitations_v6 SELECT id, tenant, email, name, member, lang, token_hash, status, expires_at, invited_by, invited_at, updated_at, accepted_by FROM member_invitations;
DROP TABLE member_invitations;
ALTER TABLE member_invitations_v6 RENAME TO member_invitations;
CREATE UNIQUE INDEX member_invitations_open ON member_invitations (tenant, email) WHERE status = 'pending';
CREATE INDEX member_invitations_by_tenant ON member_invitations (tenant, invited_at);
`, postgres: `
-- As on SQLite: 'expired' invitations and partnerships.
ALTER TABLE delegations DROP CONSTRAINT delegations_status_check;
ALTER TABLE delegations ADD CONSTRAINT delegations_status_check CHECK (status IN ('invited', 'accepted', 'rejected', 'revoked', 'expired'));
ALTER TABLE member_invitations DROP CONSTRAINT member_invitations_status_check;
ALTER TABLE member_invitations ADD CONSTRAINT member_invitations_status_check CHECK (status IN ('pending', 'accepted', 'withdrawn', 'expired'));
CREATE INDEX member_invitations_by_tenant ON member_invitations (tenant, invited_at);
`},
}

// Open opens the store at target and applies pending migrations: a
// postgres:// (or postgresql://) URL is a PostgreSQL database shared by
// replicas, anything else the path of a SQLite file (created if needed).
func Open(ctx context.Context, target string, opts ...Option) (*Store, error) {
	s := &Store{path: target, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	if IsPostgres(target) {
		if err := s.openPostgres(ctx, target); err != nil {
			return nil, fmt.Errorf("open access store %s: %w", s.path, err)
		}
		return s, nil
	}
	s.d = sqliteDialect{}
	rdb, wdb, err := openPools(target, true)
	if err != nil {
		return nil, fmt.Errorf("open access store %s: %w", target, err)
	}
	s.rdb, s.wdb = rdb, wdb
	if err := s.migrate(ctx); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("open access store %s: %w", target, err)
	}
	s.file, _ = statFile(target)
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
	if st := s.stmts.Swap(nil); st != nil {
		st.close()
	}
	if s.rdb == s.wdb { // PostgreSQL: one pool
		return s.rdb.Close()
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
	return loggedRow{rdb.QueryRowContext(ctx, s.d.rebind(q), args...), s, q}
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
	return l.s.unavailable(err)
}

// query reads rows through the reading pool.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rdb, _, err := s.pools()
	if err != nil {
		return nil, err
	}
	rows, err := rdb.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		s.failed(readOp(q), err)
	}
	return rows, s.unavailable(err)
}

// readOp names a read by its query, for the log.
func readOp(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 80 {
		q = q[:80] + "…"
	}
	return "read: " + q
}

// migrate applies pending migrations, each in a transaction holding the
// write lock, so replicas starting together apply each once.
func (s *Store) migrate(ctx context.Context) error {
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next pending migration; done when none is left.
func (s *Store) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.d.lockWrites(ctx, tx); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return false, err
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return false, err
	}
	if current >= len(migrations) {
		return false, fmt.Errorf("schema version %d is newer than this binary knows (%d): use a newer portero", current, len(migrations)-1)
	}
	v := current + 1
	if v == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, s.d.schema(migrations[v])); err != nil {
		return false, fmt.Errorf("migration %d: %w", v, err)
	}
	if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, s.stamp()); err != nil {
		return false, err
	}
	return false, tx.Commit()
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
func (s *Store) write(ctx context.Context, op string, f func(*dbTx) ([]audit.Record, error)) error {
	_, err := s.commit(ctx, op, true, f)
	return err
}

// commit runs f in an immediate transaction, appends its records to the
// trail, moves the generation when bump, and commits; a busy file is
// retried with backoff. Committed records go to the hooks.
func (s *Store) commit(ctx context.Context, op string, bump bool, f func(*dbTx) ([]audit.Record, error)) ([]audit.Record, error) {
	for attempt := 1; ; attempt++ {
		recs, err := s.commitOnce(ctx, bump, f)
		if err == nil {
			if bump {
				s.generation.Add(1)
			}
			s.committed(recs)
			return recs, nil
		}
		if s.d.retryable(err) && attempt < maxWriteAttempts && ctx.Err() == nil {
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
		return nil, s.unavailable(err)
	}
}

func (s *Store) commitOnce(ctx context.Context, bump bool, f func(*dbTx) ([]audit.Record, error)) ([]audit.Record, error) {
	_, wdb, err := s.pools()
	if err != nil {
		return nil, err
	}
	sqlTx, err := wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sqlTx.Rollback() }()
	if err := s.d.lockWrites(ctx, sqlTx); err != nil {
		return nil, err
	}
	tx := &dbTx{sqlTx, s.d}
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
		if err := s.d.announce(ctx, sqlTx); err != nil {
			return nil, err
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return nil, err
	}
	return recs, nil
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
	s.log.Error("access store error", "op", op, "store", s.path, "error", err.Error())
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

func (s *Store) stamp() string { return stampOf(s.now()) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
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
