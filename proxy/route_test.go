package proxy

import (
	"testing"

	"github.com/portero-gateway/portero/config"
)

func TestRouterMatch(t *testing.T) {
	t.Parallel()
	rt := newRouter([]config.Route{
		{Name: "catch-all", PathPrefix: "/"},
		{Name: "tenant-app", Hosts: []string{"*.apps.example.com"}, PathPrefix: "/"},
		{Name: "tenant-api", Hosts: []string{"*.apps.example.com"}, PathPrefix: "/api"},
		{Name: "admin", Hosts: []string{"admin.apps.example.com"}, PathPrefix: "/"},
		{Name: "api-v2", Hosts: []string{"*.apps.example.com"}, PathPrefix: "/api/v2/"},
	})
	cases := []struct{ host, path, want string }{
		{"acme.apps.example.com", "/", "tenant-app"},
		{"acme.apps.example.com", "/api", "tenant-api"},
		{"acme.apps.example.com", "/api/orders", "tenant-api"},
		{"acme.apps.example.com", "/apix", "tenant-app"},
		{"acme.apps.example.com", "/api/v2", "api-v2"},
		{"acme.apps.example.com", "/api/v2/x", "api-v2"},
		{"admin.apps.example.com", "/api/x", "admin"},
		{"a.b.apps.example.com", "/api", "catch-all"},
		{"apps.example.com", "/", "catch-all"},
		{"evilapps.example.com", "/", "catch-all"},
		{"other.com", "/api", "catch-all"},
	}
	for _, tc := range cases {
		got := rt.match(tc.host, tc.path)
		if got == nil || got.cfg.Name != tc.want {
			t.Errorf("match(%q, %q) = %v, want %s", tc.host, tc.path, got, tc.want)
		}
	}
	if r := newRouter([]config.Route{{Name: "x", Hosts: []string{"a.com"}, PathPrefix: "/"}}).match("b.com", "/"); r != nil {
		t.Errorf("no route should match, got %s", r.cfg.Name)
	}
}

func TestAppSegments(t *testing.T) {
	te := newTenantExtractor(config.Tenant{Host: "{tenant}.apps.example.com", Path: "/t/{tenant}/"})
	if _, app := te.extract("localhost", []string{"t", "acme", "locations", "l1"}); len(app) != 2 || app[0] != "locations" {
		t.Errorf("path tenant: %q", app)
	}
	if _, app := te.extract("acme.apps.example.com", []string{"locations", "l1"}); len(app) != 2 {
		t.Errorf("host tenant: %q", app)
	}
}

func TestTenantExtraction(t *testing.T) {
	t.Parallel()
	te := newTenantExtractor(config.Tenant{Host: "{tenant}.apps.example.com", Path: "/t/{tenant}/"})
	cases := []struct {
		host string
		segs []string
		want string
	}{
		{"acme.apps.example.com", nil, "acme"},
		{"acme.apps.example.com", []string{"t", "globex"}, "acme"}, // host wins
		{"x.acme.apps.example.com", nil, ""},
		{"apps.example.com", nil, ""},
		{"localhost", []string{"t", "acme", "orders"}, "acme"},
		{"localhost", []string{"t", "acme"}, "acme"},
		{"localhost", []string{"t"}, ""},
		{"localhost", []string{"x", "acme"}, ""},
		{"localhost", []string{"t", "ACME"}, ""},
		{"localhost", []string{"t", "ac me"}, ""},
		{"localhost", []string{"t", "-acme"}, ""},
		{"localhost", []string{"t", ""}, ""},
	}
	for _, tc := range cases {
		if got, _ := te.extract(tc.host, tc.segs); got != tc.want {
			t.Errorf("extract(%q, %q) = %q, want %q", tc.host, tc.segs, got, tc.want)
		}
	}
}
