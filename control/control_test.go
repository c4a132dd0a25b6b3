package control_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
)

// One cross-site rule for every state-changing control endpoint a browser
// reaches with its cookies: each hostile variant is refused at each of
// them and changes nothing.
func TestCrossSiteRuleEverywhere(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	m.B.SignIn("http://localhost/.portero/admin/", samClaims())
	token := csrf(m, t)
	other := gatewaytest.NewBrowser(t, m.Harness)
	other.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "ada", "groups": []string{"system-admins"}})
	otherToken := csrfField.FindStringSubmatch(other.Do("GET", "http://localhost/.portero/master-access", nil, nil).Body.String())[1]

	type endpoint struct {
		name    string
		send    func(token string, hdr http.Header) *httptest.ResponseRecorder
		changed func() bool
	}
	endpoints := []endpoint{
		{"sign-out", func(tok string, hdr http.Header) *httptest.ResponseRecorder {
			return m.B.Do("POST", "http://localhost/.portero/logout", url.Values{"csrf": {tok}}, hdr)
		}, func() bool {
			return m.B.Do("GET", "http://localhost/.portero/userinfo", nil, nil).Code != http.StatusOK
		}},
		{"master access", func(tok string, hdr http.Header) *httptest.ResponseRecorder {
			return m.B.Do("POST", "http://localhost/.portero/master-access", url.Values{"csrf": {tok}, "tenant": {"acme"},
				"reason": {"Ticket SUP-1: cross-site test"}, "mode": {"full"}, "duration": {"10m"}}, hdr)
		}, func() bool { open, _ := m.Store.MasterSessions(ctx, true, "sam", "", 0); return len(open) > 0 }},
		{"master access end", func(tok string, hdr http.Header) *httptest.ResponseRecorder {
			return m.B.Do("POST", "http://localhost/.portero/master-access/end", url.Values{"csrf": {tok}}, hdr)
		}, func() bool { return false }},
		{"console form", func(tok string, hdr http.Header) *httptest.ResponseRecorder {
			return m.B.Do("POST", "http://localhost/.portero/admin/tenants/acme/status", url.Values{"csrf": {tok}, "status": {"suspended"}, "confirmed": {"1"}}, hdr)
		}, func() bool { tn, _ := m.Store.Tenant(ctx, "acme"); return tn.Status != "active" }},
		{"management API", func(tok string, hdr http.Header) *httptest.ResponseRecorder {
			h := http.Header{"Content-Type": {"application/json"}, "X-Csrf-Token": {tok}}
			for k, v := range hdr {
				h[k] = v
			}
			req := httptest.NewRequest("PATCH", "http://localhost/.portero/api/v1/tenants/acme", strings.NewReader(`{"status":"suspended"}`))
			req.Header = h
			for _, c := range m.B.Cookies {
				req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
			rec := httptest.NewRecorder()
			m.Gateway.ServeHTTP(rec, req)
			return rec
		}, func() bool { tn, _ := m.Store.Tenant(ctx, "acme"); return tn.Status != "active" }},
	}
	hostile := []struct {
		name  string
		token string
		hdr   http.Header
	}{
		{"no token", "", nil},
		{"wrong token", "AAAA" + token[4:], nil},
		{"another session's token", otherToken, nil},
		{"cross-origin Origin", token, http.Header{"Origin": {"https://evil.example.com"}}},
		{"Origin of another port", token, http.Header{"Origin": {"http://localhost:8080"}}},
		{"null Origin", token, http.Header{"Origin": {"null"}}},
		{"Sec-Fetch-Site cross-site", token, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"Sec-Fetch-Site same-site", token, http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"Sec-Fetch-Site cross-site with a same Origin", token, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"http://localhost"}}},
	}
	for _, e := range endpoints {
		for _, h := range hostile {
			rec := e.send(h.token, h.hdr)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "csrf.") {
				t.Errorf("%s, %s: %d %.200s", e.name, h.name, rec.Code, rec.Body)
			}
			if e.changed() {
				t.Fatalf("%s, %s: the request took effect", e.name, h.name)
			}
		}
	}
	// The same requests from this origin go through.
	same := http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://localhost"}}
	if rec := endpoints[4].send(token, same); rec.Code != http.StatusOK || !endpoints[4].changed() {
		t.Fatalf("management API from this origin: %d %s", rec.Code, rec.Body)
	}
	if rec := endpoints[0].send(token, same); rec.Code != http.StatusSeeOther || !endpoints[0].changed() {
		t.Fatalf("sign-out from this origin: %d %s", rec.Code, rec.Body)
	}
}

// rateHarness: tight limits, a fixed clock the test moves.
func rateHarness(t *testing.T) *gatewaytest.Master {
	return newMasterHarness(t, `limits:
  sign_in: {per_minute: 60, burst: 2}
  callback: {per_minute: 60, burst: 2}
  master_access: {per_minute: 60, burst: 2}
  management_writes: {per_minute: 60, burst: 2}
  audited_refusals: {per_minute: 1, burst: 1}
`)
}

func TestRateLimitedSignInPerClient(t *testing.T) {
	m := rateHarness(t)
	login := func(remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://localhost/.portero/login?rd=/t/acme/", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		m.Gateway.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := login("192.0.2.1:1000"); rec.Code != http.StatusFound {
			t.Fatalf("sign-in %d: %d", i, rec.Code)
		}
	}
	rec := login("192.0.2.1:2000")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), "rate.limited") {
		t.Fatalf("third sign-in: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if rec.Header().Get("Set-Cookie") != "" {
		t.Error("a refused sign-in set a login cookie")
	}
	if rec := login("198.51.100.7:1000"); rec.Code != http.StatusFound {
		t.Fatalf("another client: %d", rec.Code)
	}
	// IPv6 clients are keyed by /64.
	login("[2001:db8:1:2::1]:1000")
	login("[2001:db8:1:2::2]:1000")
	if rec := login("[2001:db8:1:2:ffff::3]:1000"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third sign-in from the same /64: %d", rec.Code)
	}
	if rec := login("[2001:db8:1:3::1]:1000"); rec.Code != http.StatusFound {
		t.Fatalf("another /64: %d", rec.Code)
	}
	m.Clock.Advance(time.Second)
	if rec := login("192.0.2.1:1000"); rec.Code != http.StatusFound {
		t.Fatalf("after a second: %d", rec.Code)
	}
	// The callback has its own limit.
	for range 2 {
		m.B.Do("GET", "http://localhost/.portero/callback?code=x&state=y", nil, nil)
	}
	if rec := m.B.Do("GET", "http://localhost/.portero/callback?code=x&state=y", nil, nil); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third callback: %d", rec.Code)
	}
	for endpoint, n := range map[string]float64{"sign_in": 2, "callback": 1} {
		if v := m.Metric(t, "portero_rate_limited_total", "endpoint", endpoint); v != n {
			t.Errorf("portero_rate_limited_total{endpoint=%q} = %v, want %v", endpoint, v, n)
		}
	}
}

func TestRateLimitedManagementWritesPerUser(t *testing.T) {
	m := rateHarness(t)
	sam := m.Iss.Sign(t, func() map[string]any {
		c := m.Iss.Claims("sam", "portero")
		c["groups"] = []string{"system-admins"}
		return c
	}())
	for i := range 2 {
		if s, b := apiCall(m.Harness, t, sam, "PATCH", "/tenants/acme", `{"name":"Acme `+string(rune('A'+i))+`"}`); s != 200 {
			t.Fatalf("write %d: %d %v", i, s, b)
		}
	}
	rec := m.Do(t, "PATCH", "http://localhost/.portero/api/v1/tenants/acme", sam, http.Header{"Content-Type": {"application/json"}}, `{"status":"suspended"}`)
	var body map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusTooManyRequests || body["reason"] != "rate.limited" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third write: %d %v", rec.Code, body)
	}
	if tn, _ := m.Store.Tenant(context.Background(), "acme"); tn.Status != "active" {
		t.Fatal("a rate-limited write took effect")
	}
	// Reads are not limited; another user has their own budget.
	if s, _ := apiCall(m.Harness, t, sam, "GET", "/tenants/acme", ""); s != 200 {
		t.Fatalf("read: %d", s)
	}
	if s, _ := apiCall(m.Harness, t, m.Iss.Sign(t, m.Iss.Claims("olivia", "portero")), "PUT", "/tenants/acme/members/lou", `{"role":"location_manager"}`); s != 200 {
		t.Fatalf("another user: %d", s)
	}
	// The console's forms share the user's budget.
	m.B.SignIn("http://localhost/.portero/admin/", samClaims())
	if code, _ := console(m, t, "POST", "tenants/acme/status", url.Values{"status": {"suspended"}, "confirmed": {"1"}}); code != http.StatusTooManyRequests {
		t.Fatalf("console write over the limit: %d", code)
	}
	if v := m.Metric(t, "portero_rate_limited_total", "endpoint", "management_write"); v != 2 {
		t.Errorf("portero_rate_limited_total{endpoint=management_write} = %v", v)
	}
}

// Refused master-access attempts cannot flood the fsync'ed audit log:
// attempts are limited per user before anything is decided, and refusals
// share one budget for the log; the rest are counted.
func TestMasterAccessAttemptsCannotFloodTheAuditLog(t *testing.T) {
	m := rateHarness(t)
	m.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "mallory"})
	attempt := func() int {
		return m.Start(t, "acme", "Ticket SUP-9: let me in please", "full", "10m").Code
	}
	if code := attempt(); code != http.StatusForbidden {
		t.Fatalf("first attempt: %d", code)
	}
	if code := attempt(); code != http.StatusForbidden {
		t.Fatalf("second attempt: %d", code)
	}
	if code := attempt(); code != http.StatusTooManyRequests {
		t.Fatalf("third attempt: %d", code)
	}
	raw, _ := os.ReadFile(m.AuditPath)
	if n := strings.Count(string(raw), "\n"); n != 1 {
		t.Fatalf("%d audit records, want 1: %s", n, raw)
	}
	if v := m.Metric(t, "portero_master_access_refusals_suppressed_total"); v != 1 {
		t.Errorf("suppressed refusals = %v, want 1", v)
	}
	if v := m.Metric(t, "portero_master_access_total", "event", "refused"); v != 2 {
		t.Errorf("refused events = %v, want 2", v)
	}
	if v := m.Metric(t, "portero_rate_limited_total", "endpoint", "master_access"); v != 1 {
		t.Errorf("rate-limited master attempts = %v, want 1", v)
	}
	// A minute later the budget is back: the refusal is written again.
	m.Clock.Advance(time.Minute)
	if code := attempt(); code != http.StatusForbidden {
		t.Fatalf("attempt after a minute: %d", code)
	}
	raw, _ = os.ReadFile(m.AuditPath)
	if n := strings.Count(string(raw), "\n"); n != 2 {
		t.Fatalf("%d audit records, want 2", n)
	}
}

// A member with user_management sees the member controls the policy lets
// them use: add, and edit or remove only members ranked below them; the
// role list offers only roles below theirs; a climbing change is shown next
// to its field and changes nothing.
func TestConsoleForUserManagers(t *testing.T) {
	m := newMasterHarness(t, "")
	ctx := context.Background()
	for _, mem := range []access.Member{
		{User: "ann", Role: "account_manager", Rights: []string{"user_management"}, Businesses: []string{"b1"}, Locations: []string{"l1"}, Profile: "services"},
		{User: "adam", Role: "administrator"},
		{User: "lou", Role: "location_manager", Locations: []string{"l1"}},
		{User: "avery", Role: "account_manager"},
	} {
		mem.Tenant = "acme"
		if _, err := m.Store.PutMember(ctx, mem); err != nil {
			t.Fatal(err)
		}
	}
	m.B.SignIn("http://localhost/.portero/admin/", map[string]any{"sub": "ann"})
	if _, body := console(m, t, "GET", "", nil); !strings.Contains(body, `id="members-acme"`) {
		t.Fatalf("home: %.600s", body)
	}
	code, body := console(m, t, "GET", "t/acme/members", nil)
	if code != 200 || !strings.Contains(body, `id="add-member"`) || !strings.Contains(body, `id="edit-lou"`) || !strings.Contains(body, `id="remove-lou"`) {
		t.Fatalf("members page: %d %.2000s", code, body)
	}
	for _, above := range []string{"adam", "avery", "ann"} {
		if strings.Contains(body, `id="edit-`+above+`"`) || strings.Contains(body, `id="remove-`+above+`"`) || strings.Contains(body, `id="active-`+above+`"`) {
			t.Errorf("controls for %s, who is not below ann", above)
		}
	}
	_, body = console(m, t, "GET", "t/acme/members/new", nil)
	if !strings.Contains(body, `<option value="location_manager"`) || strings.Contains(body, `<option value="account_manager"`) || strings.Contains(body, `<option value="administrator"`) {
		t.Fatalf("role options: %.3000s", body)
	}
	if code, _ := console(m, t, "GET", "t/acme/members/adam/edit", nil); code != http.StatusForbidden {
		t.Fatalf("edit form of an administrator: %d", code)
	}
	before := snapshotOf(t, m.Store)
	code, body = console(m, t, "POST", "t/acme/members/lou/edit", url.Values{"role": {"location_manager"}, "locations": {"l1, l9"}})
	if code != http.StatusForbidden || !strings.Contains(body, "only locations you are assigned") {
		t.Fatalf("climbing through the form: %d %.2000s", code, body)
	}
	code, _ = console(m, t, "POST", "t/acme/members/adam/remove", url.Values{"confirmed": {"1"}})
	if code != http.StatusForbidden {
		t.Fatalf("removing an administrator: %d", code)
	}
	if snapshotOf(t, m.Store) != before {
		t.Fatal("the store changed")
	}
	if code, _ = console(m, t, "POST", "t/acme/members/new", url.Values{"user": {"newbie"}, "role": {"location_manager"}, "locations": {"l1"}, "feature.reviews": {"edit"}}); code != http.StatusSeeOther {
		t.Fatalf("adding a location manager: %d", code)
	}
}

func snapshotOf(t *testing.T, store *access.Store) string {
	t.Helper()
	members, err := store.Members(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(members)
	return string(b)
}
