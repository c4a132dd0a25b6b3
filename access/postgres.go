package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgresOptions are how a PostgreSQL store connects.
type PostgresOptions struct {
	// Password is used when the URL carries none (it should not: the
	// gateway takes it from the environment).
	Password string
	// MaxOpen bounds the pool's connections (default 20); MaxIdle how
	// many stay open between bursts (default MaxOpen/2); MaxLifetime how
	// long one is reused (default 30 minutes). The listening connection
	// is one more.
	MaxOpen     int
	MaxIdle     int
	MaxLifetime time.Duration
}

// IsPostgres says whether an access.store value names a PostgreSQL
// database rather than a SQLite file.
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// RedactURL is a PostgreSQL URL without its password, for logs (a SQLite
// path is returned as it is).
func RedactURL(target string) string {
	if !IsPostgres(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		return "postgres://(unparseable URL)"
	}
	return u.Redacted()
}

func (s *Store) openPostgres(ctx context.Context, target string) error {
	s.path = RedactURL(target)
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		return err
	}
	if cfg.Password == "" {
		cfg.Password = s.pgOpts.Password
	}
	o := s.pgOpts
	if o.MaxOpen <= 0 {
		o.MaxOpen = 20
	}
	if o.MaxIdle <= 0 || o.MaxIdle > o.MaxOpen {
		o.MaxIdle = max(1, o.MaxOpen/2)
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = 30 * time.Minute
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(o.MaxOpen)
	db.SetMaxIdleConns(o.MaxIdle)
	db.SetConnMaxLifetime(o.MaxLifetime)
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		db.Close()
		return err
	}
	// One channel per schema, so stores side by side in one database
	// (tests, or several deployments) do not wake each other.
	sum := sha256.Sum256([]byte(schema))
	var origin [8]byte
	_, _ = rand.Read(origin[:])
	d := &postgresDialect{channel: "portero_" + hex.EncodeToString(sum[:6]), origin: hex.EncodeToString(origin[:])}
	s.d, s.rdb, s.wdb = d, db, db
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return err
	}
	s.pg = &pgListener{cfg: cfg, channel: d.channel, origin: d.origin, maxIdle: o.MaxIdle, down: errors.New("not listening yet")}
	return nil
}

// pgListener is the connection on which a PostgreSQL store hears of other
// replicas' writes. While it is not listening, nothing cached can be
// trusted: Live is false and callers read through.
type pgListener struct {
	cfg     *pgx.ConnConfig
	channel string
	origin  string // this store's own notifications carry it: already seen
	maxIdle int    // the pool's idle connections, restored after a flush

	live atomic.Bool // listening: read on every lookup, so without a lock
	mu   sync.Mutex
	down error // why it is not listening; nil while it is
}

// Live says whether cached facts may be used: always for a SQLite store
// (its watcher polls the file), and for a PostgreSQL store while its
// listening connection is up, so no other replica's write can be missed.
func (s *Store) Live() bool {
	return s.pg == nil || s.pg.live.Load()
}

// Listening says why a PostgreSQL store is not hearing other replicas'
// writes (nil: it is, or the store is SQLite), for readiness.
func (s *Store) Listening() error {
	if s.pg == nil {
		return nil
	}
	s.pg.mu.Lock()
	defer s.pg.mu.Unlock()
	return s.pg.down
}

func (s *Store) setListening(why error) {
	s.pg.mu.Lock()
	was := s.pg.down
	s.pg.down = why
	s.pg.live.Store(why == nil)
	s.pg.mu.Unlock()
	// Either way nothing cached survives: going down, a notification may
	// be missed from now on; coming up, one may have been missed before.
	s.generation.Add(1)
	// Nor do the pool's idle connections: the server they were opened on
	// went away (or is back as a new process), and each would fail its
	// next query once. Closing them makes the next query dial afresh.
	if (why == nil) != (was == nil) {
		s.rdb.SetMaxIdleConns(0)
		s.rdb.SetMaxIdleConns(s.pg.maxIdle)
	}
	switch {
	case why == nil && was != nil:
		s.log.Info("access store: listening for other replicas' writes", "store", s.path, "channel", s.pg.channel)
	case why != nil && was == nil:
		s.log.Error("access store: not listening for other replicas' writes; cached facts dropped, every lookup reads the database until it listens again",
			"store", s.path, "error", why.Error())
	}
}

// listen keeps a LISTEN connection until ctx ends: each notification (a
// write by any replica, or by portero admin) moves the generation; the
// connection is checked every keepalive and reconnected with backoff.
func (s *Store) listen(ctx context.Context, keepalive time.Duration) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, keepalive)
		if ctx.Err() != nil {
			return
		}
		s.setListening(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		if err == nil {
			backoff = 50 * time.Millisecond
		}
	}
}

// listenOnce connects, listens and waits for notifications until the
// connection fails; the error says why.
func (s *Store) listenOnce(ctx context.Context, keepalive time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.ConnectConfig(cctx, s.pg.cfg.Copy())
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.pg.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.setListening(nil)
	for {
		wctx, cancel := context.WithTimeout(ctx, keepalive)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if n.Payload != s.pg.origin { // this store's own writes moved it already
				s.generation.Add(1)
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !pgconn.Timeout(err) || conn.IsClosed():
			return fmt.Errorf("wait: %w", err)
		}
		// Quiet for a keepalive: make sure the connection is still there
		// (a server gone without a word leaves a socket that only a
		// query finds dead).
		pctx, cancel := context.WithTimeout(ctx, keepalive)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}
