package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/proxy"
)

// While the access store fails closed, /readyz says so with the reason and
// requests that need its facts are refused with 503, not served from cache.
func TestReadyzReportsAnUnusableStore(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/t/acme/", samClaims())
	m.MustStart(t, "acme", "Ticket SUP-80: check readiness", "full", "10m")
	if rec := m.B.Do("GET", "http://localhost/t/acme/", nil, nil); rec.Code != http.StatusOK {
		t.Fatalf("before: %d", rec.Code)
	}
	ops := httptest.NewServer(proxy.OpsHandler(m.Gateway, m.Registry))
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
	m.Store.Close()
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "access store unusable") {
		t.Fatalf("readyz with an unusable store: %d %s", code, body)
	}
	if rec := m.B.Do("GET", "http://localhost/t/acme/", nil, nil); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("request while the store is unusable: %d %s", rec.Code, rec.Body)
	}
}
