package control_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/internal/gatewaytest"
)

// The control plane's ServeMux patterns answer a wrong method or an
// unknown path as the endpoints did before they were patterns: after
// sign-in, with the endpoint's own reason.
func TestControlRoutesRefuseWhatTheyDoNotServe(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/.portero/admin/", samClaims())
	anon := gatewaytest.NewBrowser(t, m.Harness)
	for _, c := range []struct {
		b              *gatewaytest.Browser
		method, path   string
		status         int
		reason, header string
	}{
		{m.B, "PUT", "/.portero/master-access", http.StatusMethodNotAllowed, "master.method", "GET, POST"},
		{m.B, "DELETE", "/.portero/master-access/end", http.StatusMethodNotAllowed, "master.method", "GET, POST"},
		{m.B, "PUT", "/.portero/logout", http.StatusMethodNotAllowed, "logout.method", "GET, POST"},
		{m.B, "GET", "/.portero/admin/no-such-page", http.StatusNotFound, "console.unknown", ""},
		{m.B, "GET", "/.portero/admin/master/ma_1/revoke", http.StatusNotFound, "console.unknown", ""}, // POST only
		{m.B, "GET", "/.portero/no-such-endpoint", http.StatusNotFound, "control.unknown", ""},
		{anon, "GET", "/.portero/admin/no-such-page", http.StatusFound, "", ""}, // sign in first
		{anon, "PUT", "/.portero/master-access", http.StatusUnauthorized, "deny.unauthenticated", ""},
	} {
		rec := c.b.Do(c.method, "http://localhost"+c.path, nil, http.Header{"Accept": {"application/json"}})
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.reason) || rec.Header().Get("Allow") != c.header {
			t.Errorf("%s %s: %d %q Allow=%q, want %d %s", c.method, c.path, rec.Code, rec.Body, rec.Header().Get("Allow"), c.status, c.reason)
		}
	}
}
