package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Facts looks up, from one snapshot of the store, what the policy needs
// about a user in a tenant: the tenant, the membership, the user's partner
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
	args := [...]any{user, user, tenant, stampOf(now), user, tenant}
	// Most callers are no partner's user: their facts are the first
	// query's one row, and one statement sees one snapshot by itself (a
	// read transaction around it cost two more statements, BEGIN and
	// ROLLBACK: on PostgreSQL two more round trips).
	f, err := scanFacts(st.facts.QueryRowContext(ctx, args[:]...))
	if err != nil || f == nil || f.Partner == "" {
		return f, err
	}
	// A partner's user: the row again and the delegation, both in one read
	// transaction, so that they come from one snapshot.
	sqlTx, err := rdb.BeginTx(ctx, s.d.readOptions())
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	f, err = scanFacts(sqlTx.StmtContext(ctx, st.facts).QueryRowContext(ctx, args[:]...))
	if err != nil || f == nil || f.Partner == "" {
		return f, err
	}
	d, err := scanDelegation(sqlTx.StmtContext(ctx, st.delegation).QueryRowContext(ctx, tenant, f.Partner))
	switch {
	case err == nil:
		f.Delegation = d
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("access facts: delegation: %w", err)
	}
	return f, nil
}

// scanFacts reads the first facts query's row: the tenant, and beside it
// the member, the open master session and the user's partner
// organisation, each all NULL when there is none (each is unique: see
// factQueries). No row (no such tenant) is no facts.
func scanFacts(row *sql.Row) (*Facts, error) {
	var cols [factColumns]any
	var ptrs [factColumns]any
	for i := range cols {
		ptrs[i] = &cols[i]
	}
	err := row.Scan(ptrs[:]...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	t, err := scanTenant(columns(cols[:tenantColumns]))
	if err != nil {
		return nil, fmt.Errorf("access facts: tenant: %w", err)
	}
	f := &Facts{Tenant: t}
	if part := cols[tenantColumns : tenantColumns+memberColumns]; part[0] != nil {
		if f.Member, err = scanMember(columns(part)); err != nil {
			return nil, fmt.Errorf("access facts: member: %w", err)
		}
	}
	if part := cols[tenantColumns+memberColumns : factColumns-1]; part[0] != nil {
		if f.Master, err = scanMaster(columns(part)); err != nil {
			return nil, fmt.Errorf("access facts: master access: %w", err)
		}
	}
	var partner sql.NullString
	if err := columns(cols[factColumns-1:]).Scan(&partner); err != nil {
		return nil, fmt.Errorf("access facts: partner: %w", err)
	}
	f.Partner = partner.String
	return f, nil
}

// The facts lookup is two queries, prepared once per reading pool
// (factStatements): parsing and planning them again for every lookup cost
// about as much as running them. The first reads the tenant and, joined to
// it, the member, the user's open master-access session for the tenant and
// the user's partner organisation: at most one of each (members and
// partner_users by key, master_sessions by its unique index on open
// sessions). The second, only for a partner's user, reads the delegation,
// in one read transaction with the first read again (see facts).
var factQueries = [...]string{
	`SELECT ` + prefixed("t.", tenantCols) + `, ` + prefixed("m.", memberCols) + `, ` + prefixed("ms.", masterCols) + `, pu.partner
FROM tenants t
LEFT JOIN members m ON m.tenant = t.id AND m."user" = ?
LEFT JOIN master_sessions ms ON ms.admin = ? AND ms.tenant = ? AND ms.ended_at IS NULL AND ms.expires_at > ?
LEFT JOIN partner_users pu ON pu."user" = ? AND pu.status = 'active'
WHERE t.id = ?`,
	`SELECT ` + delegationCols + ` FROM delegations WHERE tenant = ? AND partner = ?
ORDER BY CASE status WHEN 'accepted' THEN 0 WHEN 'invited' THEN 1 ELSE 2 END, updated_at DESC LIMIT 1`,
}

// The first query's columns, in order.
var (
	tenantColumns = len(strings.Split(tenantCols, ","))
	memberColumns = len(strings.Split(memberCols, ","))
	masterColumns = len(strings.Split(masterCols, ","))
)

// factColumns is the first query's column count: the tenant's, the
// member's, the master session's and the partner.
const factColumns = 10 + 13 + 12 + 1

func init() {
	if factColumns != tenantColumns+memberColumns+masterColumns+1 {
		panic("access: factColumns does not match the column lists")
	}
}

// columns is part of a row scanned into driver values, scanned again into
// the types a scan function asks for. A driver gives TEXT as string (or
// []byte), INTEGER as int64, NULL as nil.
type columns []any

func (c columns) Scan(dest ...any) error {
	if len(dest) != len(c) {
		return fmt.Errorf("scan: %d columns into %d values", len(c), len(dest))
	}
	for i, d := range dest {
		v := c[i]
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		switch d := d.(type) {
		case *string:
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("scan: column %d is %T, not text", i, v)
			}
			*d = s
		case *int:
			n, ok := v.(int64)
			if !ok {
				return fmt.Errorf("scan: column %d is %T, not an integer", i, v)
			}
			*d = int(n)
		case *sql.NullString:
			*d = sql.NullString{}
			if v != nil {
				s, ok := v.(string)
				if !ok {
					return fmt.Errorf("scan: column %d is %T, not text", i, v)
				}
				*d = sql.NullString{String: s, Valid: true}
			}
		default:
			return fmt.Errorf("scan: column %d into %T", i, d)
		}
	}
	return nil
}

// factStmts are factQueries prepared on one reading pool. database/sql
// prepares each again on every connection that runs it, once.
type factStmts struct {
	db                *sql.DB
	facts, delegation *sql.Stmt
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
	st := &factStmts{db: rdb, facts: prepared[0], delegation: prepared[1]}
	if old := s.stmts.Swap(st); old != nil {
		old.close()
	}
	return st, nil
}

func (st *factStmts) close() {
	for _, p := range []*sql.Stmt{st.facts, st.delegation} {
		_ = p.Close()
	}
}
