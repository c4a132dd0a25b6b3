package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portero-gateway/portero/audit"
)

// MemberInvitation is a member invited by e-mail: a pending membership
// bound to an address, with the role, profile, rights and scope it will
// have. The invitee follows the e-mailed link (a single-use token, of
// which only the SHA-256 is stored), signs in at the IdP, and becomes a
// member under their own sub when the IdP vouches for the same address.
type MemberInvitation struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	// Member is the membership to create (its Tenant, User, Name, Email
	// and Status are filled in at acceptance).
	Member Member `json:"member"`
	Lang   string `json:"lang,omitempty"`
	// Status is pending, accepted, withdrawn or expired (a pending
	// invitation past ExpiresAt reads as expired).
	Status     string    `json:"status"`
	ExpiresAt  time.Time `json:"expires_at"`
	InvitedBy  string    `json:"invited_by"`
	InvitedAt  time.Time `json:"invited_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	AcceptedBy string    `json:"accepted_by,omitempty"`
}

// Errors of accepting an invitation, each a conflict (409) the
// acceptance page explains.
var (
	ErrInvitationUsed      = fmt.Errorf("%w: this invitation has already been used", ErrConflict)
	ErrInvitationWithdrawn = fmt.Errorf("%w: this invitation was withdrawn", ErrConflict)
	ErrInvitationExpired   = fmt.Errorf("%w: this invitation has expired; ask for a new one", ErrConflict)
	ErrEmailNotVerified    = fmt.Errorf("%w: your identity provider has not verified your e-mail address", ErrConflict)
	ErrEmailMismatch       = fmt.Errorf("%w: this invitation is for another e-mail address", ErrConflict)
	ErrAlreadyMember       = fmt.Errorf("%w: you are already a member of this tenant", ErrConflict)
)

const invitationCols = `id, tenant, email, name, member, lang, status, expires_at, invited_by, invited_at, updated_at, accepted_by`

func scanInvitation(row interface{ Scan(...any) error }) (*MemberInvitation, error) {
	var inv MemberInvitation
	var member, expires, invited, updated string
	if err := row.Scan(&inv.ID, &inv.Tenant, &inv.Email, &inv.Name, &member, &inv.Lang, &inv.Status, &expires,
		&inv.InvitedBy, &invited, &updated, &inv.AcceptedBy); err != nil {
		return nil, err
	}
	inv.Member = fromJSON[Member](member)
	inv.ExpiresAt, inv.InvitedAt, inv.UpdatedAt = parseTime(expires), parseTime(invited), parseTime(updated)
	return &inv, nil
}

// shownInvitation is inv as the API shows it: expired once past its expiry.
func (s *Store) shownInvitation(inv *MemberInvitation) *MemberInvitation {
	if inv.Status == "pending" && !s.now().Before(inv.ExpiresAt) {
		inv.Status = "expired"
	}
	return inv
}

// InvitationToken makes a new single-use token and its stored hash.
func invitationToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, tokenHash(token)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// MemberInvitationPath is where an invitee accepts (the e-mailed link).
func MemberInvitationPath(token string) string { return "/.portero/invitations/" + token }

// ValidateInvitation checks an invitation and fills defaults: the e-mail
// address (kept in lower case), the name, and the membership as
// ValidateMember checks it (the invitee's sub is not known yet).
func ValidateInvitation(inv *MemberInvitation) error {
	if err := validID("tenant", inv.Tenant); err != nil {
		return err
	}
	var err error
	if inv.Email, err = normalEmail("email", inv.Email, false); err != nil {
		return err
	}
	if inv.Name, err = validName("name", inv.Name, true); err != nil {
		return err
	}
	if err := validUser("invited_by", inv.InvitedBy); err != nil {
		return err
	}
	m := &inv.Member
	m.Tenant, m.User, m.Name, m.Email, m.Status = inv.Tenant, "invitee", inv.Name, inv.Email, "active"
	if err := ValidateMember(m); err != nil {
		return err
	}
	m.User = ""
	return nil
}

// InviteMember records an invitation and e-mails its link, in one
// transaction; it returns the invitation and the link's token (shown only
// now: the store keeps its hash). The invitation can be accepted until
// inv.ExpiresAt (default DefaultInvitationTTL from now). A pending
// invitation to the same address is a conflict, unless it has expired (it
// is then marked so).
func (s *Store) InviteMember(ctx context.Context, inv MemberInvitation) (*MemberInvitation, string, error) {
	if err := ValidateInvitation(&inv); err != nil {
		return nil, "", err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	inv.ID = "inv_" + hex.EncodeToString(id[:])
	if inv.ExpiresAt.IsZero() {
		inv.ExpiresAt = s.now().Add(DefaultInvitationTTL)
	}
	if !inv.ExpiresAt.After(s.now()) {
		return nil, "", &FieldError{"expires_at", "must be in the future"}
	}
	token, hash := invitationToken()
	stamp := s.stamp()
	err := s.write(ctx, "member_invitation.create", func(tx *dbTx) ([]audit.Record, error) {
		recs, err := s.expireInvitations(ctx, tx, `tenant = ? AND email = ?`, inv.Tenant, inv.Email)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO member_invitations (id, tenant, email, name, member, lang, token_hash, status, expires_at, invited_by, invited_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`, inv.ID, inv.Tenant, inv.Email, inv.Name, toJSON(inv.Member), inv.Lang, hash,
			stampOf(inv.ExpiresAt), inv.InvitedBy, stamp, stamp)
		switch {
		case err != nil && isUnique(err):
			return nil, conflict("%s already has a pending invitation to %s; resend or withdraw it", inv.Email, inv.Tenant)
		case err != nil && isForeignKey(err):
			return nil, fmt.Errorf("tenant %s: %w", inv.Tenant, ErrNotFound)
		case err != nil:
			return nil, err
		}
		rec, err := s.afterInvitation(ctx, tx, "member_invitation.create", inv.ID)
		if err != nil {
			return nil, err
		}
		return append(recs, rec), s.mailInvitation(ctx, tx, inv.ID, token, "create")
	})
	if err != nil {
		return nil, "", err
	}
	saved, err := s.MemberInvitation(ctx, inv.Tenant, inv.ID)
	return saved, token, err
}

// expireInvitations marks pending invitations past their expiry that match
// where as expired, with a member_invitation.expire record each.
func (s *Store) expireInvitations(ctx context.Context, tx *dbTx, where string, args ...any) ([]audit.Record, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM member_invitations WHERE status = 'pending' AND expires_at <= ? AND `+where,
		append([]any{stampOf(s.now())}, args...)...)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var recs []audit.Record
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE member_invitations SET status = 'expired', updated_at = ? WHERE id = ?`, s.stamp(), id); err != nil {
			return nil, err
		}
		rec, err := s.afterInvitation(ctx, tx, "member_invitation.expire", id)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// afterInvitation is the audit record of a change to invitation id, with
// the invitation as it is now in tx (never its token).
func (s *Store) afterInvitation(ctx context.Context, tx *dbTx, event, id string) (audit.Record, error) {
	inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationCols+` FROM member_invitations WHERE id = ?`, id))
	if err != nil {
		return audit.Record{}, err
	}
	return s.change(ctx, event, inv.Tenant, "member invitation "+inv.ID+" <"+inv.Email+">", inv), nil
}

// mailInvitation queues the invitation e-mail with the link for token.
func (s *Store) mailInvitation(ctx context.Context, tx *dbTx, id, token, event string) error {
	inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationCols+` FROM member_invitations WHERE id = ?`, id))
	if err != nil {
		return err
	}
	var tenantName string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM tenants WHERE id = ?`, inv.Tenant).Scan(&tenantName); err != nil {
		return err
	}
	return s.enqueueMail(ctx, tx, Mail{
		Key: "member_invitation:" + inv.ID + ":" + event + ":" + stampOf(inv.UpdatedAt), Kind: "member_invitation",
		Tenant: inv.Tenant, To: inv.Email, Lang: inv.Lang,
		Data: map[string]any{
			"tenant_name": tenantName, "name": inv.Name, "role": inv.Member.Role, "profile": inv.Member.Profile,
			"accept_path": MemberInvitationPath(token), "expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339),
			"invited_by": inv.InvitedBy,
		},
	})
}

// MemberInvitation returns one of a tenant's invitations.
func (s *Store) MemberInvitation(ctx context.Context, tenant, id string) (*MemberInvitation, error) {
	inv, err := scanInvitation(s.queryRow(ctx, `SELECT `+invitationCols+` FROM member_invitations WHERE tenant = ? AND id = ?`, tenant, id))
	if err != nil {
		return nil, notFound(err, "invitation "+id)
	}
	return s.shownInvitation(inv), nil
}

// MemberInvitations lists a tenant's invitations, newest first; pending
// only unless all.
func (s *Store) MemberInvitations(ctx context.Context, tenant string, all bool) ([]*MemberInvitation, error) {
	q := `SELECT ` + invitationCols + ` FROM member_invitations WHERE tenant = ?`
	if !all {
		q += ` AND status = 'pending'`
	}
	rows, err := s.query(ctx, q+` ORDER BY invited_at DESC, id LIMIT 1000`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*MemberInvitation{}
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s.shownInvitation(inv))
	}
	return out, rows.Err()
}

// InvitationByToken returns the invitation a link's token opens (with its
// tenant's name), in whatever state it is: ErrNotFound for a token that
// names none.
func (s *Store) InvitationByToken(ctx context.Context, token string) (*MemberInvitation, string, error) {
	if token == "" || len(token) > 128 {
		return nil, "", fmt.Errorf("invitation: %w", ErrNotFound)
	}
	var tenantName string
	inv, err := scanInvitation(invitationNameScanner{s.queryRow(ctx, `SELECT `+prefixed("i.", invitationCols)+`, t.name
FROM member_invitations i JOIN tenants t ON t.id = i.tenant WHERE i.token_hash = ?`, tokenHash(token)), &tenantName})
	if err != nil {
		return nil, "", notFound(err, "invitation")
	}
	return s.shownInvitation(inv), tenantName, nil
}

type invitationNameScanner struct {
	row  scanner
	name *string
}

func (n invitationNameScanner) Scan(dest ...any) error { return n.row.Scan(append(dest, n.name)...) }

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// ResendInvitation gives a pending (or expired) invitation a new token
// and a new period as long as the first, e-mails the new link and returns
// the invitation and the token; the old link stops working.
func (s *Store) ResendInvitation(ctx context.Context, tenant, id string) (*MemberInvitation, string, error) {
	token, hash := invitationToken()
	err := s.write(ctx, "member_invitation.resend", func(tx *dbTx) ([]audit.Record, error) {
		inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationCols+` FROM member_invitations WHERE tenant = ? AND id = ?`, tenant, id))
		if err != nil {
			return nil, notFound(err, "invitation "+id)
		}
		if inv.Status != "pending" && inv.Status != "expired" {
			return nil, conflict("cannot resend an invitation that is %s", inv.Status)
		}
		ttl := DefaultInvitationTTL
		if inv.ExpiresAt.After(inv.InvitedAt) {
			ttl = inv.ExpiresAt.Sub(inv.InvitedAt)
		}
		stamp := s.stamp()
		_, err = tx.ExecContext(ctx, `UPDATE member_invitations SET token_hash = ?, status = 'pending', expires_at = ?, invited_at = ?, updated_at = ? WHERE id = ?`,
			hash, stampOf(s.now().Add(ttl)), stamp, stamp, id)
		if err != nil && isUnique(err) {
			return nil, conflict("%s has another pending invitation to %s", inv.Email, tenant)
		}
		if err != nil {
			return nil, err
		}
		rec, err := s.afterInvitation(ctx, tx, "member_invitation.resend", id)
		if err != nil {
			return nil, err
		}
		return []audit.Record{rec}, s.mailInvitation(ctx, tx, id, token, "resend")
	})
	if err != nil {
		return nil, "", err
	}
	inv, err := s.MemberInvitation(ctx, tenant, id)
	return inv, token, err
}

// WithdrawInvitation withdraws a pending invitation: its link stops
// working.
func (s *Store) WithdrawInvitation(ctx context.Context, tenant, id string) (*MemberInvitation, error) {
	err := s.write(ctx, "member_invitation.withdraw", func(tx *dbTx) ([]audit.Record, error) {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM member_invitations WHERE tenant = ? AND id = ?`, tenant, id).Scan(&status)
		if err != nil {
			return nil, notFound(err, "invitation "+id)
		}
		if status != "pending" && status != "expired" {
			return nil, conflict("cannot withdraw an invitation that is %s", status)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE member_invitations SET status = 'withdrawn', updated_at = ? WHERE id = ?`, s.stamp(), id); err != nil {
			return nil, err
		}
		rec, err := s.afterInvitation(ctx, tx, "member_invitation.withdraw", id)
		return []audit.Record{rec}, err
	})
	if err != nil {
		return nil, err
	}
	return s.MemberInvitation(ctx, tenant, id)
}

// Invitee is who follows an invitation link: their sub and what their
// identity provider says of their e-mail address.
type Invitee struct {
	Subject       string
	Email         string
	EmailVerified bool
}

// AcceptInvitation binds the invitation the token opens to the invitee:
// only when the invitation is pending and unexpired, and the invitee's
// e-mail address is verified by their identity provider and is the one
// invited (case-insensitive). The member is created under the invitee's
// sub and the invitation marked accepted in one transaction, so a token
// works once.
func (s *Store) AcceptInvitation(ctx context.Context, token string, who Invitee) (*Member, error) {
	if err := validUser("sub", who.Subject); err != nil {
		return nil, err
	}
	var tenant string
	err := s.write(ctx, "member_invitation.accept", func(tx *dbTx) ([]audit.Record, error) {
		inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationCols+` FROM member_invitations WHERE token_hash = ?`, tokenHash(token)))
		if err != nil {
			return nil, notFound(err, "invitation")
		}
		tenant = inv.Tenant
		switch {
		case inv.Status == "accepted":
			return nil, ErrInvitationUsed
		case inv.Status == "withdrawn":
			return nil, ErrInvitationWithdrawn
		case inv.Status == "expired" || !s.now().Before(inv.ExpiresAt):
			return nil, ErrInvitationExpired
		case !who.EmailVerified:
			return nil, ErrEmailNotVerified
		case !strings.EqualFold(strings.TrimSpace(who.Email), inv.Email):
			return nil, ErrEmailMismatch
		}
		var exists int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM members WHERE tenant = ? AND "user" = ?`, inv.Tenant, who.Subject).Scan(&exists)
		switch {
		case err == nil:
			return nil, ErrAlreadyMember
		case !errors.Is(err, sql.ErrNoRows):
			return nil, err
		}
		m := inv.Member
		m.Tenant, m.User, m.Name, m.Email, m.Status = inv.Tenant, who.Subject, inv.Name, inv.Email, "active"
		if err := ValidateMember(&m); err != nil {
			return nil, err
		}
		if err := upsertMember(ctx, tx, &m, s.stamp()); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE member_invitations SET status = 'accepted', accepted_by = ?, updated_at = ? WHERE id = ?`,
			who.Subject, s.stamp(), inv.ID); err != nil {
			return nil, err
		}
		recs, err := s.afterMember(ctx, tx, "member.put", inv.Tenant, who.Subject, nil)
		if err != nil {
			return nil, err
		}
		rec, err := s.afterInvitation(ctx, tx, "member_invitation.accept", inv.ID)
		return append(recs, rec), err
	})
	if err != nil {
		return nil, err
	}
	return s.Member(ctx, tenant, who.Subject)
}
