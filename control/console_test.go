package control_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
)

func console(m *gatewaytest.Master, t *testing.T, method, path string, form url.Values) (int, string) {
	t.Helper()
	var hdr http.Header
	if form != nil {
		form.Set("csrf", csrf(m, t))
		hdr = http.Header{"Origin": {"http://localhost"}}
	}
	rec := m.B.Do(method, "http://localhost/.portero/admin/"+path, form, hdr)
	if rec.Code == http.StatusSeeOther {
		return rec.Code, rec.Header().Get("Location")
	}
	return rec.Code, rec.Body.String()
}

func csrf(m *gatewaytest.Master, t *testing.T) string {
	t.Helper()
	page := m.B.Do("GET", "http://localhost/.portero/master-access", nil, nil)
	match := csrfField.FindStringSubmatch(page.Body.String())
	if match == nil {
		t.Fatalf("no csrf token: %d", page.Code)
	}
	return match[1]
}

// The system admin's console: tenants (search, paging, counts), suspend
// with confirmation, edit with field errors, master-access sessions and
// the audit trail, policy status. Another user sees none of it.
func TestConsoleForSystemAdmins(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	for i := range 30 {
		if _, err := m.Store.CreateTenant(ctx, access.Tenant{ID: fmt.Sprintf("t%02d", i), Name: fmt.Sprintf("Tenant %02d", i), MasterAccess: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Store.PutMember(ctx, access.Member{Tenant: "acme", User: "leo", Role: "location_manager"}); err != nil {
		t.Fatal(err)
	}
	// Without a session: a page goes to sign-in, a form post is refused.
	anon := gatewaytest.NewBrowser(t, m.Harness)
	if rec := anon.Do("GET", "http://localhost/.portero/admin/tenants", nil, nil); rec.Code != http.StatusFound || !strings.Contains(rec.Header().Get("Location"), "/.portero/login?rd=") {
		t.Fatalf("anonymous page: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := anon.Do("POST", "http://localhost/.portero/admin/tenants/acme/status", url.Values{"status": {"suspended"}, "confirmed": {"1"}}, nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("anonymous form post: %d", rec.Code)
	}
	m.B.SignIn("http://localhost/.portero/admin/", samClaims())

	if code, loc := console(m, t, "GET", "", nil); code != http.StatusSeeOther || loc != "/.portero/admin/tenants" {
		t.Fatalf("home: %d %s", code, loc)
	}
	code, body := console(m, t, "GET", "tenants", nil)
	if code != 200 || !strings.Contains(body, "1–25 of 32") || !strings.Contains(body, `id="next-page"`) {
		t.Fatalf("tenants page 1: %d %.500s", code, body)
	}
	if _, body = console(m, t, "GET", "tenants?page=2", nil); !strings.Contains(body, "26–32 of 32") || strings.Contains(body, `id="next-page"`) {
		t.Fatalf("tenants page 2: %.300s", body)
	}
	_, body = console(m, t, "GET", "tenants?q=acme", nil)
	if !strings.Contains(body, "1–1 of 1") || !strings.Contains(body, `data-tenant="acme"`) || !strings.Contains(body, "<td>1</td>") || !strings.Contains(body, `data-master="acme"`) {
		t.Fatalf("search acme: %.1500s", body)
	}
	if _, body = console(m, t, "GET", "tenants?q=locked", nil); strings.Contains(body, `data-master="locked"`) {
		t.Error("master access offered for a tenant that forbids it")
	}

	// Suspend asks first, then suspends.
	code, body = console(m, t, "POST", "tenants/acme/status", url.Values{"status": {"suspended"}})
	if code != 200 || !strings.Contains(body, `id="confirm-question"`) {
		t.Fatalf("suspend without confirmation: %d %.300s", code, body)
	}
	if tn, _ := m.Store.Tenant(ctx, "acme"); tn.Status != "active" {
		t.Fatal("suspended before confirmation")
	}
	if code, _ = console(m, t, "POST", "tenants/acme/status", url.Values{"status": {"suspended"}, "confirmed": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("confirmed suspend: %d", code)
	}
	if tn, _ := m.Store.Tenant(ctx, "acme"); tn.Status != "suspended" {
		t.Fatalf("acme is %s", tn.Status)
	}
	// A form without the session's CSRF token is refused.
	rec := m.B.Do("POST", "http://localhost/.portero/admin/tenants/acme/status", url.Values{"status": {"active"}, "confirmed": {"1"}, "csrf": {"forged"}}, nil)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("forged csrf: %d", rec.Code)
	}

	// Edit: a bad hostname is shown next to the field; a good edit saves.
	code, body = console(m, t, "POST", "tenants/acme/edit", url.Values{"name": {"Acme Dental"}, "hostnames": {"not a host!"}, "owner": {"olivia"}, "master_access": {"on"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `class="err"`) {
		t.Fatalf("bad hostname: %d %.800s", code, body)
	}
	if code, _ = console(m, t, "POST", "tenants/acme/edit", url.Values{"name": {"Acme Dental"}, "hostnames": {"acme.example.com"}, "owner": {"olivia"}, "master_access": {"on"}}); code != http.StatusSeeOther {
		t.Fatalf("edit: %d", code)
	}
	if tn, _ := m.Store.Tenant(ctx, "acme"); tn.Name != "Acme Dental" || len(tn.Hostnames) != 1 || !tn.MasterAccess {
		t.Fatalf("after edit: %+v", tn)
	}

	// Master access: a refused attempt (suspended tenant) and the audit trail.
	m.Start(t, "acme", "Ticket SUP-70: check the suspension", "full", "10m")
	_, body = console(m, t, "GET", "master", nil)
	if !strings.Contains(body, "No open master-access sessions") || !strings.Contains(body, "master.tenant_not_active") {
		t.Fatalf("master page: %.1500s", body)
	}
	if _, body = console(m, t, "GET", "master?tenant=nope", nil); strings.Contains(body, "SUP-70") {
		t.Error("audit filter by tenant does not filter")
	}
	if _, body = console(m, t, "GET", "policy", nil); !strings.Contains(body, `id="policy-revision"`) || !strings.Contains(body, "memoised") {
		t.Fatalf("policy page: %.500s", body)
	}

	// Someone who is not a system admin sees no section and is refused the pages.
	other := gatewaytest.NewBrowser(t, m.Harness)
	other.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "leo", "email": "leo@example.com"})
	rec = other.Do("GET", "http://localhost/.portero/admin/", nil, nil)
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "/.portero/admin/tenants") {
		t.Fatalf("leo's console home: %d %.300s", rec.Code, rec.Body)
	}
	if rec = other.Do("GET", "http://localhost/.portero/admin/tenants", nil, nil); rec.Code != http.StatusForbidden {
		t.Fatalf("leo on the tenants page: %d", rec.Code)
	}
}

// A tenant owner manages members and partners; a partner user answers the
// invitation. All through the console's forms.
func TestConsoleForOwnersAndPartners(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	if _, err := m.Store.CreatePartner(ctx, access.Partner{ID: "partnerco", Name: "Partner Co"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "pat"}); err != nil {
		t.Fatal(err)
	}
	m.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "olivia", "email": "olivia@acme.example"})
	code, body := console(m, t, "GET", "", nil)
	if code != 200 || !strings.Contains(body, `id="members-acme"`) || !strings.Contains(body, `id="partners-acme"`) || strings.Contains(body, `/.portero/admin/tenants"`) {
		t.Fatalf("owner's home: %d %.600s", code, body)
	}
	// Add with a profile; then with explicit rights and field limits.
	if code, _ = console(m, t, "POST", "t/acme/members/new", url.Values{"user": {"avery"}, "role": {"account_manager"}, "profile": {"accounting"}}); code != http.StatusSeeOther {
		t.Fatalf("add avery: %d", code)
	}
	code, body = console(m, t, "POST", "t/acme/members/new", url.Values{"user": {"leo"}, "role": {"location_manager"}, "locations": {"l1, l2"},
		"feature.profile_listings": {"edit"}, "fields.profile_listings": {"phone, hours"}, "feature.reviews": {"read"}})
	if code != http.StatusSeeOther {
		t.Fatalf("add leo: %d %.800s", code, body)
	}
	leo, err := m.Store.Member(ctx, "acme", "leo")
	if err != nil || leo.Features["profile_listings"] != "edit" || strings.Join(leo.Fields["profile_listings"], ",") != "phone,hours" || len(leo.Locations) != 2 {
		t.Fatalf("leo: %+v %v", leo, err)
	}
	// A field right on a feature without edit is a field error next to it.
	code, body = console(m, t, "POST", "t/acme/members/new", url.Values{"user": {"lia"}, "role": {"location_manager"}, "feature.reviews": {"read"}, "fields.reviews": {"text"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `class="err"`) {
		t.Fatalf("bad field rights: %d %.600s", code, body)
	}
	if _, body = console(m, t, "GET", "t/acme/members", nil); !strings.Contains(body, `data-user="leo"`) || !strings.Contains(body, "listings fields: Phone, Opening hours") {
		t.Fatalf("members page: %.1500s", body)
	}
	if _, body = console(m, t, "GET", "t/acme/members/leo/edit", nil); !strings.Contains(body, `id="field-profile_listings-phone" checked`) || !strings.Contains(body, `id="field-profile_listings-hours" checked`) ||
		strings.Contains(body, `id="field-profile_listings-name" checked`) || !strings.Contains(body, `value="l1, l2"`) {
		t.Fatalf("edit form not prefilled: %.2000s", body)
	}
	// The active checkbox: unchecked deactivates at once, checked reactivates.
	console(m, t, "POST", "t/acme/members/leo/status", url.Values{})
	if leo, _ = m.Store.Member(ctx, "acme", "leo"); leo.Status != "deactivated" {
		t.Fatalf("after unchecking: %s", leo.Status)
	}
	console(m, t, "POST", "t/acme/members/leo/status", url.Values{"active": {"on"}})
	if leo, _ = m.Store.Member(ctx, "acme", "leo"); leo.Status != "active" {
		t.Fatalf("after checking: %s", leo.Status)
	}
	// Remove asks first.
	if _, body = console(m, t, "POST", "t/acme/members/avery/remove", url.Values{}); !strings.Contains(body, `id="confirm-question"`) {
		t.Fatal("remove did not ask")
	}
	console(m, t, "POST", "t/acme/members/avery/remove", url.Values{"confirmed": {"1"}})
	if _, err := m.Store.Member(ctx, "acme", "avery"); err == nil {
		t.Fatal("avery still a member")
	}

	// Invite partnerco with limited access; inviting twice is shown as an error.
	invite := url.Values{"partner": {"partnerco"}, "scope": {"limited"}, "product.reviews": {"on"}, "product.reply_library": {"on"}}
	if code, body = console(m, t, "POST", "t/acme/partners/invite", invite); code != http.StatusSeeOther {
		t.Fatalf("invite: %d %.600s", code, body)
	}
	if code, body = console(m, t, "POST", "t/acme/partners/invite", invite); code != http.StatusBadRequest || !strings.Contains(body, "already has an open delegation") {
		t.Fatalf("invite twice: %d %.600s", code, body)
	}

	// The partner user accepts.
	pat := &gatewaytest.Master{Harness: m.Harness, Clock: m.Clock, B: gatewaytest.NewBrowser(t, m.Harness), Store: m.Store}
	pat.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "pat"})
	if _, body = console(pat, t, "GET", "partner", nil); !strings.Contains(body, `id="accept-acme"`) {
		t.Fatalf("partner page: %.800s", body)
	}
	ds, _ := m.Store.Delegations(ctx, "acme", "")
	if code, _ = console(pat, t, "POST", "partner/delegations/"+ds[0].ID+"/accept", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("accept: %d", code)
	}
	if _, body = console(pat, t, "GET", "partner", nil); !strings.Contains(body, `id="managed"`) {
		t.Fatalf("managed tenants: %.800s", body)
	}
	// The owner revokes, after confirming.
	if _, body = console(m, t, "POST", "t/acme/delegations/"+ds[0].ID+"/revoke", url.Values{}); !strings.Contains(body, `id="confirm-question"`) {
		t.Fatal("revoke did not ask")
	}
	console(m, t, "POST", "t/acme/delegations/"+ds[0].ID+"/revoke", url.Values{"confirmed": {"1"}})
	if d, _ := m.Store.Delegation(ctx, ds[0].ID); d.Status != "revoked" {
		t.Fatalf("delegation is %s", d.Status)
	}
	// The partner user may not see acme's members.
	if code, _ = console(pat, t, "GET", "t/acme/members", nil); code != http.StatusForbidden {
		t.Fatalf("partner on acme's members: %d", code)
	}
}
