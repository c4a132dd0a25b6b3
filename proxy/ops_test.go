package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
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
	code, body := get()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "access store unusable") {
		t.Fatalf("readyz with an unusable store: %d %s", code, body)
	}
	got := decodeReadyz(t, body)
	if got.Ready || got.Checks["policy"] != "ok" || got.Checks["idp"] != "ok" || !strings.HasPrefix(got.Checks["store"], "access store unusable") {
		t.Fatalf("readyz checks with an unusable store: %s", body)
	}
	if rec := m.B.Do("GET", "http://localhost/t/acme/", nil, nil); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("request while the store is unusable: %d %s", rec.Code, rec.Body)
	}
}

type readyzBody struct {
	Ready          bool              `json:"ready"`
	Reason         string            `json:"reason"`
	Checks         map[string]string `json:"checks"`
	PolicyRevision string            `json:"policy_revision"`
}

func decodeReadyz(t *testing.T, body string) readyzBody {
	t.Helper()
	var b readyzBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return b
}

func readyz(t *testing.T, ops string) (int, readyzBody) {
	t.Helper()
	resp, err := http.Get(ops + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("readyz Content-Type %q", ct)
	}
	return resp.StatusCode, decodeReadyz(t, string(body))
}

// /readyz lists every check, not only the first that fails: with discovery
// pending and the store closed, both are named, and the policy is ok.
func TestReadyzListsEveryFailingCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ops := httptest.NewServer(proxy.OpsHandler(h.Gateway, h.Registry))
	defer ops.Close()
	code, got := readyz(t, ops.URL)
	if code != http.StatusOK || !got.Ready || got.Reason != "" || got.PolicyRevision == "" {
		t.Fatalf("ready gateway: %d %+v", code, got)
	}
	if len(got.Checks) != 2 || got.Checks["policy"] != "ok" || got.Checks["idp"] != "ok" {
		t.Fatalf("checks without a store: %v (want policy and idp ok, no store)", got.Checks)
	}

	store, err := access.Open(context.Background(), filepath.Join(t.TempDir(), "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	u := newHarnessWith(t, nil, harnessOpts{Store: store, NoDiscovery: true})
	ops2 := httptest.NewServer(proxy.OpsHandler(u.Gateway, u.Registry))
	defer ops2.Close()
	store.Close()
	code, got = readyz(t, ops2.URL)
	if code != http.StatusServiceUnavailable || got.Ready {
		t.Fatalf("unready gateway: %d %+v", code, got)
	}
	if got.Checks["policy"] != "ok" || !strings.HasPrefix(got.Checks["idp"], "oidc discovery not completed for ") ||
		!strings.HasPrefix(got.Checks["store"], "access store unusable") {
		t.Fatalf("checks: %v", got.Checks)
	}
	if got.Reason != got.Checks["idp"]+"; "+got.Checks["store"] {
		t.Fatalf("reason %q does not join the failing checks in order", got.Reason)
	}
	if err := u.Gateway.Ready(); err == nil || !strings.Contains(err.Error(), "oidc discovery") || !strings.Contains(err.Error(), "access store") {
		t.Fatalf("Ready() = %v, want both failures", err)
	}
}

// Profiles are served only with listen.pprof: true.
func TestPprofOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra string
		want  int
	}{
		{"default", "", http.StatusNotFound},
		{"off", "listen:\n  pprof: false\n", http.StatusNotFound},
		{"on", "listen:\n  pprof: true\n", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessWith(t, nil, harnessOpts{Extra: tc.extra})
			ops := httptest.NewServer(proxy.OpsHandler(h.Gateway, h.Registry))
			defer ops.Close()
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/symbol"} {
				resp, err := http.Get(ops.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("%s: %d, want %d", path, resp.StatusCode, tc.want)
				}
			}
			// The rest of the ops listener is there either way.
			resp, err := http.Get(ops.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("/metrics: %d", resp.StatusCode)
			}
		})
	}
}

// Every refusal Portero writes itself is counted by route and reason id in
// portero_denials_total; a forwarded request is not.
func TestDenialsAreCountedByReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for _, tc := range []struct {
		url, token string
		route      string
		reason     string
	}{
		{"http://acme.apps.example.com/api/x", "", "api", "auth.required"},
		{"http://acme.apps.example.com/api/x", "not-a-jwt", "api", "auth.invalid"},
		{"http://acme.apps.example.com/%2e%2e/api", "", "none", "request.bad_path"},
	} {
		before := h.Metric(t, "portero_denials_total", "route", tc.route, "reason", tc.reason)
		rec := h.Do(t, "GET", tc.url, tc.token, nil, "")
		if rec.Code < 400 || !strings.Contains(rec.Body.String(), tc.reason) {
			t.Fatalf("%s: %d %s, want a denial %s", tc.url, rec.Code, rec.Body, tc.reason)
		}
		if got := h.Metric(t, "portero_denials_total", "route", tc.route, "reason", tc.reason); got != before+1 {
			t.Errorf("%s: portero_denials_total{route=%q,reason=%q} = %v, want %v", tc.url, tc.route, tc.reason, got, before+1)
		}
	}
	total := func() (n float64) {
		families, err := h.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "portero_denials_total" {
				for _, m := range f.Metric {
					n += m.Counter.GetValue()
				}
			}
		}
		return n
	}
	before := total()
	if rec := h.Do(t, "GET", "http://acme.apps.example.com/api/x", h.Member(t), nil, ""); rec.Code != http.StatusOK {
		t.Fatalf("member: %d %s", rec.Code, rec.Body)
	}
	h.UpstreamSaw(t)
	if after := total(); after != before {
		t.Errorf("an allowed request changed portero_denials_total: %v -> %v", before, after)
	}
}
