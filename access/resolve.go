package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Facts looks up, in one read transaction, what the policy needs about a
// user in a tenant: the tenant, the membership, the user's partner
// organisation and the tenant's open or most recent delegation to it, and
// the user's open master-access session for the tenant, open at now (the
// caller's clock, so a session's expiry is judged on the clock that set
// it). A missing tenant gives nil facts and no error.
func (s *Store) Facts(ctx context.Context, user, tenant string, now time.Time) (*Facts, error) {
	rdb, _, err := s.pools()
	if err != nil {
		return nil, err
	}
	f, err := s.facts(ctx, rdb, user, tenant, now)
	if err != nil {
		s.failed("facts", err)
	}
	return f, s.unavailable(err)
}

func (s *Store) facts(ctx context.Context, rdb *sql.DB, user, tenant string, now time.Time) (*Facts, error) {
	sqlTx, err := rdb.BeginTx(ctx, s.d.readOptions())
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	tx := &dbTx{sqlTx, s.d}
	t, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("access facts: tenant: %w", err)
	}
	f := &Facts{Tenant: t}
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberCols+` FROM members WHERE tenant = ? AND "user" = ?`, tenant, user))
	switch {
	case err == nil:
		f.Member = m
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: member: %w", err)
	}
	ms, err := scanMaster(tx.QueryRowContext(ctx, `SELECT `+masterCols+` FROM master_sessions
WHERE admin = ? AND tenant = ? AND ended_at IS NULL AND expires_at > ?`, user, tenant, stampOf(now)))
	switch {
	case err == nil:
		f.Master = ms
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: master access: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT partner FROM partner_users WHERE "user" = ? AND status = 'active'`, user).Scan(&f.Partner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("access facts: partner: %w", err)
	}
	d, err := scanDelegation(tx.QueryRowContext(ctx, `SELECT `+delegationCols+` FROM delegations WHERE tenant = ? AND partner = ?
ORDER BY CASE status WHEN 'accepted' THEN 0 WHEN 'invited' THEN 1 ELSE 2 END, updated_at DESC LIMIT 1`, tenant, f.Partner))
	switch {
	case err == nil:
		f.Delegation = d
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: delegation: %w", err)
	}
	return f, nil
}
