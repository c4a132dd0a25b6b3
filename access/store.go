package access

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// Store is the SQLite access store. Every write is one transaction,
// committed with synchronous=FULL in WAL mode before it is acknowledged,
// and bumps the generation so cached facts are dropped at once.
type Store struct {
	db         *sql.DB
	generation atomic.Uint64
	now        func() time.Time
}

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
}

// Open opens (creating if needed) the store at path and applies pending
// migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(5000)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open access store %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open access store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Generation changes with every committed write; cached facts from an older
// generation are stale.
func (s *Store) Generation() uint64 { return s.generation.Load() }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current >= len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d): use a newer portero", current, len(migrations)-1)
	}
	for v := current + 1; v < len(migrations); v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, s.stamp())
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// tx runs f in a transaction and commits it; the write is durable when tx
// returns nil.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// write runs a writing transaction, bumps the stored generation in the same
// transaction, and invalidates this process's cached facts at once.
func (s *Store) write(ctx context.Context, f func(*sql.Tx) error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := f(tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'generation'`)
		return err
	})
	if err == nil {
		s.generation.Add(1)
	}
	return err
}

// WatchWrites notices writes made by other processes (portero admin, other
// replicas on the same file) by polling the stored generation, and
// invalidates cached facts when it moves. It returns when ctx ends.
func (s *Store) WatchWrites(ctx context.Context, every time.Duration) {
	var last int64 = -1
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var v int64
		if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'generation'`).Scan(&v); err == nil {
			if last >= 0 && v != last {
				s.generation.Add(1)
			}
			last = v
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
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
