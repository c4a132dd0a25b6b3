package control_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/gatewaytest"
)

func apiCall(h *harness, t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	hdr := http.Header{}
	if body != "" {
		hdr.Set("Content-Type", "application/json")
	}
	rec := h.Do(t, method, "http://localhost/.portero/api/v1"+path, token, hdr, body)
	out := map[string]any{}
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func adminToken(h *harness, t *testing.T) string {
	c := h.Iss.Claims("sam", "portero")
	c["groups"] = []string{"system-admins"}
	return h.Iss.Sign(t, c)
}

func TestManagementAPITenants(t *testing.T) {
	h, _ := gatewaytest.NewAccess(t)
	sam, eve := adminToken(h, t), h.TokenFor(t, "eve")
	cases := []struct {
		name, token, method, path, body string
		status                          int
		check                           func(map[string]any) bool
	}{
		{"create", sam, "POST", "/tenants", `{"id":"globex","name":"Globex","owner":"gina","master_access":true}`, 201, func(b map[string]any) bool { return b["id"] == "globex" }},
		{"create again", sam, "POST", "/tenants", `{"id":"globex","name":"Globex"}`, 409, nil},
		{"bad id", sam, "POST", "/tenants", `{"id":"Glo bex","name":"x"}`, 400, func(b map[string]any) bool { return b["field"] == "id" }},
		{"unknown field", sam, "POST", "/tenants", `{"id":"x1","name":"x","colour":"red"}`, 400, func(b map[string]any) bool { return b["field"] == "colour" }},
		{"wrong type", sam, "POST", "/tenants", `{"id":"x1","name":"x","master_access":"yes"}`, 400, func(b map[string]any) bool { return b["field"] == "master_access" }},
		{"not JSON", sam, "POST", "/tenants", `{"id":`, 400, func(b map[string]any) bool { return b["field"] == "body" }},
		{"stranger may not create", eve, "POST", "/tenants", `{"id":"evil","name":"Evil"}`, 403, func(b map[string]any) bool { return b["reason"] == "admin.not_allowed" }},
		{"list", sam, "GET", "/tenants?q=o&limit=1", "", 200, func(b map[string]any) bool { return b["total"] == float64(1) }},
		{"suspend", sam, "PATCH", "/tenants/globex", `{"status":"suspended"}`, 200, func(b map[string]any) bool { return b["status"] == "suspended" && b["name"] == "Globex" }},
		{"owner reads own tenant", h.TokenFor(t, "olivia"), "GET", "/tenants/acme", "", 200, nil},
		{"owner may not suspend", h.TokenFor(t, "olivia"), "PATCH", "/tenants/acme", `{"status":"suspended"}`, 403, nil},
		{"missing", sam, "GET", "/tenants/nope", "", 404, nil},
		{"no credentials", "", "GET", "/tenants", "", 401, nil},
	}
	for _, tc := range cases {
		status, body := apiCall(h, t, tc.token, tc.method, tc.path, tc.body)
		if status != tc.status || (tc.check != nil && !tc.check(body)) {
			t.Errorf("%s: %d %v", tc.name, status, body)
		}
	}
	rec := h.Do(t, "POST", "http://localhost/.portero/api/v1/tenants", sam, http.Header{"Content-Type": {"text/plain"}}, `{"id":"x2","name":"x"}`)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain write: %d", rec.Code)
	}
}

func TestManagementAPIMembers(t *testing.T) {
	h, store := gatewaytest.NewAccess(t)
	olivia := h.TokenFor(t, "olivia")
	if s, b := apiCall(h, t, olivia, "PUT", "/tenants/acme/members/ann", `{"role":"account_manager","profile":"services","rights":["user_management"],"businesses":["b1"],"locations":["l2"]}`); s != 200 || b["role"] != "account_manager" {
		t.Fatalf("owner adds ann: %d %v", s, b)
	}
	if s, b := apiCall(h, t, olivia, "PUT", "/tenants/acme/members/x", `{"role":"boss"}`); s != 400 || b["field"] != "role" {
		t.Fatalf("bad role: %d %v", s, b)
	}
	ann := h.TokenFor(t, "ann")
	if s, _ := apiCall(h, t, ann, "PUT", "/tenants/acme/members/lou", `{"role":"location_manager","locations":["l2"]}`); s != 200 {
		t.Fatalf("user manager adds a location manager: %d", s)
	}
	if s, b := apiCall(h, t, ann, "PUT", "/tenants/acme/members/boss", `{"role":"administrator"}`); s != 403 {
		t.Fatalf("user manager grants administrator: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, ann, "POST", "/tenants/acme/members/adam/deactivate", ""); s != 403 {
		t.Fatalf("user manager deactivates an administrator: %d", s)
	}
	if s, _ := apiCall(h, t, h.TokenFor(t, "leo"), "GET", "/tenants/acme/members", ""); s != 403 {
		t.Fatalf("location manager lists members: %d", s)
	}
	if s, b := apiCall(h, t, olivia, "GET", "/tenants/acme/members", ""); s != 200 || len(b["members"].([]any)) != 5 {
		t.Fatalf("list: %d %v", s, b)
	}
	// Deactivation through the API bites on the member's very next request.
	adam := h.TokenFor(t, "adam")
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 200, "")
	if s, b := apiCall(h, t, olivia, "POST", "/tenants/acme/members/adam/deactivate", ""); s != 200 || b["status"] != "deactivated" {
		t.Fatalf("deactivate: %d %v", s, b)
	}
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 403, "member.deactivated")
	if s, _ := apiCall(h, t, olivia, "POST", "/tenants/acme/members/adam/reactivate", ""); s != 200 {
		t.Fatalf("reactivate: %d", s)
	}
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 200, "")
	if s, _ := apiCall(h, t, olivia, "DELETE", "/tenants/acme/members/lou", ""); s != 204 {
		t.Fatalf("remove: %d", s)
	}
	if _, err := store.Member(t.Context(), "acme", "lou"); err == nil {
		t.Fatal("removed member still stored")
	}
}

func TestManagementAPIDelegations(t *testing.T) {
	h, _ := gatewaytest.NewAccess(t)
	olivia, pat, eve := h.TokenFor(t, "olivia"), h.TokenFor(t, "pat"), h.TokenFor(t, "eve")
	s, d := apiCall(h, t, olivia, "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"limited","products":["reviews"]}`)
	if s != 201 || d["status"] != "invited" || d["invited_by"] != "olivia" {
		t.Fatalf("invite: %d %v", s, d)
	}
	id := d["id"].(string)
	if s, _ := apiCall(h, t, olivia, "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"full"}`); s != 409 {
		t.Fatalf("invite twice: %d", s)
	}
	if s, b := apiCall(h, t, olivia, "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"limited"}`); s != 400 || b["field"] != "products" {
		t.Fatalf("limited without products: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, eve, "POST", "/delegations/"+id+"/accept", ""); s != 403 {
		t.Fatalf("a stranger accepts: %d", s)
	}
	if s, _ := apiCall(h, t, olivia, "POST", "/delegations/"+id+"/accept", ""); s != 403 {
		t.Fatalf("the tenant accepts its own invitation: %d", s)
	}
	if s, b := apiCall(h, t, pat, "GET", "/partners/partnerco/delegations", ""); s != 200 || len(b["delegations"].([]any)) != 1 {
		t.Fatalf("partner lists invitations: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, eve, "GET", "/partners/partnerco/delegations", ""); s != 403 {
		t.Fatalf("a stranger lists the partner's invitations: %d", s)
	}
	if s, b := apiCall(h, t, pat, "POST", "/delegations/"+id+"/accept", ""); s != 200 || b["status"] != "accepted" {
		t.Fatalf("partner accepts: %d %v", s, b)
	}
	h.Expect(t, pat, "GET", "/t/acme/reviews", "", 200, "")
	if s, _ := apiCall(h, t, pat, "POST", "/delegations/"+id+"/revoke", ""); s != 403 {
		t.Fatalf("the partner revokes: %d", s)
	}
	if s, b := apiCall(h, t, olivia, "POST", "/delegations/"+id+"/revoke", ""); s != 200 || b["status"] != "revoked" {
		t.Fatalf("tenant revokes: %d %v", s, b)
	}
	h.Expect(t, pat, "GET", "/t/acme/reviews", "", 403, "delegation.not_accepted")
	if s, b := apiCall(h, t, pat, "POST", "/delegations/"+id+"/accept", ""); s != 409 || !strings.Contains(b["message"].(string), "revoked") {
		t.Fatalf("accepting a revoked invitation: %d %v", s, b)
	}
	if s, _ := apiCall(h, t, olivia, "POST", "/delegations/"+id+"/frobnicate", ""); s != 400 {
		t.Fatalf("unknown action: %d", s)
	}
}

func TestManagementAPIWithoutStore(t *testing.T) {
	h := newHarness(t, nil)
	if s, b := apiCall(h, t, h.Member(t), "GET", "/tenants", ""); s != 404 || b["reason"] != "api.no_store" {
		t.Fatalf("%d %v", s, b)
	}
}

// Browser sessions must send the session's CSRF token on management writes.
func TestManagementAPICSRFForSessions(t *testing.T) {
	_, store := gatewaytest.NewAccess(t)
	clk := gatewaytest.NewClock(time.Now().Truncate(time.Second))
	h := newHarnessWith(t, nil, harnessOpts{Login: true, Now: clk.Now, Store: store})
	b := gatewaytest.NewBrowser(t, h)
	b.SignIn("http://localhost/t/acme/", map[string]any{"sub": "olivia"})
	rec := b.Do("GET", "http://localhost/.portero/userinfo", nil, nil)
	var info struct{ CSRF string }
	if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil || info.CSRF == "" {
		t.Fatalf("userinfo: %s", rec.Body)
	}
	put := func(hdr http.Header) int {
		req := httptest.NewRequest("PUT", "http://localhost/.portero/api/v1/tenants/acme/members/newbie", strings.NewReader(`{"role":"location_manager"}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header[k] = v
		}
		for _, c := range b.Cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.Gateway.ServeHTTP(rec, req)
		if rec.Code == http.StatusForbidden {
			t.Logf("403: %s", rec.Body)
		}
		return rec.Code
	}
	for name, hdr := range map[string]http.Header{
		"no token":     {},
		"wrong token":  {"X-Csrf-Token": {"AAAA" + info.CSRF[4:]}},
		"cross origin": {"X-Csrf-Token": {info.CSRF}, "Origin": {"https://evil.example.com"}},
		"empty token":  {"X-Csrf-Token": {""}},
	} {
		if code := put(hdr); code != http.StatusForbidden {
			t.Errorf("%s: %d", name, code)
		}
	}
	if code := put(http.Header{"X-Csrf-Token": {info.CSRF}}); code != http.StatusOK {
		t.Fatalf("with the token: %d", code)
	}
}
