package control_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
)

// consoleAs is a console call with extra headers (Accept-Language).
func consoleAs(m *gatewaytest.Master, t *testing.T, method, path string, form url.Values, hdr http.Header) (int, string) {
	t.Helper()
	if form != nil {
		form.Set("csrf", csrf(m, t))
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Origin", "http://localhost")
	}
	rec := m.B.Do(method, "http://localhost/.portero/admin/"+path, form, hdr)
	if rec.Code == http.StatusSeeOther {
		return rec.Code, rec.Header().Get("Location")
	}
	return rec.Code, rec.Body.String()
}

// The console speaks Spanish when the browser asks for it, and the
// language switch's choice wins over the browser from then on.
func TestConsoleLanguages(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "olivia", "email": "olivia@acme.example"})
	es := http.Header{"Accept-Language": {"es-ES,es;q=0.9,en;q=0.5"}}
	code, body := consoleAs(m, t, "GET", "", nil, es)
	if code != 200 || !strings.Contains(body, `<html lang="es">`) || !strings.Contains(body, "Tus empresas") || !strings.Contains(body, "Cerrar sesión") ||
		strings.Contains(body, "Your tenants") {
		t.Fatalf("home in Spanish: %d %.1500s", code, body)
	}
	if code, body = consoleAs(m, t, "GET", "", nil, nil); !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "Your tenants") {
		t.Fatalf("home without Accept-Language: %d %.600s", code, body)
	}
	// The switch: a cookie, and the page again without the parameter.
	rec := m.B.Do("GET", "http://localhost/.portero/admin/t/acme/members?lang=es", nil, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/.portero/admin/t/acme/members" || m.B.Cookies["portero_lang"] == nil ||
		m.B.Cookies["portero_lang"].Value != "es" || m.B.Cookies["portero_lang"].Path != "/.portero/" {
		t.Fatalf("switch: %d %q %+v", rec.Code, rec.Header().Get("Location"), m.B.Cookies["portero_lang"])
	}
	code, body = consoleAs(m, t, "GET", "t/acme/members", nil, http.Header{"Accept-Language": {"en"}})
	if code != 200 || !strings.Contains(body, "Miembros de acme") || !strings.Contains(body, "Invitar por correo") {
		t.Fatalf("members after choosing Spanish: %d %.1500s", code, body)
	}
	// A form's errors and the API's refusals in Spanish.
	code, body = consoleAs(m, t, "POST", "t/acme/members/new", url.Values{"user": {"lia"}, "role": {"location_manager"}, "feature.reviews": {"read"}, "fields.reviews": {"text"}}, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "para limitar los campos editables, la función debe tener permiso de edición") {
		t.Fatalf("field error in Spanish: %d %.3000s", code, body)
	}
	if code, body = consoleAs(m, t, "GET", "tenants", nil, nil); code != http.StatusForbidden || !strings.Contains(body, "No tienes permiso para hacer esto.") {
		t.Fatalf("refusal in Spanish: %d %.1000s", code, body)
	}
	// The sign-out page follows the choice.
	if rec := m.B.Do("GET", "http://localhost/.portero/logout", nil, nil); !strings.Contains(rec.Body.String(), "¿Cerrar sesión?") || !strings.Contains(rec.Body.String(), `lang="es"`) {
		t.Fatalf("sign-out page: %d %.800s", rec.Code, rec.Body)
	}
	// Back to English; an unknown language changes nothing.
	m.B.Do("GET", "http://localhost/.portero/admin/?lang=en", nil, nil)
	m.B.Do("GET", "http://localhost/.portero/admin/?lang=fr", nil, nil)
	if _, body = consoleAs(m, t, "GET", "", nil, es); !strings.Contains(body, "Your tenants") {
		t.Fatalf("after choosing English: %.600s", body)
	}
}

// Delete tenant asks for the id to be typed; Reset password is offered
// only with console.password_reset_url, and gives the owner's link.
func TestConsoleDeleteTenantAndResetPassword(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	m.B.SignIn("http://localhost/.portero/admin/", samClaims())
	_, body := console(m, t, "GET", "tenants?q=acme", nil)
	if !strings.Contains(body, `id="delete-acme"`) || strings.Contains(body, `id="reset-password-acme"`) {
		t.Fatalf("menu: %.3000s", body)
	}
	if code, _ := console(m, t, "GET", "tenants/acme/password", nil); code != http.StatusNotFound {
		t.Fatalf("reset page without the setting: %d", code)
	}
	code, body := console(m, t, "GET", "tenants/acme/delete", nil)
	if code != 200 || !strings.Contains(body, `id="confirm-typed"`) || !strings.Contains(body, "To confirm, type acme") {
		t.Fatalf("delete page: %d %.1500s", code, body)
	}
	for _, typed := range []string{"", "acm", "ACME", "locked"} {
		if code, body = console(m, t, "POST", "tenants/acme/delete", url.Values{"typed": {typed}, "confirmed": {"1"}}); code != http.StatusBadRequest || !strings.Contains(body, "Type the tenant&#39;s id, acme, exactly.") {
			t.Fatalf("typed %q: %d %.1500s", typed, code, body)
		}
	}
	if _, err := m.Store.Tenant(ctx, "acme"); err != nil {
		t.Fatalf("deleted before the id was typed: %v", err)
	}
	if code, loc := console(m, t, "POST", "tenants/acme/delete", url.Values{"typed": {"acme"}}); code != http.StatusSeeOther || loc != "/.portero/admin/tenants?deleted=acme" {
		t.Fatalf("delete: %d %s", code, loc)
	}
	if _, err := m.Store.Tenant(ctx, "acme"); err == nil {
		t.Fatal("acme still there")
	}
	if _, body = console(m, t, "GET", "tenants?deleted=acme", nil); !strings.Contains(body, "Tenant acme was deleted.") {
		t.Fatalf("flash: %.1000s", body)
	}
	// Only system admins: the owner of locked may not.
	lee := &gatewaytest.Master{Harness: m.Harness, Clock: m.Clock, B: gatewaytest.NewBrowser(t, m.Harness), Store: m.Store}
	lee.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "lee"})
	if code, _ := console(lee, t, "POST", "tenants/locked/delete", url.Values{"typed": {"locked"}}); code != http.StatusForbidden {
		t.Fatalf("owner deletes: %d", code)
	}
	if code, _ := console(lee, t, "GET", "tenants/locked/delete", nil); code != http.StatusForbidden {
		t.Fatalf("owner's delete page: %d", code)
	}

	r := newMasterHarness(t, "console:\n  password_reset_url: https://idp.example/reset?login_hint={email}&u={user}\n")
	r.B.SignIn("http://localhost/.portero/admin/", samClaims())
	if _, err := r.Store.UpdateTenantSettings(ctx, "locked", access.TenantSettings{OwnerEmail: new("lee+owner@locked.example")}); err != nil {
		t.Fatal(err)
	}
	if _, body = console(r, t, "GET", "tenants?q=locked", nil); !strings.Contains(body, `id="reset-password-locked"`) {
		t.Fatalf("menu with the setting: %.3000s", body)
	}
	code, body = console(r, t, "GET", "tenants/locked/password", nil)
	if code != 200 || !strings.Contains(body, "https://idp.example/reset?login_hint=lee%2Bowner%40locked.example&amp;u=lee") {
		t.Fatalf("reset page: %d %.2000s", code, body)
	}
}

// A tenant's owner sees who entered their tenant through master access,
// ends a running session, reads the access changes with before and after,
// and turns off the e-mail on support access.
func TestConsoleTenantHistory(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	m.B.SignIn("http://localhost/.portero/master-access", samClaims())
	m.MustStart(t, "acme", "Ticket SUP-9: the owner cannot see reviews", "read_only", "30m")
	open, err := m.Store.MasterSessions(ctx, true, "sam", "acme", 0)
	if err != nil || len(open) != 1 {
		t.Fatalf("open %v %v", open, err)
	}
	o := &gatewaytest.Master{Harness: m.Harness, Clock: m.Clock, B: gatewaytest.NewBrowser(t, m.Harness), Store: m.Store}
	o.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "olivia", "email": "olivia@acme.example"})
	if _, body := console(o, t, "GET", "", nil); !strings.Contains(body, `id="history-acme"`) {
		t.Fatalf("home has no history link: %.1500s", body)
	}
	if code, _ := console(o, t, "POST", "t/acme/members/new", url.Values{"user": {"leo"}, "role": {"location_manager"}, "feature.reviews": {"read"}}); code != http.StatusSeeOther {
		t.Fatalf("add leo: %d", code)
	}
	if code, _ := console(o, t, "POST", "t/acme/members/leo/edit", url.Values{"role": {"account_manager"}, "feature.reviews": {"edit"}}); code != http.StatusSeeOther {
		t.Fatalf("change leo: %d", code)
	}
	code, body := console(o, t, "GET", "t/acme/history", nil)
	id := open[0].ID
	if code != 200 || !strings.Contains(body, `id="revoke-`+id+`"`) || !strings.Contains(body, "Ticket SUP-9") || !strings.Contains(body, "read only") {
		t.Fatalf("history: %d %.4000s", code, body)
	}
	if !strings.Contains(body, "<del>Location manager</del> → <ins>Account manager</ins>") || !strings.Contains(body, "member acme/leo") {
		t.Fatalf("changes: %.6000s", body)
	}
	if _, body = console(o, t, "POST", "t/acme/master/"+id+"/revoke", url.Values{}); !strings.Contains(body, `id="confirm-question"`) {
		t.Fatalf("revoke did not ask: %.800s", body)
	}
	if code, loc := console(o, t, "POST", "t/acme/master/"+id+"/revoke", url.Values{"confirmed": {"1"}}); code != http.StatusSeeOther || !strings.Contains(loc, "revoked="+id) {
		t.Fatalf("revoke: %d %s", code, loc)
	}
	if ms, _ := m.Store.Master(ctx, id); ms.EndedAt == nil || ms.EndedBy != "olivia" {
		t.Fatalf("session after revoke: %+v", ms)
	}
	_, body = console(o, t, "GET", "t/acme/history", nil)
	if !strings.Contains(body, `id="no-open-sessions"`) || !strings.Contains(body, `id="past-sessions"`) || !strings.Contains(body, "by olivia") {
		t.Fatalf("history after revoke: %.4000s", body)
	}
	// The owner's settings: notices off.
	if code, _ = console(o, t, "GET", "t/acme/settings", nil); code != 200 {
		t.Fatalf("settings page: %d", code)
	}
	if code, body = console(o, t, "POST", "t/acme/settings", url.Values{"owner_email": {"olivia@acme.example"}, "default_profile": {"services"}}); code != 200 || !strings.Contains(body, "Settings saved.") {
		t.Fatalf("save settings: %d %.1000s", code, body)
	}
	if tn, _ := m.Store.Tenant(ctx, "acme"); tn.NotifyMaster == nil || *tn.NotifyMaster || tn.DefaultProfile != "services" || tn.OwnerEmail != "olivia@acme.example" {
		t.Fatalf("tenant after settings: %+v", tn)
	}
	if code, body = console(o, t, "POST", "t/acme/settings", url.Values{"owner_email": {"not an address"}, "notify_master": {"on"}}); code != http.StatusBadRequest || !strings.Contains(body, `class="err"`) {
		t.Fatalf("bad e-mail: %d %.1500s", code, body)
	}
	// Another tenant's owner sees none of it.
	lee := &gatewaytest.Master{Harness: m.Harness, Clock: m.Clock, B: gatewaytest.NewBrowser(t, m.Harness), Store: m.Store}
	lee.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "lee"})
	if code, _ = console(lee, t, "GET", "t/acme/history", nil); code != http.StatusForbidden {
		t.Fatalf("lee on acme's history: %d", code)
	}
}

// Members invited by e-mail (resend, withdraw), shown by name; a partner
// found by name and picked; a partner's admin manages their staff.
func TestConsoleInvitationsSearchAndStaff(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	if _, err := m.Store.CreatePartner(ctx, access.Partner{ID: "partnerco", Name: "Partner Co", Email: "hello@partner.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "pat", Role: "admin", Name: "Pat Lee"}); err != nil {
		t.Fatal(err)
	}
	m.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "olivia", "email": "olivia@acme.example"})
	code, body := console(m, t, "GET", "t/acme/members/invite", nil)
	if code != 200 || !strings.Contains(body, `id="email"`) || strings.Contains(body, `id="user"`) {
		t.Fatalf("invite form: %d %.2000s", code, body)
	}
	if code, body = console(m, t, "POST", "t/acme/members/invite", url.Values{"name": {"Nia Ruiz"}, "role": {"location_manager"}}); code != http.StatusBadRequest || !strings.Contains(body, "Give the e-mail address") {
		t.Fatalf("invite without e-mail: %d %.1500s", code, body)
	}
	code, loc := console(m, t, "POST", "t/acme/members/invite", url.Values{"name": {"Nia Ruiz"}, "email": {"nia@example.com"}, "lang": {"es"},
		"role": {"location_manager"}, "profile": {"services"}, "locations": {"l1"}})
	if code != http.StatusSeeOther || !strings.Contains(loc, "invited=nia%40example.com") {
		t.Fatalf("invite: %d %s", code, loc)
	}
	invs, err := m.Store.MemberInvitations(ctx, "acme", false)
	if err != nil || len(invs) != 1 || invs[0].Lang != "es" || invs[0].Member.Profile != "services" {
		t.Fatalf("invitations %+v %v", invs, err)
	}
	_, body = console(m, t, "GET", "t/acme/members?invited=nia%40example.com", nil)
	if !strings.Contains(body, "Invitation sent to nia@example.com.") || !strings.Contains(body, `data-invitation="nia@example.com"`) || !strings.Contains(body, "Nia Ruiz") {
		t.Fatalf("members with the invitation: %.3000s", body)
	}
	if code, _ = console(m, t, "POST", "t/acme/invitations/"+invs[0].ID+"/resend", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("resend: %d", code)
	}
	if _, body = console(m, t, "POST", "t/acme/invitations/"+invs[0].ID+"/withdraw", url.Values{}); !strings.Contains(body, `id="confirm-question"`) {
		t.Fatal("withdraw did not ask")
	}
	console(m, t, "POST", "t/acme/invitations/"+invs[0].ID+"/withdraw", url.Values{"confirmed": {"1"}})
	if invs, _ = m.Store.MemberInvitations(ctx, "acme", false); len(invs) != 0 {
		t.Fatalf("still pending: %+v", invs)
	}
	// Members are shown by name and e-mail.
	if _, err := m.Store.PutMember(ctx, access.Member{Tenant: "acme", User: "leo", Role: "location_manager", Name: "Leo Díaz", Email: "leo@acme.example"}); err != nil {
		t.Fatal(err)
	}
	if _, body = console(m, t, "GET", "t/acme/members", nil); !strings.Contains(body, "<strong>Leo Díaz</strong>") || !strings.Contains(body, "leo@acme.example") {
		t.Fatalf("members by name: %.3000s", body)
	}

	// The partner search: too short, nothing, then the agency to pick.
	if _, body = console(m, t, "GET", "t/acme/partners?q=pa", nil); !strings.Contains(body, "Type at least 3 letters") || strings.Contains(body, `id="pick-partnerco"`) {
		t.Fatalf("short search: %.3000s", body)
	}
	if _, body = console(m, t, "GET", "t/acme/partners?q=zzz", nil); !strings.Contains(body, `id="no-partner-found"`) {
		t.Fatalf("no match: %.3000s", body)
	}
	if _, body = console(m, t, "GET", "t/acme/partners?q=Partn", nil); !strings.Contains(body, `id="pick-partnerco"`) || !strings.Contains(body, "Partner Co") || strings.Contains(body, "hello@partner.example") {
		t.Fatalf("search by name: %.3000s", body)
	}
	if _, body = console(m, t, "GET", "t/acme/partners?q=hello%40partner.example", nil); !strings.Contains(body, `id="pick-partnerco"`) {
		t.Fatalf("search by e-mail: %.3000s", body)
	}
	if code, body = console(m, t, "POST", "t/acme/partners/invite", url.Values{"scope": {"limited"}, "product.reviews": {"on"}}); code != http.StatusBadRequest || !strings.Contains(body, "Pick an agency from the search results.") {
		t.Fatalf("invite without a pick: %d %.2000s", code, body)
	}
	if code, body = console(m, t, "POST", "t/acme/partners/invite", url.Values{"q": {"Partn"}, "partner": {"partnerco"}, "scope": {"limited"}, "product.reviews": {"on"}}); code != http.StatusSeeOther {
		t.Fatalf("invite: %d %.2000s", code, body)
	}

	// The partner's admin manages their staff; they cannot remove themself.
	pat := &gatewaytest.Master{Harness: m.Harness, Clock: m.Clock, B: gatewaytest.NewBrowser(t, m.Harness), Store: m.Store}
	pat.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "pat"})
	_, body = console(pat, t, "GET", "partner", nil)
	if !strings.Contains(body, `id="staff-form"`) || !strings.Contains(body, "Partner organisation Partner Co") || strings.Contains(body, `id="staff-remove-pat"`) {
		t.Fatalf("partner page for its admin: %.3000s", body)
	}
	if code, loc = console(pat, t, "POST", "partner/users", url.Values{"user": {"pia"}, "name": {"Pia Sol"}, "email": {"pia@partner.example"}, "role": {"staff"}}); code != http.StatusSeeOther {
		t.Fatalf("add pia: %d %s", code, loc)
	}
	if _, body = console(pat, t, "GET", "partner", nil); !strings.Contains(body, `data-user="pia"`) || !strings.Contains(body, "Pia Sol") {
		t.Fatalf("staff: %.3000s", body)
	}
	if code, _ = console(pat, t, "POST", "partner/users/pia/deactivate", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("deactivate: %d", code)
	}
	users, _ := m.Store.PartnerUsers(ctx, "partnerco")
	for _, u := range users {
		if u.User == "pia" && u.Status != "deactivated" {
			t.Fatalf("pia is %s", u.Status)
		}
	}
	console(pat, t, "POST", "partner/users/pia/remove", url.Values{"confirmed": {"1"}})
	if users, _ = m.Store.PartnerUsers(ctx, "partnerco"); len(users) != 1 {
		t.Fatalf("after remove: %+v", users)
	}
	// Staff see no staff form.
	if _, err := m.Store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "sid", Role: "staff"}); err != nil {
		t.Fatal(err)
	}
	sid := &gatewaytest.Master{Harness: m.Harness, Clock: m.Clock, B: gatewaytest.NewBrowser(t, m.Harness), Store: m.Store}
	sid.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "sid"})
	if _, body = console(sid, t, "GET", "partner", nil); strings.Contains(body, `id="staff-form"`) || !strings.Contains(body, `id="invitations"`) {
		t.Fatalf("partner page for staff: %.3000s", body)
	}
}
