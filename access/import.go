package access

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/portero-gateway/portero/audit"
)

// ImportCounts says how many records of each kind an import wrote.
type ImportCounts struct {
	Tenants      int `json:"tenants"`
	Members      int `json:"members"`
	Partners     int `json:"partners"`
	PartnerUsers int `json:"partner_users"`
}

// ImportError is a bad line of an import; nothing of the import was written.
type ImportError struct {
	Line int
	Err  error
}

func (e *ImportError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *ImportError) Unwrap() error { return e.Err }

// importRecord is one line of an import: exactly one of its fields is set.
type importRecord struct {
	Tenant      *Tenant      `json:"tenant"`
	Member      *Member      `json:"member"`
	Partner     *Partner     `json:"partner"`
	PartnerUser *PartnerUser `json:"partner_user"`
}

// maxImportLine bounds one JSON line (a member with many fields is ~2 KB).
const maxImportLine = 1 << 20

// Import writes tenants, members, partners and partner users from JSON
// lines ({"tenant": {...}}, {"member": {...}}, {"partner": {...}},
// {"partner_user": {...}}; blank lines and lines starting with # are
// skipped) in one transaction: all of it or, at the first bad line, none of
// it. Records replace existing ones with the same key, so an import can be
// re-run; a member's tenant (or a partner user's partner) must exist in the
// store or come earlier in the file. It is the bulk path for moving an
// existing user base into Portero.
func (s *Store) Import(ctx context.Context, r io.Reader) (ImportCounts, error) {
	return s.ImportChecked(ctx, r, nil)
}

// ImportChecked is Import with every member's names (role, profile,
// features, rights) checked against the policy's catalogue first; nil
// checks nothing beyond the store's own rules.
func (s *Store) ImportChecked(ctx context.Context, r io.Reader, cat *Catalogue) (ImportCounts, error) {
	var n ImportCounts
	stamp := s.stamp()
	sum := sha256.New()
	r = io.TeeReader(r, sum)
	consumed := false
	err := s.write(ctx, "import", func(tx *dbTx) ([]audit.Record, error) {
		// A retried write cannot read the input again.
		if consumed {
			return nil, errors.New("import: the store was busy after the input was read; nothing was written, run the import again")
		}
		consumed = true
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), maxImportLine)
		line := 0
		for sc.Scan() {
			line++
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 || text[0] == '#' {
				continue
			}
			if err := importLine(ctx, tx, text, stamp, cat, &n); err != nil {
				return nil, &ImportError{Line: line, Err: err}
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, &ImportError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", maxImportLine)}
			}
			return nil, fmt.Errorf("read import: %w", err)
		}
		// One record for the import: what it wrote and the SHA-256 of the
		// input, which names every record of it.
		return []audit.Record{s.change(ctx, "import", "", "import sha256:"+hex.EncodeToString(sum.Sum(nil)), n)}, nil
	})
	if err != nil {
		return ImportCounts{}, err
	}
	return n, nil
}

func importLine(ctx context.Context, tx *dbTx, text []byte, stamp string, cat *Catalogue, n *ImportCounts) error {
	var rec importRecord
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return fmt.Errorf("not a record: %v (write one JSON object per line with one key: tenant, member, partner or partner_user)", err)
	}
	if dec.More() {
		return errors.New("more than one JSON value on the line")
	}
	set := 0
	for _, p := range []bool{rec.Tenant != nil, rec.Member != nil, rec.Partner != nil, rec.PartnerUser != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return errors.New("a line holds exactly one of tenant, member, partner or partner_user")
	}
	switch {
	case rec.Tenant != nil:
		t := rec.Tenant
		if err := ValidateTenant(t); err != nil {
			return prefixField("tenant", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, hostnames = excluded.hostnames, status = excluded.status,
	owner = excluded.owner, master_access = excluded.master_access, owner_email = excluded.owner_email,
	default_profile = excluded.default_profile, notify_master = excluded.notify_master`,
			t.ID, t.Name, toJSON(t.Hostnames), t.Status, t.Owner, b2i(t.MasterAccess), stampOr(t.CreatedAt, stamp),
			t.OwnerEmail, t.DefaultProfile, b2i(*t.NotifyMaster))
		if err != nil {
			return err
		}
		n.Tenants++
	case rec.Member != nil:
		if err := ValidateMember(rec.Member); err != nil {
			return prefixField("member", err)
		}
		if cat != nil {
			if err := cat.CheckMember(rec.Member); err != nil {
				return prefixField("member", err)
			}
		}
		if err := upsertMember(ctx, tx, rec.Member, stamp); err != nil {
			return prefixField("member", err)
		}
		n.Members++
	case rec.Partner != nil:
		p := rec.Partner
		if err := validatePartner(p); err != nil {
			return prefixField("partner", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO partners (id, name, email) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email`, p.ID, p.Name, p.Email); err != nil {
			return err
		}
		n.Partners++
	case rec.PartnerUser != nil:
		if err := validatePartnerUser(rec.PartnerUser); err != nil {
			return prefixField("partner_user", err)
		}
		if err := upsertPartnerUser(ctx, tx, rec.PartnerUser); err != nil {
			return prefixField("partner_user", err)
		}
		n.PartnerUsers++
	}
	return nil
}

// prefixField names the record kind in a field error: "member.role: ...".
func prefixField(kind string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: kind + "." + fe.Field, Msg: fe.Msg}
	}
	return err
}

// stampOr keeps a creation time the import carries, else uses now.
func stampOr(t time.Time, now string) string {
	if t.IsZero() {
		return now
	}
	return stampOf(t)
}

// upsertMember writes a member in tx, replacing one with the same key.
func upsertMember(ctx context.Context, tx *dbTx, m *Member, stamp string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO members (`+memberCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, "user") DO UPDATE SET role = excluded.role, businesses = excluded.businesses, locations = excluded.locations,
	features = excluded.features, fields = excluded.fields, rights = excluded.rights, profile = excluded.profile,
	status = excluded.status, updated_at = excluded.updated_at, name = excluded.name, email = excluded.email`,
		m.Tenant, m.User, m.Role, toJSON(m.Businesses), toJSON(m.Locations), toJSON(m.Features), toJSON(m.Fields),
		toJSON(m.Rights), m.Profile, m.Status, stamp, m.Name, m.Email)
	if err != nil && isForeignKey(err) {
		return &FieldError{"tenant", "no such tenant"}
	}
	return err
}

// upsertPartnerUser ties a user to a partner in tx (a user belongs to at
// most one partner, so this moves them).
func upsertPartnerUser(ctx context.Context, tx *dbTx, pu *PartnerUser) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO partner_users ("user", partner, status, role, name, email) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT ("user") DO UPDATE SET partner = excluded.partner, status = excluded.status, role = excluded.role,
	name = excluded.name, email = excluded.email`, pu.User, pu.Partner, pu.Status, pu.Role, pu.Name, pu.Email)
	if err != nil && isForeignKey(err) {
		return &FieldError{"partner", "no such partner"}
	}
	return err
}
