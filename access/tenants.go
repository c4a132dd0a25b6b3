package access

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/portero-gateway/portero/audit"
)

const tenantCols = `id, name, hostnames, status, owner, master_access, created_at, owner_email, default_profile, notify_master`

func scanTenant(row interface{ Scan(...any) error }) (*Tenant, error) {
	var t Tenant
	var hosts, created string
	var master, notify int
	if err := row.Scan(&t.ID, &t.Name, &hosts, &t.Status, &t.Owner, &master, &created, &t.OwnerEmail, &t.DefaultProfile, &notify); err != nil {
		return nil, err
	}
	t.Hostnames = fromJSON[[]string](hosts)
	t.MasterAccess = master == 1
	t.NotifyMaster = new(notify == 1)
	t.CreatedAt = parseTime(created)
	return &t, nil
}

// CreateTenant adds a tenant; an existing id is a conflict.
func (s *Store) CreateTenant(ctx context.Context, t Tenant) (*Tenant, error) {
	if err := ValidateTenant(&t); err != nil {
		return nil, err
	}
	t.CreatedAt = s.now().UTC()
	err := s.write(ctx, "tenant.create", func(tx *dbTx) ([]audit.Record, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, toJSON(t.Hostnames), t.Status, t.Owner, b2i(t.MasterAccess), stampOf(t.CreatedAt),
			t.OwnerEmail, t.DefaultProfile, b2i(*t.NotifyMaster))
		if err != nil && isUnique(err) {
			return nil, conflict("tenant %q exists", t.ID)
		}
		return []audit.Record{s.change(ctx, "tenant.create", t.ID, "tenant "+t.ID, t)}, err
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// UpdateTenant replaces a tenant's name, hostnames, status, owner, the
// owner's e-mail, default profile and master-access settings.
func (s *Store) UpdateTenant(ctx context.Context, t Tenant) (*Tenant, error) {
	if err := ValidateTenant(&t); err != nil {
		return nil, err
	}
	err := s.write(ctx, "tenant.update", func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `UPDATE tenants SET name = ?, hostnames = ?, status = ?, owner = ?, master_access = ?,
	owner_email = ?, default_profile = ?, notify_master = ? WHERE id = ?`,
			t.Name, toJSON(t.Hostnames), t.Status, t.Owner, b2i(t.MasterAccess), t.OwnerEmail, t.DefaultProfile, b2i(*t.NotifyMaster), t.ID)
		if err := affected(res, err, "tenant "+t.ID); err != nil {
			return nil, err
		}
		now, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, t.ID))
		return []audit.Record{s.change(ctx, "tenant.update", t.ID, "tenant "+t.ID, now)}, err
	})
	if err != nil {
		return nil, err
	}
	return s.Tenant(ctx, t.ID)
}

// TenantSettings are what a tenant's owner changes about their tenant
// (PATCH /tenants/{t}/settings): nil fields keep their value.
type TenantSettings struct {
	OwnerEmail     *string `json:"owner_email"`
	DefaultProfile *string `json:"default_profile"`
	NotifyMaster   *bool   `json:"notify_master"`
}

// UpdateTenantSettings changes the owner's settings of a tenant.
func (s *Store) UpdateTenantSettings(ctx context.Context, id string, set TenantSettings) (*Tenant, error) {
	if set.OwnerEmail != nil {
		e, err := normalEmail("owner_email", *set.OwnerEmail, true)
		if err != nil {
			return nil, err
		}
		set.OwnerEmail = &e
	}
	if set.DefaultProfile != nil && *set.DefaultProfile != "" && !profilePattern.MatchString(*set.DefaultProfile) {
		return nil, &FieldError{"default_profile", "must be a profile name such as services, accounting or full"}
	}
	err := s.write(ctx, "tenant.settings", func(tx *dbTx) ([]audit.Record, error) {
		t, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
		if err != nil {
			return nil, notFound(err, "tenant "+id)
		}
		if set.OwnerEmail != nil {
			t.OwnerEmail = *set.OwnerEmail
		}
		if set.DefaultProfile != nil {
			t.DefaultProfile = *set.DefaultProfile
		}
		if set.NotifyMaster != nil {
			t.NotifyMaster = set.NotifyMaster
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET owner_email = ?, default_profile = ?, notify_master = ? WHERE id = ?`,
			t.OwnerEmail, t.DefaultProfile, b2i(*t.NotifyMaster), id); err != nil {
			return nil, err
		}
		return []audit.Record{s.change(ctx, "tenant.settings", id, "tenant "+id, t)}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.Tenant(ctx, id)
}

// Tenant returns one tenant.
func (s *Store) Tenant(ctx context.Context, id string) (*Tenant, error) {
	t, err := scanTenant(s.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	return t, notFound(err, "tenant "+id)
}

// TenantPage is one page of a tenant listing.
type TenantPage struct {
	Tenants []*TenantSummary `json:"tenants"`
	Total   int              `json:"total"`
}

// TenantSummary is a tenant with the counts a listing shows.
type TenantSummary struct {
	*Tenant
	Members int `json:"members"`
	// ActiveMaster counts open, unexpired master-access sessions.
	ActiveMaster int `json:"active_master_sessions"`
}

// Tenants lists tenants whose id or name contains query, a page at a time.
func (s *Store) Tenants(ctx context.Context, query string, limit, offset int) (*TenantPage, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query) + "%"
	page := &TenantPage{Tenants: []*TenantSummary{}}
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM tenants WHERE lower(id) LIKE lower(?) ESCAPE '\' OR lower(name) LIKE lower(?) ESCAPE '\'`, like, like).Scan(&page.Total); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT `+tenantCols+`,
	(SELECT COUNT(*) FROM members m WHERE m.tenant = tenants.id),
	(SELECT COUNT(*) FROM master_sessions ms WHERE ms.tenant = tenants.id AND ms.ended_at IS NULL AND ms.expires_at > ?)
FROM tenants WHERE lower(id) LIKE lower(?) ESCAPE '\' OR lower(name) LIKE lower(?) ESCAPE '\' ORDER BY id LIMIT ? OFFSET ?`, stampOf(s.now()), like, like, limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var sum TenantSummary
		t, err := scanTenant(countsScanner{rows, &sum.Members, &sum.ActiveMaster})
		if err != nil {
			return nil, err
		}
		sum.Tenant = t
		page.Tenants = append(page.Tenants, &sum)
	}
	return page, rows.Err()
}

// countsScanner scans a tenant row followed by two counts.
type countsScanner struct {
	rows         *sql.Rows
	members, mas *int
}

func (c countsScanner) Scan(dest ...any) error {
	return c.rows.Scan(append(dest, c.members, c.mas)...)
}

// DeleteTenant removes a tenant with its members and delegations.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	return s.write(ctx, "tenant.delete", func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id)
		return []audit.Record{s.change(ctx, "tenant.delete", id, "tenant "+id, nil)}, affected(res, err, fmt.Sprintf("tenant %s", id))
	})
}

// UserTenant is a tenant a user owns or is a member of, with their role
// there ("owner" for the owner).
type UserTenant struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Role   string `json:"role"`
}

// TenantsOf lists the tenants user owns or is a member of.
func (s *Store) TenantsOf(ctx context.Context, user string) ([]UserTenant, error) {
	rows, err := s.query(ctx, `SELECT id, name, status, 'owner' FROM tenants WHERE owner = ?
UNION SELECT t.id, t.name, t.status, m.role FROM members m JOIN tenants t ON t.id = m.tenant WHERE m."user" = ? AND t.owner != ?
ORDER BY 1`, user, user, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []UserTenant{}
	for rows.Next() {
		var ut UserTenant
		if err := rows.Scan(&ut.ID, &ut.Name, &ut.Status, &ut.Role); err != nil {
			return nil, err
		}
		out = append(out, ut)
	}
	return out, rows.Err()
}
