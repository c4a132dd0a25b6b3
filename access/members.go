package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/portero-gateway/portero/audit"
)

const memberCols = `tenant, "user", role, businesses, locations, features, fields, rights, profile, status, updated_at, name, email`

func scanMember(row interface{ Scan(...any) error }) (*Member, error) {
	var m Member
	var businesses, locations, features, fields, rights, updated string
	if err := row.Scan(&m.Tenant, &m.User, &m.Role, &businesses, &locations, &features, &fields, &rights, &m.Profile, &m.Status, &updated, &m.Name, &m.Email); err != nil {
		return nil, err
	}
	m.Businesses = fromJSON[[]string](businesses)
	m.Locations = fromJSON[[]string](locations)
	m.Features = fromJSON[map[string]string](features)
	m.Fields = fromJSON[map[string][]string](fields)
	m.Rights = fromJSON[[]string](rights)
	m.UpdatedAt = parseTime(updated)
	return &m, nil
}

// PutMember adds a member or replaces one (role, scope, rights, status).
// The tenant must exist.
func (s *Store) PutMember(ctx context.Context, m Member) (*Member, error) {
	if err := ValidateMember(&m); err != nil {
		return nil, err
	}
	stamp := s.stamp()
	err := s.write(ctx, "member.put", func(tx *dbTx) ([]audit.Record, error) {
		return s.afterMember(ctx, tx, "member.put", m.Tenant, m.User, upsertMember(ctx, tx, &m, stamp))
	})
	if err != nil {
		return nil, err
	}
	return s.Member(ctx, m.Tenant, m.User)
}

// Member returns one membership.
func (s *Store) Member(ctx context.Context, tenant, user string) (*Member, error) {
	m, err := scanMember(s.queryRow(ctx, `SELECT `+memberCols+` FROM members WHERE tenant = ? AND "user" = ?`, tenant, user))
	return m, notFound(err, "member "+user+" of "+tenant)
}

// Members lists a tenant's members.
func (s *Store) Members(ctx context.Context, tenant string) ([]*Member, error) {
	rows, err := s.query(ctx, `SELECT `+memberCols+` FROM members WHERE tenant = ? ORDER BY "user"`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Member{}
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetMemberStatus deactivates or reactivates a member; it takes effect on
// the member's very next request.
func (s *Store) SetMemberStatus(ctx context.Context, tenant, user, status string) (*Member, error) {
	if err := oneOf("status", status, MemberStatuses); err != nil {
		return nil, err
	}
	err := s.write(ctx, "member.status", func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `UPDATE members SET status = ?, updated_at = ? WHERE tenant = ? AND "user" = ?`, status, s.stamp(), tenant, user)
		return s.afterMember(ctx, tx, "member.status", tenant, user, affected(res, err, "member "+user+" of "+tenant))
	})
	if err != nil {
		return nil, err
	}
	return s.Member(ctx, tenant, user)
}

// RemoveMember deletes a membership.
func (s *Store) RemoveMember(ctx context.Context, tenant, user string) error {
	return s.write(ctx, "member.remove", func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE tenant = ? AND "user" = ?`, tenant, user)
		return s.afterMember(ctx, tx, "member.remove", tenant, user, affected(res, err, "member "+user+" of "+tenant))
	})
}

// afterMember is the audit record of a change to a member that err says
// succeeded, with the member as it is now in tx (no data when removed).
func (s *Store) afterMember(ctx context.Context, tx *dbTx, event, tenant, user string, err error) ([]audit.Record, error) {
	if err != nil {
		return nil, err
	}
	var state any
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberCols+` FROM members WHERE tenant = ? AND "user" = ?`, tenant, user))
	switch {
	case err == nil:
		state = m
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	return []audit.Record{s.change(ctx, event, tenant, "member "+tenant+"/"+user, state)}, nil
}

// Writes by a caller whose permission was decided on the member as it was
// read (seen; nil: not a member yet): each writes only if the member is
// still exactly as seen, else ErrConflict, so a decision about the member's
// role and rights cannot be outdated by a concurrent change.

// PutMemberAsSeen adds or replaces a member that is still as seen.
func (s *Store) PutMemberAsSeen(ctx context.Context, m Member, seen *Member) (*Member, error) {
	if err := ValidateMember(&m); err != nil {
		return nil, err
	}
	stamp := s.stamp()
	err := s.write(ctx, "member.put", func(tx *dbTx) ([]audit.Record, error) {
		if err := memberAsSeen(ctx, tx, m.Tenant, m.User, seen); err != nil {
			return nil, err
		}
		return s.afterMember(ctx, tx, "member.put", m.Tenant, m.User, upsertMember(ctx, tx, &m, stamp))
	})
	if err != nil {
		return nil, err
	}
	return s.Member(ctx, m.Tenant, m.User)
}

// SetMemberStatusAsSeen deactivates or reactivates a member that is still
// as seen.
func (s *Store) SetMemberStatusAsSeen(ctx context.Context, tenant, user, status string, seen *Member) (*Member, error) {
	if err := oneOf("status", status, MemberStatuses); err != nil {
		return nil, err
	}
	err := s.write(ctx, "member.status", func(tx *dbTx) ([]audit.Record, error) {
		if err := memberAsSeen(ctx, tx, tenant, user, seen); err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `UPDATE members SET status = ?, updated_at = ? WHERE tenant = ? AND "user" = ?`, status, s.stamp(), tenant, user)
		return s.afterMember(ctx, tx, "member.status", tenant, user, affected(res, err, "member "+user+" of "+tenant))
	})
	if err != nil {
		return nil, err
	}
	return s.Member(ctx, tenant, user)
}

// RemoveMemberAsSeen deletes a membership that is still as seen.
func (s *Store) RemoveMemberAsSeen(ctx context.Context, tenant, user string, seen *Member) error {
	return s.write(ctx, "member.remove", func(tx *dbTx) ([]audit.Record, error) {
		if err := memberAsSeen(ctx, tx, tenant, user, seen); err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE tenant = ? AND "user" = ?`, tenant, user)
		return s.afterMember(ctx, tx, "member.remove", tenant, user, affected(res, err, "member "+user+" of "+tenant))
	})
}

// memberAsSeen is ErrConflict unless the member is as seen (nil: absent).
// It takes the write lock first, so nothing changes between the check and
// the write that follows in tx.
func memberAsSeen(ctx context.Context, tx *dbTx, tenant, user string, seen *Member) error {
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = value WHERE key = 'generation'`); err != nil {
		return err
	}
	now, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberCols+` FROM members WHERE tenant = ? AND "user" = ?`, tenant, user))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if seen == nil {
			return nil
		}
		return fmt.Errorf("member %s of %s: %w", user, tenant, ErrNotFound)
	case err != nil:
		return err
	case seen == nil || toJSON(now) != toJSON(seen):
		return conflict("member %s of %s changed meanwhile; read it again and retry", user, tenant)
	}
	return nil
}
