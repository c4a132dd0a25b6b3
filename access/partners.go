package access

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/portero-gateway/portero/audit"
)

// CreatePartner adds a partner organisation.
func (s *Store) CreatePartner(ctx context.Context, p Partner) (*Partner, error) {
	if err := validatePartner(&p); err != nil {
		return nil, err
	}
	err := s.write(ctx, "partner.create", func(tx *dbTx) ([]audit.Record, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO partners (id, name, email) VALUES (?, ?, ?)`, p.ID, p.Name, p.Email)
		if err != nil && isUnique(err) {
			return nil, conflict("partner %q exists", p.ID)
		}
		return []audit.Record{s.change(ctx, "partner.create", "", "partner "+p.ID, p)}, err
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Partner returns one partner organisation.
func (s *Store) Partner(ctx context.Context, id string) (*Partner, error) {
	var p Partner
	err := s.queryRow(ctx, `SELECT id, name, email FROM partners WHERE id = ?`, id).Scan(&p.ID, &p.Name, &p.Email)
	return &p, notFound(err, "partner "+id)
}

// PartnerMatch is a partner organisation as a search shows it to a tenant:
// its id (what an invitation names), its name and its contact address
// masked (p•••@agency.example).
type PartnerMatch struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// MaxPartnerMatches bounds a partner search's answer.
const MaxPartnerMatches = 10

// SearchPartners finds partner organisations for a tenant to invite, and
// discloses little: q is either an exact contact e-mail address or the
// start of a name, at least 3 characters (case-insensitive); at most
// MaxPartnerMatches results, ordered by name.
func (s *Store) SearchPartners(ctx context.Context, q string) ([]PartnerMatch, error) {
	q = strings.TrimSpace(q)
	var rows *sql.Rows
	var err error
	switch {
	case strings.Contains(q, "@"):
		email, ferr := NormalEmail("q", q)
		if ferr != nil {
			return nil, ferr
		}
		rows, err = s.query(ctx, `SELECT id, name, email FROM partners WHERE lower(email) = ? ORDER BY lower(name), id LIMIT ?`, email, MaxPartnerMatches)
	case utf8.RuneCountInString(q) >= 3 && utf8.RuneCountInString(q) <= 200:
		prefix := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(q)) + "%"
		rows, err = s.query(ctx, `SELECT id, name, email FROM partners WHERE lower(name) LIKE ? ESCAPE '\' ORDER BY lower(name), id LIMIT ?`, prefix, MaxPartnerMatches)
	default:
		return nil, &FieldError{"q", "give the organisation's exact e-mail address, or at least 3 characters of the start of its name"}
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []PartnerMatch{}
	for rows.Next() {
		var m PartnerMatch
		if err := rows.Scan(&m.ID, &m.Name, &m.Email); err != nil {
			return nil, err
		}
		m.Email = MaskEmail(m.Email)
		out = append(out, m)
	}
	return out, rows.Err()
}

// MaskEmail shows an address only enough to recognise it: the first
// character of the local part and the domain (a•••@agency.example).
func MaskEmail(e string) string {
	at := strings.LastIndexByte(e, '@')
	if at < 1 {
		return ""
	}
	first, _ := utf8.DecodeRuneInString(e)
	return string(first) + "•••" + e[at:]
}

const partnerUserCols = `"user", partner, status, role, name, email`

func scanPartnerUser(row interface{ Scan(...any) error }) (*PartnerUser, error) {
	var pu PartnerUser
	if err := row.Scan(&pu.User, &pu.Partner, &pu.Status, &pu.Role, &pu.Name, &pu.Email); err != nil {
		return nil, err
	}
	return &pu, nil
}

// PutPartnerUser makes user a user of the partner organisation (a user
// belongs to at most one partner: this moves them from another). It is
// the system admins' and the CLI's way; partner admins use
// PutPartnerUserWithin.
func (s *Store) PutPartnerUser(ctx context.Context, pu PartnerUser) (*PartnerUser, error) {
	return s.putPartnerUser(ctx, pu, true)
}

// PutPartnerUserWithin adds or changes a user of the partner organisation
// who belongs to no other organisation (a conflict otherwise, without
// naming it): a partner admin manages their own organisation's users and
// cannot take another's.
func (s *Store) PutPartnerUserWithin(ctx context.Context, pu PartnerUser) (*PartnerUser, error) {
	return s.putPartnerUser(ctx, pu, false)
}

func (s *Store) putPartnerUser(ctx context.Context, pu PartnerUser, move bool) (*PartnerUser, error) {
	if err := validatePartnerUser(&pu); err != nil {
		return nil, err
	}
	err := s.write(ctx, "partner_user.put", func(tx *dbTx) ([]audit.Record, error) {
		if !move {
			var other string
			err := tx.QueryRowContext(ctx, `SELECT partner FROM partner_users WHERE "user" = ?`, pu.User).Scan(&other)
			switch {
			case err == nil && other != pu.Partner:
				return nil, conflict("user %s belongs to another partner organisation", pu.User)
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return nil, err
			}
		}
		return []audit.Record{s.change(ctx, "partner_user.put", "", "partner user "+pu.Partner+"/"+pu.User, pu)}, upsertPartnerUser(ctx, tx, &pu)
	})
	if err != nil {
		return nil, err
	}
	return &pu, nil
}

// PartnerUser returns one user of a partner organisation.
func (s *Store) PartnerUser(ctx context.Context, partner, user string) (*PartnerUser, error) {
	pu, err := scanPartnerUser(s.queryRow(ctx, `SELECT `+partnerUserCols+` FROM partner_users WHERE partner = ? AND "user" = ?`, partner, user))
	return pu, notFound(err, "user "+user+" of partner "+partner)
}

// PartnerUsers lists a partner organisation's users.
func (s *Store) PartnerUsers(ctx context.Context, partner string) ([]*PartnerUser, error) {
	rows, err := s.query(ctx, `SELECT `+partnerUserCols+` FROM partner_users WHERE partner = ? ORDER BY "user"`, partner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*PartnerUser{}
	for rows.Next() {
		pu, err := scanPartnerUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, pu)
	}
	return out, rows.Err()
}

// SetPartnerUserStatus deactivates or reactivates a partner's user; it
// takes effect on their very next request.
func (s *Store) SetPartnerUserStatus(ctx context.Context, partner, user, status string) (*PartnerUser, error) {
	if err := oneOf("status", status, MemberStatuses); err != nil {
		return nil, err
	}
	err := s.write(ctx, "partner_user.status", func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `UPDATE partner_users SET status = ? WHERE partner = ? AND "user" = ?`, status, partner, user)
		if err := affected(res, err, "user "+user+" of partner "+partner); err != nil {
			return nil, err
		}
		pu, err := scanPartnerUser(tx.QueryRowContext(ctx, `SELECT `+partnerUserCols+` FROM partner_users WHERE "user" = ?`, user))
		return []audit.Record{s.change(ctx, "partner_user.status", "", "partner user "+partner+"/"+user, pu)}, err
	})
	if err != nil {
		return nil, err
	}
	return s.PartnerUser(ctx, partner, user)
}

// RemovePartnerUser takes user out of the partner organisation.
func (s *Store) RemovePartnerUser(ctx context.Context, partner, user string) error {
	return s.write(ctx, "partner_user.remove", func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM partner_users WHERE partner = ? AND "user" = ?`, partner, user)
		return []audit.Record{s.change(ctx, "partner_user.remove", "", "partner user "+partner+"/"+user, nil)}, affected(res, err, "user "+user+" of partner "+partner)
	})
}

// PartnerOf returns the user's partner organisation, or "" when the user
// belongs to none (or is deactivated there).
func (s *Store) PartnerOf(ctx context.Context, user string) (string, error) {
	var partner string
	err := s.queryRow(ctx, `SELECT partner FROM partner_users WHERE "user" = ? AND status = 'active'`, user).Scan(&partner)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return partner, err
}

// PartnerRoleOf returns the user's role (admin or staff) in their partner
// organisation, "" when they are not an active user of one.
func (s *Store) PartnerRoleOf(ctx context.Context, user string) (string, error) {
	var role string
	err := s.queryRow(ctx, `SELECT role FROM partner_users WHERE "user" = ? AND status = 'active'`, user).Scan(&role)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return role, err
}

// partnerRecipients are the addresses a partner organisation's e-mails go
// to: its contact address, else its active admins' addresses.
func partnerRecipients(ctx context.Context, tx *dbTx, partner string) (name string, to []string, err error) {
	var email string
	if err := tx.QueryRowContext(ctx, `SELECT name, email FROM partners WHERE id = ?`, partner).Scan(&name, &email); err != nil {
		return "", nil, notFound(err, "partner "+partner)
	}
	if email != "" {
		return name, []string{email}, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT email FROM partner_users WHERE partner = ? AND role = 'admin' AND status = 'active' AND email != '' ORDER BY email`, partner)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return "", nil, err
		}
		to = append(to, e)
	}
	return name, to, rows.Err()
}

// validatePartner checks a partner organisation.
func validatePartner(p *Partner) error {
	if err := validID("id", p.ID); err != nil {
		return err
	}
	var err error
	if p.Name, err = validName("name", p.Name, false); err != nil {
		return err
	}
	p.Email, err = normalEmail("email", p.Email, true)
	return err
}

// validatePartnerUser checks a partner user and fills defaults.
func validatePartnerUser(pu *PartnerUser) error {
	if err := validID("partner", pu.Partner); err != nil {
		return err
	}
	if err := validUser("user", pu.User); err != nil {
		return err
	}
	if pu.Status == "" {
		pu.Status = "active"
	}
	if pu.Role == "" {
		pu.Role = "staff"
	}
	if err := oneOf("role", pu.Role, PartnerRoles); err != nil {
		return err
	}
	var err error
	if pu.Name, err = validName("name", pu.Name, true); err != nil {
		return err
	}
	if pu.Email, err = normalEmail("email", pu.Email, true); err != nil {
		return err
	}
	return oneOf("status", pu.Status, MemberStatuses)
}
