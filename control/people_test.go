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

// mustOf fails t on a call's error.
func mustOf(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Issue #15 through the management API: the tenant's settings and default
// profile, what every member has and the licenses right, member
// invitations, the partner search, partner admins, the union of member
// and partner rights, and the tenant's history.
func TestPeopleAndPartnersAPI(t *testing.T) {
	h, store := gatewaytest.NewAccess(t)
	ctx, must := context.Background(), mustOf(t)
	olivia, adam, leo, avery := h.TokenFor(t, "olivia"), h.TokenFor(t, "adam"), h.TokenFor(t, "leo"), h.TokenFor(t, "avery")

	// The owner sets the default profile (and the e-mail on master access);
	// an administrator may not.
	if s, b := apiCall(h, t, olivia, "PATCH", "/tenants/acme/settings", `{"default_profile":"services","notify_master":false,"owner_email":"olivia@acme.example"}`); s != 200 ||
		b["default_profile"] != "services" || b["notify_master"] != false || b["owner_email"] != "olivia@acme.example" {
		t.Fatalf("settings: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, adam, "PATCH", "/tenants/acme/settings", `{"notify_master":true}`); s != 403 {
		t.Fatalf("administrator changes the owner's settings: %d", s)
	}
	if s, b := apiCall(h, t, olivia, "PATCH", "/tenants/acme/settings", `{"default_profile":"nope"}`); s != 400 || b["field"] != "default_profile" {
		t.Fatalf("unknown profile: %d %v", s, b)
	}
	// A new member gets the default profile unless the body chooses rights.
	if s, b := apiCall(h, t, olivia, "PUT", "/tenants/acme/members/nia", `{"role":"location_manager","locations":["l1"],"name":"Nia Ruiz","email":"Nia@Example.com"}`); s != 200 ||
		b["profile"] != "services" || b["name"] != "Nia Ruiz" || b["email"] != "nia@example.com" {
		t.Fatalf("default profile: %d %v", s, b)
	}
	h.Expect(t, h.TokenFor(t, "nia"), "GET", "/t/acme/reviews", "", 200, "")
	if s, b := apiCall(h, t, olivia, "PUT", "/tenants/acme/members/ned", `{"role":"location_manager","features":{"reviews":"read"}}`); s != 200 || b["profile"] != "" {
		t.Fatalf("explicit rights: %d %v", s, b)
	}
	// A member without a profile reaches their personal info and help.
	ned := h.TokenFor(t, "ned")
	h.Expect(t, ned, "GET", "/t/acme/me", "", 200, "")
	h.Expect(t, ned, "GET", "/t/acme/help", "", 200, "")
	h.Expect(t, ned, "GET", "/t/acme/ads", "", 403, "feature.not_granted")
	// The licenses right views the plan and does not change it.
	if s, b := apiCall(h, t, olivia, "PUT", "/tenants/acme/members/lina", `{"role":"account_manager","rights":["licenses"],"features":{"reviews":"read"}}`); s != 200 {
		t.Fatalf("lina: %d %v", s, b)
	}
	lina := h.TokenFor(t, "lina")
	h.Expect(t, lina, "GET", "/t/acme/plan", "", 200, "")
	h.Expect(t, lina, "POST", "/t/acme/plan", `{"plan":"pro"}`, 403, "feature.read_only")

	// Member invitations by e-mail.
	s, inv := apiCall(h, t, olivia, "POST", "/tenants/acme/invitations", `{"email":"Nora@Example.com","name":"Nora","role":"location_manager","locations":["l1"],"lang":"es"}`)
	if s != 201 || inv["status"] != "pending" || inv["email"] != "nora@example.com" || !strings.HasPrefix(fmt.Sprint(inv["accept_path"]), "/.portero/invitations/") ||
		inv["member"].(map[string]any)["profile"] != "services" {
		t.Fatalf("invite: %d %v", s, inv)
	}
	id := inv["id"].(string)
	if s, _ := apiCall(h, t, olivia, "POST", "/tenants/acme/invitations", `{"email":"nora@example.com","role":"location_manager"}`); s != 409 {
		t.Fatalf("invite twice: %d", s)
	}
	if s, _ := apiCall(h, t, leo, "POST", "/tenants/acme/invitations", `{"email":"x@example.com","role":"location_manager"}`); s != 403 {
		t.Fatalf("a location manager invites: %d", s)
	}
	if s, b := apiCall(h, t, adam, "POST", "/tenants/acme/invitations", `{"email":"boss@example.com","role":"administrator"}`); s != 403 || b["reason"] != "admin.rank" {
		t.Fatalf("an administrator invites an administrator: %d %v", s, b)
	}
	if s, b := apiCall(h, t, olivia, "POST", "/tenants/acme/invitations", `{"email":"nope","role":"location_manager"}`); s != 400 || b["field"] != "email" {
		t.Fatalf("bad address: %d %v", s, b)
	}
	if s, b := apiCall(h, t, adam, "GET", "/tenants/acme/invitations", ""); s != 200 || len(b["invitations"].([]any)) != 1 {
		t.Fatalf("list: %d %v", s, b)
	}
	s, re := apiCall(h, t, olivia, "POST", "/tenants/acme/invitations/"+id+"/resend", "")
	if s != 200 || re["accept_path"] == inv["accept_path"] || re["accept_path"] == nil {
		t.Fatalf("resend: %d %v", s, re)
	}
	if s, b := apiCall(h, t, olivia, "POST", "/tenants/acme/invitations/"+id+"/withdraw", ""); s != 200 || b["status"] != "withdrawn" {
		t.Fatalf("withdraw: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, olivia, "POST", "/tenants/acme/invitations/"+id+"/withdraw", ""); s != 409 {
		t.Fatalf("withdraw twice: %d", s)
	}

	// The partner search: an exact e-mail or a name prefix of 3+, bounded.
	for i := range 12 {
		must(store.CreatePartner(ctx, access.Partner{ID: fmt.Sprintf("agency%02d", i), Name: fmt.Sprintf("Agencia %02d", i), Email: fmt.Sprintf("hola@agencia%02d.example", i)}))
	}
	if s, b := apiCall(h, t, olivia, "GET", "/tenants/acme/partner-search?q=age", ""); s != 200 || len(b["partners"].([]any)) != 10 {
		t.Fatalf("search: %d %v", s, b)
	}
	if s, b := apiCall(h, t, adam, "GET", "/tenants/acme/partner-search?q="+url.QueryEscape("HOLA@agencia03.example"), ""); s != 200 || len(b["partners"].([]any)) != 1 ||
		b["partners"].([]any)[0].(map[string]any)["email"] != "h•••@agencia03.example" {
		t.Fatalf("search by e-mail: %d %v", s, b)
	}
	if s, b := apiCall(h, t, olivia, "GET", "/tenants/acme/partner-search?q=ag", ""); s != 400 || b["field"] != "q" {
		t.Fatalf("too short: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, avery, "GET", "/tenants/acme/partner-search?q=age", ""); s != 403 {
		t.Fatalf("an account manager searches: %d", s)
	}
	if s, b := apiCall(h, t, olivia, "POST", "/tenants/acme/delegations", `{"partner":"ghostco","scope":"full"}`); s != 400 || b["field"] != "partner" {
		t.Fatalf("invite an unknown partner: %d %v", s, b)
	}

	// Partner admins manage their own organisation's users only.
	must(store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "paula", Role: "admin"}))
	must(store.CreatePartner(ctx, access.Partner{ID: "otherco", Name: "Other Co"}))
	must(store.PutPartnerUser(ctx, access.PartnerUser{Partner: "otherco", User: "oscar", Role: "admin"}))
	paula, pat, oscar := h.TokenFor(t, "paula"), h.TokenFor(t, "pat"), h.TokenFor(t, "oscar")
	if s, b := apiCall(h, t, paula, "PUT", "/partners/partnerco/users/sid", `{"name":"Sid","email":"sid@partner.example"}`); s != 200 || b["role"] != "staff" || b["email"] != "sid@partner.example" {
		t.Fatalf("partner admin adds staff: %d %v", s, b)
	}
	if s, b := apiCall(h, t, paula, "GET", "/partners/partnerco/users", ""); s != 200 || len(b["users"].([]any)) != 3 {
		t.Fatalf("list: %d %v", s, b)
	}
	for _, c := range []struct {
		name, token, method, path, body string
		status                          int
	}{
		{"another organisation's users", paula, "PUT", "/partners/otherco/users/x", `{}`, 403},
		{"another organisation's list", paula, "GET", "/partners/otherco/users", "", 403},
		{"staff", pat, "PUT", "/partners/partnerco/users/y", `{}`, 403},
		{"staff list", pat, "GET", "/partners/partnerco/users", "", 403},
		{"other admin", oscar, "POST", "/partners/partnerco/users/sid/deactivate", "", 403},
		{"taking another organisation's user", paula, "PUT", "/partners/partnerco/users/oscar", `{}`, 409},
		{"demoting oneself", paula, "PUT", "/partners/partnerco/users/paula", `{"role":"staff"}`, 409},
		{"deactivating oneself", paula, "POST", "/partners/partnerco/users/paula/deactivate", "", 409},
		{"creating a partner", paula, "POST", "/partners", `{"id":"mine","name":"Mine"}`, 403},
		{"deactivate staff", paula, "POST", "/partners/partnerco/users/sid/deactivate", "", 200},
		{"remove staff", paula, "DELETE", "/partners/partnerco/users/sid", "", 204},
		{"staff reads the organisation", pat, "GET", "/partners/partnerco", "", 200},
		{"system admin moves a user", adminToken(h, t), "PUT", "/partners/partnerco/users/oscar", `{"role":"staff"}`, 200},
	} {
		if s, b := apiCall(h, t, c.token, c.method, c.path, c.body); s != c.status {
			t.Errorf("%s: %d %v", c.name, s, b)
		}
	}

	// Union: leo is a location manager of acme (l1, profile_listings) and,
	// once acme's delegation to partnerco is accepted, also gets the
	// partner's ads.
	must(store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "leo"}))
	h.Expect(t, leo, "GET", "/t/acme/ads", "", 403, "feature.not_granted")
	s, d := apiCall(h, t, olivia, "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"limited","products":["ads"]}`)
	if s != 201 || d["invitation_expires"] == nil || d["expires"] != nil {
		t.Fatalf("invite: %d %v", s, d)
	}
	if s, _ := apiCall(h, t, pat, "POST", "/partners/partnerco/delegations/"+d["id"].(string)+"/accept", ""); s != 200 {
		t.Fatalf("accept: %d", s)
	}
	h.Expect(t, leo, "GET", "/t/acme/ads", "", 200, "")
	h.Expect(t, leo, "GET", "/t/acme/locations/l1", "", 200, "")
	h.Expect(t, leo, "GET", "/t/acme/billing", "", 403, "feature.not_granted")

	// The tenant's history: its owner and administrators, no one else.
	s, hist := apiCall(h, t, olivia, "GET", "/tenants/acme/history?limit=500", "")
	events := map[string]bool{}
	if s == 200 {
		for _, r := range hist["records"].([]any) {
			events[r.(map[string]any)["event"].(string)] = true
		}
	}
	for _, e := range []string{"tenant.settings", "member.put", "member_invitation.create", "member_invitation.resend", "member_invitation.withdraw", "delegation.invite", "delegation.accept"} {
		if !events[e] {
			t.Errorf("history lacks %s: %d %v", e, s, events)
		}
	}
	if s, _ := apiCall(h, t, adam, "GET", "/tenants/acme/history", ""); s != 200 {
		t.Errorf("administrator reads the history: %d", s)
	}
	for _, tok := range []string{avery, leo, pat} {
		if s, _ := apiCall(h, t, tok, "GET", "/tenants/acme/history", ""); s != 403 {
			t.Errorf("history for a non-administrator: %d", s)
		}
	}
}

// The partner search has its own per-user budget.
func TestPartnerSearchIsRateLimited(t *testing.T) {
	h, _ := gatewaytest.NewRecordingAccessWith(t, `limits:
  management_writes: {per_minute: 1, burst: 2}
`)
	go func() {
		for range h.Got {
		}
	}()
	olivia := h.TokenFor(t, "olivia")
	for i, want := range []int{200, 200, 429} {
		if s, b := apiCall(h, t, olivia, "GET", "/tenants/acme/partner-search?q=par", ""); s != want {
			t.Fatalf("search %d: %d %v", i, s, b)
		}
	}
}

// The tenant's owner sees master access to their tenant and revokes it;
// another tenant's owner sees and revokes nothing of it.
func TestTenantOwnerRevokesMasterAccess(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/.portero/master-access", samClaims())
	m.MustStart(t, "acme", "customer asked for help", "full", "30m")
	open, err := m.Store.MasterSessions(context.Background(), true, "sam", "acme", 0)
	if err != nil || len(open) != 1 {
		t.Fatalf("open sessions %v %v", open, err)
	}
	id := open[0].ID
	olivia, lee := m.TokenFor(t, "olivia"), m.TokenFor(t, "lee")
	s, b := apiCall(m.Harness, t, olivia, "GET", "/tenants/acme/master-access", "")
	if s != 200 || len(b["sessions"].([]any)) != 1 {
		t.Fatalf("owner lists: %d %v", s, b)
	}
	ms := b["sessions"].([]any)[0].(map[string]any)
	if ms["admin"] != "sam" || ms["reason"] != "customer asked for help" || ms["ticket"] != "SUP-42" || ms["mode"] != "full" {
		t.Fatalf("session as shown: %v", ms)
	}
	if s, _ := apiCall(m.Harness, t, lee, "GET", "/tenants/acme/master-access", ""); s != 403 {
		t.Fatalf("another tenant's owner lists: %d", s)
	}
	if s, _ := apiCall(m.Harness, t, lee, "POST", "/tenants/acme/master-access/"+id+"/revoke", ""); s != 403 {
		t.Fatalf("another tenant's owner revokes: %d", s)
	}
	if s, _ := apiCall(m.Harness, t, lee, "POST", "/tenants/locked/master-access/"+id+"/revoke", ""); s != 404 {
		t.Fatalf("revoke through one's own tenant: %d", s)
	}
	if s, _ := apiCall(m.Harness, t, olivia, "POST", "/master-access/"+id+"/revoke", ""); s != 403 {
		t.Fatalf("owner through the system admins' endpoint: %d", s)
	}
	if s, b := apiCall(m.Harness, t, olivia, "POST", "/tenants/acme/master-access/"+id+"/revoke", ""); s != 200 || b["end_reason"] != "revoked" || b["ended_by"] != "olivia" {
		t.Fatalf("owner revokes: %d %v", s, b)
	}
	if s, _ := apiCall(m.Harness, t, olivia, "POST", "/tenants/acme/master-access/"+id+"/revoke", ""); s != 409 {
		t.Fatalf("revoke twice: %d", s)
	}
	s, b = apiCall(m.Harness, t, olivia, "GET", "/tenants/acme/master-access?all=1", "")
	if s != 200 || len(b["sessions"].([]any)) != 1 {
		t.Fatalf("history: %d %v", s, b)
	}
}

// invitee signs a new browser in at page with claims and returns it, with
// the page as it then shows.
func invitee(t *testing.T, m *gatewaytest.Master, page string, claims map[string]any) (*gatewaytest.Browser, *http.Response, string) {
	t.Helper()
	b := gatewaytest.NewBrowser(t, m.Harness)
	rec := b.SignIn(page, claims)
	if rec.Code/100 != 3 || !strings.HasSuffix(rec.Header().Get("Location"), strings.TrimPrefix(page, "http://localhost")) {
		t.Fatalf("sign-in does not return to the link: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = b.Do("GET", page, nil, english)
	return b, rec.Result(), rec.Body.String()
}

// english asks for the pages in English (Spanish is the default).
var english = http.Header{"Accept-Language": {"en-GB,en;q=0.9"}}

// answer posts the page's form (its CSRF token from body, or csrf).
func answer(b *gatewaytest.Browser, page, body, csrf string) (int, string, string) {
	if match := csrfField.FindStringSubmatch(body); match != nil {
		csrf = match[1]
	}
	rec := b.Do("POST", page, url.Values{"csrf": {csrf}}, http.Header{"Origin": {"http://localhost"}, "Accept-Language": {"en"}})
	return rec.Code, rec.Header().Get("Location"), rec.Body.String()
}

func inviteByAPI(t *testing.T, m *gatewaytest.Master, token, email string) string {
	t.Helper()
	s, b := apiCall(m.Harness, t, token, "POST", "/tenants/acme/invitations", `{"email":"`+email+`","name":"Invitee","role":"location_manager","locations":["l1"],"profile":"services"}`)
	if s != 201 {
		t.Fatalf("invite %s: %d %v", email, s, b)
	}
	return "http://localhost" + b["accept_path"].(string)
}

// The invitee follows the link, signs in and becomes a member under their
// own sub, only with a verified e-mail that is the invited one; the link
// works once, and not after it expired or was withdrawn.
func TestMemberInvitationLink(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	olivia := m.TokenFor(t, "olivia")
	link := inviteByAPI(t, m, olivia, "nora@example.com")

	// Without a session the link goes to sign-in and comes back.
	if rec := gatewaytest.NewBrowser(t, m.Harness).Do("GET", link, nil, nil); rec.Code != http.StatusFound ||
		!strings.Contains(rec.Header().Get("Location"), url.QueryEscape(strings.TrimPrefix(link, "http://localhost"))) {
		t.Fatalf("no session: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	b, res, body := invitee(t, m, link, map[string]any{"sub": "nora-sub", "email": "Nora@Example.com", "email_verified": true})
	if res.StatusCode != 200 || !strings.Contains(body, `id="invitation-answer"`) || !strings.Contains(body, "Acme") {
		t.Fatalf("invitation page: %d %s", res.StatusCode, body)
	}
	// A cross-site or token-less answer is refused.
	if rec := b.Do("POST", link, url.Values{}, http.Header{"Origin": {"http://localhost"}}); rec.Code != http.StatusForbidden {
		t.Fatalf("without the CSRF token: %d", rec.Code)
	}
	code, loc, _ := answer(b, link, body, "")
	if code != http.StatusSeeOther || loc != m.Control.TenantAppURL("acme") {
		t.Fatalf("accept: %d %q", code, loc)
	}
	mem, err := m.Store.Member(ctx, "acme", "nora-sub")
	if err != nil || mem.Role != "location_manager" || mem.Profile != "services" || mem.Email != "nora@example.com" || mem.Name != "Invitee" {
		t.Fatalf("member: %+v %v", mem, err)
	}
	// Replayed: the token works once.
	code, _, out := answer(b, link, "", csrfField.FindStringSubmatch(body)[1])
	if code != http.StatusConflict || !strings.Contains(out, "already been used") {
		t.Fatalf("replay: %d %s", code, out)
	}

	// An unverified e-mail, or another address: nothing is bound.
	link2 := inviteByAPI(t, m, olivia, "uma@example.com")
	b2, res, body := invitee(t, m, link2, map[string]any{"sub": "uma-sub", "email": "uma@example.com", "email_verified": false})
	if res.StatusCode != http.StatusConflict || strings.Contains(body, `id="invitation-answer"`) || !strings.Contains(body, "not verified") {
		t.Fatalf("unverified page: %d %s", res.StatusCode, body)
	}
	if code, _, _ := answer(b2, link2, body, csrfOf(t, b2)); code != http.StatusConflict {
		t.Fatalf("unverified accept: %d", code)
	}
	b3, res, body := invitee(t, m, link2, map[string]any{"sub": "eve", "email": "eve@example.com", "email_verified": true})
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "another e-mail address") {
		t.Fatalf("another address: %d %s", res.StatusCode, body)
	}
	if code, _, _ := answer(b3, link2, body, csrfOf(t, b3)); code != http.StatusConflict {
		t.Fatalf("another address accepts: %d", code)
	}
	for _, sub := range []string{"uma-sub", "eve"} {
		if _, err := m.Store.Member(ctx, "acme", sub); err == nil {
			t.Fatalf("%s became a member", sub)
		}
	}

	// Expired and withdrawn links.
	link3 := inviteByAPI(t, m, olivia, "wes@example.com")
	seedSQL(t, m.DBPath, `UPDATE member_invitations SET expires_at = '2000-01-01T00:00:00Z' WHERE email = 'wes@example.com'`)
	_, res, body = invitee(t, m, link3, map[string]any{"sub": "wes", "email": "wes@example.com", "email_verified": true})
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "expired") {
		t.Fatalf("expired: %d %s", res.StatusCode, body)
	}
	link4 := inviteByAPI(t, m, olivia, "xen@example.com")
	list, _ := m.Store.MemberInvitations(ctx, "acme", false)
	for _, inv := range list {
		if inv.Email == "xen@example.com" {
			if s, _ := apiCall(m.Harness, t, olivia, "POST", "/tenants/acme/invitations/"+inv.ID+"/withdraw", ""); s != 200 {
				t.Fatalf("withdraw: %d", s)
			}
		}
	}
	b5, res, body := invitee(t, m, link4, map[string]any{"sub": "xen", "email": "xen@example.com", "email_verified": true, "lang": "es"})
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "withdrawn") {
		t.Fatalf("withdrawn: %d %s", res.StatusCode, body)
	}
	if code, _, _ := answer(b5, link4, body, csrfOf(t, b5)); code != http.StatusConflict {
		t.Fatalf("withdrawn accepts: %d", code)
	}
	// A link that names no invitation.
	if rec := b5.Do("GET", "http://localhost/.portero/invitations/forged", nil, nil); rec.Code != http.StatusNotFound {
		t.Fatalf("forged link: %d", rec.Code)
	}
	// In Spanish for a browser that prefers it.
	if rec := b5.Do("GET", link4, nil, http.Header{"Accept-Language": {"es-ES,es;q=0.9,en;q=0.5"}}); !strings.Contains(rec.Body.String(), "retirada") {
		t.Fatalf("Spanish page: %s", rec.Body)
	}
}

// csrfOf reads the browser session's CSRF token from /.portero/userinfo.
func csrfOf(t *testing.T, b *gatewaytest.Browser) string {
	t.Helper()
	rec := b.Do("GET", "http://localhost/.portero/userinfo", nil, nil)
	i := strings.Index(rec.Body.String(), `"csrf":"`)
	if i < 0 {
		t.Fatalf("userinfo: %s", rec.Body)
	}
	rest := rec.Body.String()[i+len(`"csrf":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// A partner's user answers an invitation to their organisation from the
// e-mailed link; to anyone else it does not exist.
func TestPartnerInvitationLink(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx, must := context.Background(), mustOf(t)
	must(m.Store.CreatePartner(ctx, access.Partner{ID: "partnerco", Name: "Partner Co", Email: "hola@partner.example"}))
	must(m.Store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "pat", Role: "admin"}))
	s, d := apiCall(m.Harness, t, m.TokenFor(t, "olivia"), "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"limited","products":["reviews"],"lang":"en"}`)
	if s != 201 {
		t.Fatalf("invite: %d %v", s, d)
	}
	mails, err := m.Store.Mails(ctx, "", "acme", 10)
	if err != nil || len(mails) != 1 || mails[0].To != "hola@partner.example" || mails[0].Kind != "partner_invitation" {
		t.Fatalf("invitation mail: %v %v", mails, err)
	}
	link := "http://localhost" + mails[0].Data["accept_path"].(string)
	_, res, body := invitee(t, m, link, map[string]any{"sub": "eve", "email": "eve@example.com"})
	if res.StatusCode != http.StatusNotFound || strings.Contains(body, "Acme") {
		t.Fatalf("a stranger sees: %d %s", res.StatusCode, body)
	}
	b, res, body := invitee(t, m, link, map[string]any{"sub": "pat", "email": "pat@partner.example"})
	if res.StatusCode != 200 || !strings.Contains(body, "<td>Reviews</td>") || !strings.Contains(body, `id="invitation-answer"`) {
		t.Fatalf("partner's page: %d %s", res.StatusCode, body)
	}
	if code, _, out := answer(b, link, body, ""); code != 200 || !strings.Contains(out, "accepted") {
		t.Fatalf("accept: %d %s", code, out)
	}
	if got, _ := m.Store.Delegation(ctx, d["id"].(string)); got.Status != "accepted" {
		t.Fatalf("status %s", got.Status)
	}
	// The tenant's history names who accepted.
	recs, err := m.Store.AuditRecords(ctx, access.AuditFilter{Tenant: "acme", Events: []string{"delegation.accept"}})
	if err != nil || len(recs) != 1 || recs[0].By != "pat" {
		t.Fatalf("history of the acceptance: %+v %v", recs, err)
	}
	// Answered: the reject link explains it cannot be answered again.
	if rec := b.Do("GET", strings.Replace(link, "/accept", "/reject", 1), nil, nil); rec.Code != http.StatusConflict {
		t.Fatalf("answered invitation: %d", rec.Code)
	}
}
