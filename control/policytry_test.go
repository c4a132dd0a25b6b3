package control_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/control"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/policy"
)

// POST /policy/try answers what the gateway decides on a request, as the
// request itself is answered, with the explain trace; only system admins
// may ask (the policy's policy.try), and a bad request names its field.
func TestTryRequest(t *testing.T) {
	h, _ := gatewaytest.NewAccess(t)
	sam := adminToken(h, t)
	try := func(token, body string) (int, policy.Trial, map[string]any) {
		t.Helper()
		status, out := apiCall(h, t, token, "POST", "/policy/try", body)
		raw, _ := json.Marshal(out)
		var tr policy.Trial
		_ = json.Unmarshal(raw, &tr)
		return status, tr, out
	}
	cases := []struct {
		name, method, target, user, tenant string
		// the request itself, sent with the user's token ("" sends none)
		allow  bool
		status int
		reason string
	}{
		{"administrator", "GET", "/t/acme/settings", "adam", "", true, 0, ""},
		{"location manager", "GET", "/t/acme/settings", "leo", "", false, 0, ""},
		{"stranger", "GET", "/t/acme/reviews", "eve", "", false, 0, ""},
		{"anonymous", "GET", "/t/acme/reviews", "", "", false, 401, ""},
	}
	for _, tc := range cases {
		body, _ := json.Marshal(control.TryRequest{Method: tc.method, Target: tc.target, User: tc.user, Tenant: tc.tenant})
		status, tr, out := try(sam, string(body))
		if status != 200 || tr.Allow != tc.allow || tr.Route != "app" || tr.Tenant != "acme" || tr.Refused ||
			tr.Revision == "" || !strings.Contains(tr.Trace, "data.portero.authz.decision") {
			t.Fatalf("%s: %d %v", tc.name, status, out)
		}
		if tc.status != 0 && tr.Status != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, tr.Status, tc.status)
		}
		// The request itself is answered as tried (a 401 with the
		// gateway's own reason: it asks for credentials).
		token := ""
		if tc.user != "" {
			token = h.TokenFor(t, tc.user)
		}
		rec := h.Do(t, tc.method, "http://localhost"+tc.target, token, nil, "")
		if got := rec.Code < 300; got != tr.Allow || (!tr.Allow && (rec.Code != tr.Status || tr.Status != 401 && !strings.Contains(rec.Body.String(), tr.Reason))) {
			t.Fatalf("%s: tried %v %d %s, the request got %d %s", tc.name, tr.Allow, tr.Status, tr.Reason, rec.Code, rec.Body)
		}
	}
	// A tenant named in place of the path's.
	if status, tr, out := try(sam, `{"method":"GET","target":"/t/acme/settings","user":"adam","tenant":"globex"}`); status != 200 || tr.Tenant != "globex" || tr.Allow {
		t.Fatalf("tenant named: %d %v", status, out)
	}
	// Refused before the policy: no trace.
	if status, tr, out := try(sam, `{"method":"BREW","target":"/t/acme/reviews","user":"adam"}`); status != 200 || !tr.Refused || tr.Allow ||
		tr.Reason != "request.method_not_allowed" || tr.Trace != "" {
		t.Fatalf("refused method: %d %v", status, out)
	}
	for _, tc := range []struct{ name, body, field string }{
		{"no target", `{"method":"GET"}`, "target"},
		{"relative target", `{"method":"GET","target":"t/acme"}`, "target"},
		{"ftp", `{"method":"GET","target":"ftp://x/y"}`, "target"},
		{"no method", `{"target":"/t/acme"}`, "method"},
		{"unknown field", `{"method":"GET","target":"/","claims":{}}`, "claims"},
	} {
		if status, _, out := try(sam, tc.body); status != 400 || out["field"] != tc.field {
			t.Errorf("%s: %d %v", tc.name, status, out)
		}
	}
	// Only system admins: not the tenant's owner or administrator.
	for _, user := range []string{"olivia", "adam", "leo", "eve"} {
		if status, _, out := try(h.TokenFor(t, user), `{"method":"GET","target":"/t/acme/settings","user":"adam"}`); status != 403 || out["reason"] != "admin.not_allowed" {
			t.Errorf("%s tries a request: %d %v", user, status, out)
		}
	}
}

// The console's policy page has the form for system admins; a post shows
// the decision and the trace; others get no form, and a post is refused.
func TestConsoleTryRequest(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/.portero/admin/", samClaims())
	code, body := console(m, t, "GET", "policy", nil)
	if code != 200 || !strings.Contains(body, `id="try-form"`) {
		t.Fatalf("policy page: %d %.500s", code, body)
	}
	code, body = console(m, t, "POST", "policy/try", url.Values{"method": {"get"}, "target": {"http://acme.apps.example.com/api/reviews"}, "user": {"olivia"}})
	if code != 200 || !strings.Contains(body, `id="try-decision"`) || !strings.Contains(body, `id="try-trace"`) || !strings.Contains(body, `value="GET"`) {
		t.Fatalf("tried: %d %.3000s", code, body)
	}
	code, body = console(m, t, "POST", "policy/try", url.Values{"method": {"GET"}, "target": {"reviews"}})
	if code != 200 || !strings.Contains(body, `id="try-error"`) || strings.Contains(body, `id="try-decision"`) {
		t.Fatalf("bad target: %d %.3000s", code, body)
	}
	// Without the session's CSRF token, refused.
	if rec := m.B.Do("POST", "http://localhost/.portero/admin/policy/try", url.Values{"method": {"GET"}, "target": {"/"}, "csrf": {"forged"}},
		http.Header{"Origin": {"http://localhost"}}); rec.Code != http.StatusForbidden {
		t.Fatalf("forged csrf: %d", rec.Code)
	}
}
