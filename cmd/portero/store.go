package main

import (
	"context"
	"os"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
)

// postgresOptions are how a PostgreSQL store named by the configuration
// connects (a SQLite store ignores them).
func postgresOptions(a config.Access) access.PostgresOptions {
	return access.PostgresOptions{Password: a.Password, MaxOpen: a.Pool.MaxOpen, MaxIdle: a.Pool.MaxIdle, MaxLifetime: a.Pool.MaxLifetime}
}

// storeOptions are the options of a store opened by a command: from the
// configuration when it was read (cfg not nil), else a PostgreSQL password
// from PORTERO_DB_PASSWORD, the variable access.password_env defaults to.
func storeOptions(cfg *config.Config, opts ...access.Option) []access.Option {
	if cfg != nil {
		return append(opts, access.WithPostgres(postgresOptions(cfg.Access)))
	}
	return append(opts, access.WithPostgres(access.PostgresOptions{Password: os.Getenv("PORTERO_DB_PASSWORD"), MaxOpen: 4}))
}

// schemaVersion is the store's schema version for the start-up log (-1
// when it cannot be read).
func schemaVersion(ctx context.Context, s *access.Store) int {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return -1
	}
	return v
}
