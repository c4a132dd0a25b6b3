package config

import (
	"errors"
	"strings"
	"testing"
)

// The config decoder on any input: it returns a validated configuration
// or Errors naming the file, never panics, and what it accepts keeps the
// promises the rest of Portero relies on.
func FuzzParse(f *testing.F) {
	// Seeds stay small (the fuzzer minimises every new input it finds, and
	// a large seed makes that slow); together they touch every section.
	for _, seed := range []string{
		minimal,
		minimal + "listen: {public: ':80', ops: '127.0.0.1:9', read_header_timeout: 5s}\nheaders: {profile: kubernetes}\nlog: {level: warn}\n",
		minimal + "assertion: {header: X-A, issuer: i, audience: a, ttl: 30s}\npolicy: {dir: ., watch: false}\n",
		minimal + "access: {store: ./a.db, cache_size: 10, watch_interval: 1s}\nmaster_access: {audit_log: ./a.jsonl, reason_min_length: 5, default_duration: 10m, max_duration: 1h, admin_url: /admin/, webhook: 'https://h', tenant_webhooks: {acme: 'https://a'}}\n",
		strings.Replace(minimal, "  audiences: [portero]\n", "  audiences: [portero]\n  client_id: c\n  client_secret: s\n  redirect_url: https://x.example/.portero/callback\n  clock_skew: 30s\n  claims: {subject: sub, roles: realm_access.roles}\n", 1) +
			"session: {keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=], cookie_name: s, lifetime: 1h, domain: x.example}\nlogin: {allowed_redirect_hosts: ['*.x.example']}\n",
		minimal + "limits:\n  sign_in: {per_minute: 5, burst: 2}\n  max_clients: 10\n",
		minimal + "tenant:\n  host: \"{tenant}.apps.example.com\"\n  path: /t/{tenant}/\n",
		minimal + "routes:\n  - name: b\n    upstream: http://x\n    body: {inspect: false}\n    extra_methods: [PROPFIND]\n",
		"a: &a [x, y]\nb: *a\n",
		"routes: &r [{name: a, upstream: 'http://x', hosts: &h [a.b, c.d]}]\nx: *r\n",
		"oidc: {issuer: ${UNSET_VAR}}\n",
		"oidc: {issuer: ${UNSET_VAR:-https://x}}\n",
		"listen: [1, 2]\n",
		"? [a]\n: b\n",
		"routes:\n  - !!binary aGVsbG8=\n",
		"master_access:\n  tenant_webhooks: {a: x, a: y}\n",
		"---\n---\n",
		"\xef\xbb\xbfoidc: {}\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := Parse("fuzz.yaml", []byte(src))
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v is not Errors", err, err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error without file or message: %+v", e)
				}
			}
			if cfg != nil {
				t.Fatal("a configuration with errors")
			}
			return
		}
		if len(cfg.Routes) == 0 || cfg.Listen.Public == "" || cfg.Headers.Profile == "" || cfg.Log.Level == "" {
			t.Fatalf("accepted without required values or defaults: %+v", cfg)
		}
		for _, r := range cfg.Routes {
			if r.UpstreamURL == nil || !strings.HasPrefix(r.PathPrefix, "/") || r.Timeout <= 0 {
				t.Fatalf("route %+v", r)
			}
		}
		for _, alg := range cfg.OIDC.Algorithms {
			if alg == "none" || strings.HasPrefix(alg, "HS") {
				t.Fatalf("algorithm %s accepted", alg)
			}
		}
		l := cfg.Limits
		for _, r := range []Rate{l.SignIn, l.Callback, l.MasterAccess, l.ManagementWrites, l.AuditedRefusals} {
			if r.PerMinute <= 0 || r.Burst <= 0 {
				t.Fatalf("limits %+v", l)
			}
		}
		if l.MaxClients <= 0 {
			t.Fatalf("limits %+v", l)
		}
		if cfg.BrowserLogin() && len(cfg.Session.KeyBytes) == 0 {
			t.Fatal("browser sign-in without session keys")
		}
	})
}
