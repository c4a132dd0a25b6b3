package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"time"

	"github.com/portero-gateway/portero/audit"
)

const delegationCols = `id, tenant, partner, scope, products, wallet, status, expires_at, invited_by, invited_at, updated_at, invitation_expires_at, lang`

func scanDelegation(row interface{ Scan(...any) error }) (*Delegation, error) {
	var d Delegation
	var products, invited, updated string
	var wallet int
	var expires, invExpires sql.NullString
	if err := row.Scan(&d.ID, &d.Tenant, &d.Partner, &d.Scope, &products, &wallet, &d.Status, &expires, &d.InvitedBy, &invited, &updated, &invExpires, &d.Lang); err != nil {
		return nil, err
	}
	d.Products = fromJSON[[]string](products)
	d.Wallet = wallet == 1
	if expires.Valid {
		t := parseTime(expires.String)
		d.Expires = &t
	}
	if invExpires.Valid {
		t := parseTime(invExpires.String)
		d.InvitationExpires = &t
	}
	d.InvitedAt, d.UpdatedAt = parseTime(invited), parseTime(updated)
	return &d, nil
}

// DefaultInvitationTTL is how long an invitation can be answered when the
// caller does not say (access.invitation_ttl).
const DefaultInvitationTTL = 14 * 24 * time.Hour

// lapsed says whether d, as stored, has run out at now: an invitation not
// answered in time, or a partnership past its end.
func lapsed(d *Delegation, now time.Time) bool {
	switch d.Status {
	case "invited":
		return (d.InvitationExpires != nil && !now.Before(*d.InvitationExpires)) || (d.Expires != nil && !now.Before(*d.Expires))
	case "accepted":
		return d.Expires != nil && !now.Before(*d.Expires)
	}
	return false
}

// shown is d as the API shows it: "expired" once it has run out, whether
// or not that was stored yet.
func (s *Store) shown(d *Delegation) *Delegation {
	if lapsed(d, s.now()) {
		d.Status = "expired"
	}
	return d
}

// expireLapsed marks the tenant's lapsed open delegations to partner
// expired, in tx, with a delegation.expire record each: they stop counting
// as open, so the partner can be invited again.
func (s *Store) expireLapsed(ctx context.Context, tx *dbTx, tenant, partner string) ([]audit.Record, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+delegationCols+` FROM delegations WHERE tenant = ? AND partner = ? AND status IN ('invited', 'accepted')`, tenant, partner)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		d, err := scanDelegation(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		if lapsed(d, s.now()) {
			ids = append(ids, d.ID)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var recs []audit.Record
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE delegations SET status = 'expired', updated_at = ? WHERE id = ?`, s.stamp(), id); err != nil {
			return nil, err
		}
		r, err := s.afterDelegation(ctx, tx, "delegation.expire", id)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r...)
	}
	return recs, nil
}

// Invite creates an invitation from a tenant to a partner. A tenant has at
// most one open (invited or accepted) delegation per partner; one that has
// run out (an invitation unanswered past InvitationExpires, a partnership
// past Expires) is marked expired first and does not count. The invitation
// can be answered until d.InvitationExpires (default: DefaultInvitationTTL
// from now); the partner organisation is told by e-mail, in the same
// transaction.
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
		expires = stampOf(*d.Expires)
	}
	if d.InvitationExpires == nil {
		d.InvitationExpires = new(s.now().Add(DefaultInvitationTTL))
	}
	if !d.InvitationExpires.After(s.now()) {
		return nil, &FieldError{"invitation_expires", "must be in the future"}
	}
	err := s.write(ctx, "delegation.invite", func(tx *dbTx) ([]audit.Record, error) {
		recs, err := s.expireLapsed(ctx, tx, d.Tenant, d.Partner)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO delegations (`+delegationCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Tenant, d.Partner, d.Scope, toJSON(d.Products), b2i(d.Wallet), d.Status, expires, d.InvitedBy, stamp, stamp,
			stampOf(*d.InvitationExpires), d.Lang)
		switch {
		case err != nil && isUnique(err):
			return nil, conflict("tenant %s already has an open delegation to %s", d.Tenant, d.Partner)
		case err != nil && isForeignKey(err):
			return nil, &FieldError{"partner", "no such tenant or partner"}
		case err != nil:
			return nil, err
		}
		rec, err := s.afterDelegation(ctx, tx, "delegation.invite", d.ID)
		if err != nil {
			return nil, err
		}
		return append(recs, rec...), s.mailDelegation(ctx, tx, "partner_invitation", d.ID, "invite")
	})
	if err != nil {
		return nil, err
	}
	return s.Delegation(ctx, d.ID)
}

// mailDelegation queues the e-mail of kind about delegation id to the
// partner organisation (its contact address, else its admins), in tx; the
// idempotency key is the delegation, the event and its time.
func (s *Store) mailDelegation(ctx context.Context, tx *dbTx, kind, id, event string) error {
	d, err := scanDelegation(tx.QueryRowContext(ctx, `SELECT `+delegationCols+` FROM delegations WHERE id = ?`, id))
	if err != nil {
		return err
	}
	var tenantName string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM tenants WHERE id = ?`, d.Tenant).Scan(&tenantName); err != nil {
		return err
	}
	partnerName, to, err := partnerRecipients(ctx, tx, d.Partner)
	if err != nil {
		return err
	}
	data := map[string]any{"tenant_name": tenantName, "partner_name": partnerName}
	if kind == "partner_invitation" || kind == "partner_invitation_resent" {
		data["scope"] = d.Scope
		data["products"] = d.Products
		data["wallet"] = d.Wallet
		data["accept_path"] = PartnerInvitationPath(d.ID, "accept")
		data["reject_path"] = PartnerInvitationPath(d.ID, "reject")
		data["invited_by"] = d.InvitedBy
		if d.InvitationExpires != nil {
			data["expires_at"] = d.InvitationExpires.UTC().Format(time.RFC3339)
		}
		if d.Expires != nil {
			data["partnership_expires_at"] = d.Expires.UTC().Format(time.RFC3339)
		}
	}
	for _, addr := range to {
		key := kind + ":" + d.ID + ":" + event + ":" + stampOf(d.UpdatedAt) + ":" + addr
		if err := s.enqueueMail(ctx, tx, Mail{Key: key, Kind: kind, Tenant: d.Tenant, To: addr, Lang: d.Lang, Data: data}); err != nil {
			return err
		}
	}
	return nil
}

// PartnerInvitationPath is where a partner's user answers an invitation
// (GET shows it, POST answers): action is accept or reject.
func PartnerInvitationPath(id, action string) string {
	return "/.portero/partner-invitations/" + id + "/" + action
}

// Delegation returns one delegation.
func (s *Store) Delegation(ctx context.Context, id string) (*Delegation, error) {
	d, err := scanDelegation(s.queryRow(ctx, `SELECT `+delegationCols+` FROM delegations WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "delegation "+id)
	}
	return s.shown(d), nil
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
		out = append(out, s.shown(d))
	}
	return out, rows.Err()
}

// transitions says which delegation states each action moves from and to,
// and the e-mail it sends the partner organisation.
var transitions = map[string]struct {
	from []string
	to   string
	mail string
}{
	"resend":   {[]string{"invited"}, "invited", "partner_invitation_resent"},
	"withdraw": {[]string{"invited"}, "revoked", "partner_invitation_withdrawn"},
	"accept":   {[]string{"invited"}, "accepted", ""},
	"reject":   {[]string{"invited"}, "rejected", ""},
	"revoke":   {[]string{"accepted"}, "revoked", "partnership_revoked"},
}

// Transition applies a lifecycle action (resend, withdraw, accept, reject,
// revoke); an action the current state does not allow is a conflict. An
// invitation past its expiry cannot be accepted or rejected (resending it
// renews it for as long as it was first given); a partnership past its end
// is expired, not revoked. The partner organisation is e-mailed of a
// resend, a withdrawal and a revocation in the same transaction.
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
		status := d.Status
		if lapsed(d, s.now()) {
			status = "expired"
		}
		switch {
		case !allowed:
			return nil, conflict("cannot %s a delegation that is %s", action, d.Status)
		case (action == "accept" || action == "reject") && status == "expired":
			return nil, conflict("the invitation expired; ask the tenant to send it again")
		case action == "revoke" && status == "expired":
			return nil, conflict("the partnership has already ended (expired)")
		}
		stamp := s.stamp()
		if action == "resend" {
			// A new invitation period as long as the first one.
			ttl := DefaultInvitationTTL
			if d.InvitationExpires != nil && d.InvitationExpires.After(d.InvitedAt) {
				ttl = d.InvitationExpires.Sub(d.InvitedAt)
			}
			if d.Expires != nil && !d.Expires.After(s.now()) {
				return nil, conflict("the partnership's end (%s) has passed; invite the partner again", d.Expires.Format(time.RFC3339))
			}
			_, err = tx.ExecContext(ctx, `UPDATE delegations SET invited_at = ?, updated_at = ?, invitation_expires_at = ? WHERE id = ?`,
				stamp, stamp, stampOf(s.now().Add(ttl)), id)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE delegations SET status = ?, updated_at = ? WHERE id = ?`, tr.to, stamp, id)
		}
		if err != nil {
			return nil, err
		}
		recs, err := s.afterDelegation(ctx, tx, "delegation."+action, id)
		if err == nil && tr.mail != "" {
			err = s.mailDelegation(ctx, tx, tr.mail, id, action)
		}
		return recs, err
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
