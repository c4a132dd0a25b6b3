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
	st, err := s.factStatements(ctx, rdb)
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	sqlTx, err := rdb.BeginTx(ctx, s.d.readOptions())
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	row := func(stmt *sql.Stmt, args ...any) *sql.Row {
		return sqlTx.StmtContext(ctx, stmt).QueryRowContext(ctx, args...)
	}
	t, err := scanTenant(row(st.tenant, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("access facts: tenant: %w", err)
	}
	f := &Facts{Tenant: t}
	m, err := scanMember(row(st.member, tenant, user))
	switch {
	case err == nil:
		f.Member = m
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: member: %w", err)
	}
	ms, err := scanMaster(row(st.master, user, tenant, stampOf(now)))
	switch {
	case err == nil:
		f.Master = ms
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: master access: %w", err)
	}
	err = row(st.partner, user).Scan(&f.Partner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("access facts: partner: %w", err)
	}
	d, err := scanDelegation(row(st.delegation, tenant, f.Partner))
	switch {
	case err == nil:
		f.Delegation = d
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: delegation: %w", err)
	}
	return f, nil
}

// factQueries are the facts lookup's queries, prepared once per reading
// pool (factStatements): parsing and planning them again for every lookup
// cost about as much as running them.
var factQueries = [...]string{
	`SELECT ` + tenantCols + ` FROM tenants WHERE id = ?`,
	`SELECT ` + memberCols + ` FROM members WHERE tenant = ? AND "user" = ?`,
	`SELECT ` + masterCols + ` FROM master_sessions
WHERE admin = ? AND tenant = ? AND ended_at IS NULL AND expires_at > ?`,
	`SELECT partner FROM partner_users WHERE "user" = ? AND status = 'active'`,
	`SELECT ` + delegationCols + ` FROM delegations WHERE tenant = ? AND partner = ?
ORDER BY CASE status WHEN 'accepted' THEN 0 WHEN 'invited' THEN 1 ELSE 2 END, updated_at DESC LIMIT 1`,
}

// factStmts are factQueries prepared on one reading pool. database/sql
// prepares each again on every connection that runs it, once.
type factStmts struct {
	db                                          *sql.DB
	tenant, member, master, partner, delegation *sql.Stmt
}

// factStatements returns the facts lookup's statements for rdb, preparing
// them the first time rdb is seen (the pools are opened again when the
// store's file is replaced).
func (s *Store) factStatements(ctx context.Context, rdb *sql.DB) (*factStmts, error) {
	if st := s.stmts.Load(); st != nil && st.db == rdb {
		return st, nil
	}
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	if st := s.stmts.Load(); st != nil && st.db == rdb {
		return st, nil
	}
	var prepared [len(factQueries)]*sql.Stmt
	for i, q := range factQueries {
		stmt, err := rdb.PrepareContext(ctx, s.d.rebind(q))
		if err != nil {
			for _, p := range prepared[:i] {
				_ = p.Close()
			}
			return nil, fmt.Errorf("prepare: %w", err)
		}
		prepared[i] = stmt
	}
	st := &factStmts{db: rdb, tenant: prepared[0], member: prepared[1], master: prepared[2], partner: prepared[3], delegation: prepared[4]}
	if old := s.stmts.Swap(st); old != nil {
		old.close()
	}
	return st, nil
}

func (st *factStmts) close() {
	for _, p := range []*sql.Stmt{st.tenant, st.member, st.master, st.partner, st.delegation} {
		_ = p.Close()
	}
}
