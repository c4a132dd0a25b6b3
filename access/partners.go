package access

import (
	"context"
	"database/sql"
	"strings"

	"github.com/portero-gateway/portero/audit"
)

// CreatePartner adds a partner organisation.
func (s *Store) CreatePartner(ctx context.Context, p Partner) (*Partner, error) {
	if err := validatePartner(&p); err != nil {
		return nil, err
	}
	err := s.write(ctx, "partner.create", func(tx *dbTx) ([]audit.Record, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO partners (id, name) VALUES (?, ?)`, p.ID, p.Name)
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
	err := s.queryRow(ctx, `SELECT id, name FROM partners WHERE id = ?`, id).Scan(&p.ID, &p.Name)
	return &p, notFound(err, "partner "+id)
}

// PutPartnerUser makes user a user of the partner organisation (a user
// belongs to at most one partner).
func (s *Store) PutPartnerUser(ctx context.Context, pu PartnerUser) (*PartnerUser, error) {
	if err := validatePartnerUser(&pu); err != nil {
		return nil, err
	}
	err := s.write(ctx, "partner_user.put", func(tx *dbTx) ([]audit.Record, error) {
		return []audit.Record{s.change(ctx, "partner_user.put", "", "partner user "+pu.Partner+"/"+pu.User, pu)}, upsertPartnerUser(ctx, tx, &pu)
	})
	if err != nil {
		return nil, err
	}
	return &pu, nil
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

// validatePartner checks a partner organisation.
func validatePartner(p *Partner) error {
	if err := validID("id", p.ID); err != nil {
		return err
	}
	if strings.TrimSpace(p.Name) == "" {
		return &FieldError{"name", "is required"}
	}
	return nil
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
	return oneOf("status", pu.Status, MemberStatuses)
}
