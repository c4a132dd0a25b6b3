package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// While the access store fails closed, /readyz says so with the reason and
// requests that need its facts are refused with 503, not served from cache.
func TestReadyzReportsAnUnusableStore(t *testing.T) {
	m := newMasterHarness(t, "")
	m.b.signIn("http://localhost/t/acme/", samClaims())
	m.mustStart(t, "acme", "Ticket SUP-80: check readiness", "full", "10m")
	if rec := m.b.do("GET", "http://localhost/t/acme/", nil, nil); rec.Code != http.StatusOK {
		t.Fatalf("before: %d", rec.Code)
	}
	ops := httptest.NewServer(OpsHandler(m.gw, m.reg))
	defer ops.Close()
	get := func() (int, string) {
		resp, err := http.Get(ops.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("readyz with a usable store: %d %s", code, body)
	}
	m.store.Close()
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "access store unusable") {
		t.Fatalf("readyz with an unusable store: %d %s", code, body)
	}
	if rec := m.b.do("GET", "http://localhost/t/acme/", nil, nil); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("request while the store is unusable: %d %s", rec.Code, rec.Body)
	}
}
