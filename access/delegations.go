package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"time"

	"github.com/portero-gateway/portero/audit"
)

const delegationCols = `id, tenant, partner, scope, products, wallet, status, expires_at, invited_by, invited_at, updated_at`

func scanDelegation(row interface{ Scan(...any) error }) (*Delegation, error) {
	var d Delegation
	var products, invited, updated string
	var wallet int
	var expires sql.NullString
	if err := row.Scan(&d.ID, &d.Tenant, &d.Partner, &d.Scope, &products, &wallet, &d.Status, &expires, &d.InvitedBy, &invited, &updated); err != nil {
		return nil, err
	}
	d.Products = fromJSON[[]string](products)
	d.Wallet = wallet == 1
	if expires.Valid {
		t := parseTime(expires.String)
		d.Expires = &t
	}
	d.InvitedAt, d.UpdatedAt = parseTime(invited), parseTime(updated)
	return &d, nil
}

// Invite creates an invitation from a tenant to a partner. A tenant has at
// most one open (invited or accepted) delegation per partner.
func (s *Store) Invite(ctx context.Context, d Delegation) (*Delegation, error) {
	if err := ValidateDelegation(&d); err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	d.ID = "dlg_" + hex.EncodeToString(id[:])
	d.Status = "invited"
	stamp := s.stamp()
	var expires any
	if d.Expires != nil {
		if !d.Expires.After(s.now()) {
			return nil, &FieldError{"expires", "must be in the future"}
		}
		expires = d.Expires.UTC().Format(time.RFC3339Nano)
	}
	err := s.write(ctx, "delegation.invite", func(tx *dbTx) ([]audit.Record, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO delegations (`+delegationCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Tenant, d.Partner, d.Scope, toJSON(d.Products), b2i(d.Wallet), d.Status, expires, d.InvitedBy, stamp, stamp)
		switch {
		case err != nil && isUnique(err):
			return nil, conflict("tenant %s already has an open delegation to %s", d.Tenant, d.Partner)
		case err != nil && isForeignKey(err):
			return nil, &FieldError{"partner", "no such tenant or partner"}
		case err != nil:
			return nil, err
		}
		return s.afterDelegation(ctx, tx, "delegation.invite", d.ID)
	})
	if err != nil {
		return nil, err
	}
	return s.Delegation(ctx, d.ID)
}

// Delegation returns one delegation.
func (s *Store) Delegation(ctx context.Context, id string) (*Delegation, error) {
	d, err := scanDelegation(s.queryRow(ctx, `SELECT `+delegationCols+` FROM delegations WHERE id = ?`, id))
	return d, notFound(err, "delegation "+id)
}

// Delegations lists a tenant's delegations (tenant != "") or a partner's.
func (s *Store) Delegations(ctx context.Context, tenant, partner string) ([]*Delegation, error) {
	q, arg := `SELECT `+delegationCols+` FROM delegations WHERE tenant = ? ORDER BY invited_at DESC`, tenant
	if tenant == "" {
		q, arg = `SELECT `+delegationCols+` FROM delegations WHERE partner = ? ORDER BY invited_at DESC`, partner
	}
	rows, err := s.query(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Delegation{}
	for rows.Next() {
		d, err := scanDelegation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// transitions says which delegation states each action moves from and to.
var transitions = map[string]struct {
	from []string
	to   string
}{
	"resend":   {[]string{"invited"}, "invited"},
	"withdraw": {[]string{"invited"}, "revoked"},
	"accept":   {[]string{"invited"}, "accepted"},
	"reject":   {[]string{"invited"}, "rejected"},
	"revoke":   {[]string{"accepted"}, "revoked"},
}

// Transition applies a lifecycle action (resend, withdraw, accept, reject,
// revoke); an action the current state does not allow is a conflict.
func (s *Store) Transition(ctx context.Context, id, action string) (*Delegation, error) {
	tr, ok := transitions[action]
	if !ok {
		return nil, &FieldError{"action", "must be one of resend, withdraw, accept, reject, revoke"}
	}
	err := s.write(ctx, "delegation."+action, func(tx *dbTx) ([]audit.Record, error) {
		d, err := scanDelegation(tx.QueryRowContext(ctx, `SELECT `+delegationCols+` FROM delegations WHERE id = ?`, id))
		if err != nil {
			return nil, notFound(err, "delegation "+id)
		}
		allowed := false
		for _, f := range tr.from {
			allowed = allowed || d.Status == f
		}
		if !allowed {
			return nil, conflict("cannot %s a delegation that is %s", action, d.Status)
		}
		if action == "accept" && d.Expires != nil && !d.Expires.After(s.now()) {
			return nil, conflict("the invitation expired at %s", d.Expires.Format(time.RFC3339))
		}
		stamp := s.stamp()
		if action == "resend" {
			_, err = tx.ExecContext(ctx, `UPDATE delegations SET invited_at = ?, updated_at = ? WHERE id = ?`, stamp, stamp, id)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE delegations SET status = ?, updated_at = ? WHERE id = ?`, tr.to, stamp, id)
		}
		if err != nil {
			return nil, err
		}
		return s.afterDelegation(ctx, tx, "delegation."+action, id)
	})
	if err != nil {
		return nil, err
	}
	return s.Delegation(ctx, id)
}

// afterDelegation is the audit record of a change to delegation id, with
// the delegation as it is now in tx.
func (s *Store) afterDelegation(ctx context.Context, tx *dbTx, event, id string) ([]audit.Record, error) {
	d, err := scanDelegation(tx.QueryRowContext(ctx, `SELECT `+delegationCols+` FROM delegations WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	return []audit.Record{s.change(ctx, event, d.Tenant, "delegation "+id, d)}, nil
}
