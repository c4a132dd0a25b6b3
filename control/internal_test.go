package control

import (
	"testing"

	"github.com/portero-gateway/portero/config"
)

func TestTenantAppURL(t *testing.T) {
	cases := []struct {
		tenant         config.Tenant
		redirect, want string
	}{
		{config.Tenant{Path: "/t/{tenant}/"}, "", "/t/acme/"},
		{config.Tenant{Host: "{tenant}.apps.example.com"}, "https://login.example.com/.portero/callback", "https://acme.apps.example.com/"},
		{config.Tenant{Host: "{tenant}.apps.localhost"}, "http://localhost:8080/.portero/callback", "http://acme.apps.localhost/"},
		{config.Tenant{}, "", "/"},
	}
	for _, c := range cases {
		p := &Plane{cfg: &config.Config{Tenant: c.tenant, OIDC: config.OIDC{RedirectURL: c.redirect}}}
		if got := p.tenantAppURL("acme"); got != c.want {
			t.Errorf("%+v: %q, want %q", c.tenant, got, c.want)
		}
	}
}
