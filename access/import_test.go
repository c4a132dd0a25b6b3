package access

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const goodImport = `# tenants first, then their members
{"tenant": {"id": "acme", "name": "Acme", "owner": "u-owner", "master_access": true, "hostnames": ["acme.example.com"]}}

{"member": {"tenant": "acme", "user": "u-owner", "role": "administrator"}}
{"member": {"tenant": "acme", "user": "u-loc", "role": "location_manager", "locations": ["l1"], "features": {"reviews": "edit"}, "fields": {"reviews": ["reply"]}}}
{"partner": {"id": "partnerco", "name": "Partner Co"}}
{"partner_user": {"partner": "partnerco", "user": "u-partner"}}
`

func TestImportWritesEverythingOnce(t *testing.T) { eachStore(t, testImportWritesEverythingOnce) }

func testImportWritesEverythingOnce(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	gen := s.Generation()
	n, err := s.Import(ctx, strings.NewReader(goodImport))
	if err != nil {
		t.Fatal(err)
	}
	if n != (ImportCounts{Tenants: 1, Members: 2, Partners: 1, PartnerUsers: 1}) {
		t.Fatalf("counts %+v", n)
	}
	if s.Generation() != gen+1 {
		t.Fatalf("an import is one write: generation %d → %d", gen, s.Generation())
	}
	m, err := s.Member(ctx, "acme", "u-loc")
	if err != nil || m.Features["reviews"] != "edit" || m.Fields["reviews"][0] != "reply" || m.Status != "active" {
		t.Fatalf("member %+v, %v", m, err)
	}
	if p, _ := s.PartnerOf(ctx, "u-partner"); p != "partnerco" {
		t.Fatalf("partner of u-partner: %q", p)
	}
	// Re-running converges: records replace those with the same key.
	changed := strings.Replace(goodImport, `"role": "location_manager"`, `"role": "account_manager"`, 1)
	if _, err := s.Import(ctx, strings.NewReader(changed)); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if m, _ := s.Member(ctx, "acme", "u-loc"); m.Role != "account_manager" {
		t.Fatalf("re-run did not replace the member: %+v", m)
	}
	if ms, _ := s.Members(ctx, "acme"); len(ms) != 2 {
		t.Fatalf("re-run duplicated members: %d", len(ms))
	}
}

// TestImportRefusesBadLinesAndWritesNothing: each bad line is named, and the
// good lines before it are not written either.
func TestImportRefusesBadLinesAndWritesNothing(t *testing.T) {
	eachStore(t, testImportRefusesBadLinesAndWritesNothing)
}

func testImportRefusesBadLinesAndWritesNothing(t *testing.T) {
	prefix := `{"tenant": {"id": "first", "name": "First"}}` + "\n"
	cases := []struct {
		name, line, want string
	}{
		{"not JSON", `{"tenant": `, "not a record"},
		{"unknown kind", `{"user": {"id": "x"}}`, "not a record"},
		{"unknown field", `{"tenant": {"id": "x", "name": "X", "plan": "gold"}}`, "unknown field"},
		{"two kinds", `{"tenant": {"id": "x", "name": "X"}, "partner": {"id": "p", "name": "P"}}`, "exactly one"},
		{"empty object", `{}`, "exactly one"},
		{"two values", `{"partner": {"id": "p", "name": "P"}} {"partner": {"id": "q", "name": "Q"}}`, "more than one"},
		{"bad tenant id", `{"tenant": {"id": "Acme!", "name": "X"}}`, "tenant.id:"},
		{"bad role", `{"member": {"tenant": "first", "user": "u", "role": "god"}}`, "member.role:"},
		{"member of a missing tenant", `{"member": {"tenant": "nowhere", "user": "u", "role": "administrator"}}`, "member.tenant: no such tenant"},
		{"field right without edit", `{"member": {"tenant": "first", "user": "u", "role": "administrator", "features": {"reviews": "read"}, "fields": {"reviews": ["reply"]}}}`, "member.fields.reviews:"},
		{"user with a control character", `{"member": {"tenant": "first", "user": "u\u0001", "role": "administrator"}}`, "member.user:"},
		{"partner user of a missing partner", `{"partner_user": {"partner": "nobody", "user": "u"}}`, "partner_user.partner: no such partner"},
		{"partner without a name", `{"partner": {"id": "p"}}`, "partner.name:"},
		{"line too long", `{"tenant": {"id": "x", "name": "` + strings.Repeat("a", maxImportLine) + `"}}`, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, _ := openStore(t)
			ctx := context.Background()
			_, err := s.Import(ctx, strings.NewReader(prefix+"\n"+c.line+"\n"))
			var ie *ImportError
			if !errors.As(err, &ie) || ie.Line != 3 || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want line 3 and %q", err, c.want)
			}
			if _, err := s.Tenant(ctx, "first"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the line before the bad one was written: %v", err)
			}
		})
	}
}

// People as the product describes them come in by import too: members'
// names and e-mails, the tenant's owner e-mail, default profile and
// notification setting, a partner's contact e-mail, its admins.
func TestImportPeople(t *testing.T) { eachStore(t, testImportPeople) }

func testImportPeople(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	const people = `{"tenant": {"id": "acme", "name": "Acme", "owner": "u-owner", "owner_email": "Owner@Acme.example", "default_profile": "services", "notify_master": false}}
{"member": {"tenant": "acme", "user": "u-ana", "name": "Ana Pérez", "email": "Ana@Acme.example", "role": "location_manager", "locations": ["l1"]}}
{"partner": {"id": "agency", "name": "La Agencia", "email": "Hola@Agencia.example"}}
{"partner_user": {"partner": "agency", "user": "u-boss", "role": "admin", "name": "Bea", "email": "bea@agencia.example"}}
`
	if _, err := s.Import(ctx, strings.NewReader(people)); err != nil {
		t.Fatal(err)
	}
	tn, err := s.Tenant(ctx, "acme")
	if err != nil || tn.OwnerEmail != "owner@acme.example" || tn.DefaultProfile != "services" || tn.NotifyMaster == nil || *tn.NotifyMaster {
		t.Fatalf("tenant %+v %v", tn, err)
	}
	if m, err := s.Member(ctx, "acme", "u-ana"); err != nil || m.Name != "Ana Pérez" || m.Email != "ana@acme.example" {
		t.Fatalf("member %+v %v", m, err)
	}
	if p, err := s.Partner(ctx, "agency"); err != nil || p.Email != "hola@agencia.example" {
		t.Fatalf("partner %+v %v", p, err)
	}
	if pu, err := s.PartnerUser(ctx, "agency", "u-boss"); err != nil || pu.Role != "admin" || pu.Name != "Bea" {
		t.Fatalf("partner user %+v %v", pu, err)
	}
	var fe *FieldError
	if _, err := s.Import(ctx, strings.NewReader(`{"member": {"tenant": "acme", "user": "x", "role": "location_manager", "email": "nope"}}`)); !errors.As(err, &fe) || fe.Field != "member.email" {
		t.Fatalf("a bad e-mail: %v", err)
	}
}
