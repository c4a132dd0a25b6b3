package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
oidc:
  issuer: https://login.example.com
  audiences: [portero]
routes:
  - name: app
    upstream: http://127.0.0.1:3000
`

func TestParseMinimalAppliesDefaults(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Public != ":8080" || cfg.Listen.Ops != "127.0.0.1:9090" {
		t.Errorf("listen defaults: %+v", cfg.Listen)
	}
	r := cfg.Routes[0]
	if r.PathPrefix != "/" || r.UpstreamURL == nil || r.UpstreamURL.Host != "127.0.0.1:3000" || r.Timeout != 30*time.Second {
		t.Errorf("route defaults: %+v", r)
	}
	if cfg.Headers.Profile != ProfilePortero || cfg.Assertion.Header != "X-Portero-Assertion" || cfg.Assertion.TTL != time.Minute {
		t.Errorf("defaults: %+v %+v", cfg.Headers, cfg.Assertion)
	}
	if cfg.OIDC.Claims.Roles != "roles" || strings.Join(cfg.OIDC.Algorithms, ",") != "RS256,ES256,PS256" {
		t.Errorf("oidc defaults: %+v", cfg.OIDC)
	}
	if cfg.Policy.WatchPolicy() {
		t.Error("embedded policy is not watched")
	}
}

func TestTheExampleGatewayYAMLIsValid(t *testing.T) {
	if _, err := Load("../gateway.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("PORTERO_TEST_ISSUER", "https://idp.example.com")
	src := strings.Replace(minimal, "https://login.example.com", "${PORTERO_TEST_ISSUER}", 1)
	src = strings.Replace(src, "http://127.0.0.1:3000", "${PORTERO_TEST_UNSET:-http://127.0.0.1:4000}", 1)
	cfg, err := Parse("g.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OIDC.Issuer != "https://idp.example.com" || cfg.Routes[0].Upstream != "http://127.0.0.1:4000" {
		t.Errorf("expanded: %q %q", cfg.OIDC.Issuer, cfg.Routes[0].Upstream)
	}
}

// Every bad input names file, line and column and says what is expected.
func TestErrorsNameFileLineColumnAndFix(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unknown top-level key", minimal + "listn:\n  public: :80\n", `gateway.yaml:8:1: listn: unknown key "listn"; expected one of: access, assertion, console, forward_auth, headers, limits, listen`},
		{"unknown nested key", minimal + "    upstreams: http://x\n", `gateway.yaml:8:5: routes[0].upstreams: unknown key "upstreams"`},
		{"wrong type bool", minimal + "    api: yes\n", `gateway.yaml:8:10: routes[0].api: expected true or false, got "yes"`},
		{"wrong type int", minimal + "    body: {json: true, max_bytes: lots}\n", `gateway.yaml:8:35: routes[0].body.max_bytes: expected a whole number, got "lots"`},
		{"wrong type list", strings.Replace(minimal, "[portero]", "portero", 1), `gateway.yaml:4:14: oidc.audiences: expected a list, got "portero"`},
		{"wrong type duration", minimal + "    timeout: 30\n", `gateway.yaml:8:14: routes[0].timeout: expected a duration such as 30s or 5m, got "30"`},
		{"duplicate key", minimal + "    name: other\n", `gateway.yaml:8:5: routes[0].name: key "name" appears twice`},
		{"mapping for a string", strings.Replace(minimal, "name: app", "name: {a: b}", 1), `gateway.yaml:6:11: routes[0].name: expected a string, got a mapping`},
		{"missing upstream", strings.Replace(minimal, "    upstream: http://127.0.0.1:3000\n", "", 1), `gateway.yaml:6:5: routes[0].upstream: an upstream URL is required`},
		{"missing issuer", strings.Replace(minimal, "  issuer: https://login.example.com\n", "", 1), `gateway.yaml:3:3: oidc.issuer: the OpenID provider's issuer URL is required`},
		{"missing routes", "oidc:\n  issuer: https://a.example.com\n  audiences: [x]\n", `gateway.yaml: routes: at least one route is required`},
		{"relative upstream", strings.Replace(minimal, "http://127.0.0.1:3000", "127.0.0.1:3000", 1), `gateway.yaml:7:15: routes[0].upstream: "127.0.0.1:3000" is not an absolute http:// or https:// URL`},
		{"plain http issuer", strings.Replace(minimal, "https://login", "http://login", 1), `must be an https:// URL (plain http is allowed only for localhost)`},
		{"unset env var", strings.Replace(minimal, "https://login.example.com", "${PORTERO_TEST_NOT_SET}", 1), `gateway.yaml:3:11: oidc.issuer: environment variable PORTERO_TEST_NOT_SET is not set`},
		{"bad profile", minimal + "headers:\n  profile: k8s\n", `gateway.yaml:9:12: headers.profile: unknown profile "k8s"; expected portero or kubernetes`},
		{"bad host", minimal + "    hosts: [\"*.Example.com\"]\n", `routes[0].hosts[0]: "*.Example.com" is not a lower-case host name`},
		{"bad tenant template", minimal + "tenant:\n  host: \"{tenant}-x.example.com\"\n", `tenant.host: "{tenant}-x.example.com" must be a lower-case host name with {tenant} as exactly one whole label`},
		{"bad tenant path", minimal + "tenant:\n  path: /t/x{tenant}/\n", `tenant.path:`},
		{"duplicate route names", minimal + "  - name: app\n    upstream: http://127.0.0.1:1\n", `gateway.yaml:8:11: routes[1].name: route name "app" is used twice`},
		{"missing policy dir", minimal + "policy:\n  dir: ./no-such-dir\n", `policy.dir: `},
		{"bad listen address", minimal + "listen:\n  public: 8080\n", `gateway.yaml:9:11: listen.public: expected host:port such as :8080`},
		{"bad max connections", minimal + "listen:\n  max_connections: -1\n", `gateway.yaml:9:20: listen.max_connections: must be between 1 and 1000000`},
		{"bad client connection rate", minimal + "listen:\n  client_connections: {per_minute: -5}\n", `listen.client_connections.per_minute: must be 1 or more`},
		{"bad extra method", minimal + "    extra_methods: [propfind]\n", `gateway.yaml:8:21: routes[0].extra_methods[0]: "propfind" is not an upper-case method name`},
		{"bad clock skew", strings.Replace(minimal, "  audiences: [portero]\n", "  audiences: [portero]\n  clock_skew: 1h\n", 1), `oidc.clock_skew: must be between 1s and 10m`},
		{"forward-auth without trusted proxies", minimal + "forward_auth:\n  listen: 127.0.0.1:9091\n", `gateway.yaml:9:3: forward_auth.trusted_proxies: required: the addresses of the front proxies`},
		{"forward-auth trusting everyone", minimal + "forward_auth:\n  listen: 127.0.0.1:9091\n  trusted_proxies: [0.0.0.0/0]\n", `gateway.yaml:10:21: forward_auth.trusted_proxies[0]: "0.0.0.0/0" trusts every address`},
		{"forward-auth bad cidr", minimal + "forward_auth:\n  listen: 127.0.0.1:9091\n  trusted_proxies: [10.0.0.0/33]\n", `forward_auth.trusted_proxies[0]: "10.0.0.0/33" is not a CIDR`},
		{"forward-auth path outside /.portero/", minimal + "forward_auth:\n  path: /auth\n  trusted_proxies: [10.0.0.0/8]\n", `gateway.yaml:9:9: forward_auth.path: "/auth" must be a plain path under /.portero/`},
		{"forward-auth on the public address", minimal + "listen:\n  public: :8080\nforward_auth:\n  listen: :8080\n  trusted_proxies: [10.0.0.0/8]\n", `forward_auth.listen: ":8080" is already listen.public or listen.ops`},
		{"forward-auth path without secret", minimal + "forward_auth:\n  path: /.portero/auth\n  trusted_proxies: [10.0.0.0/8]\n", `forward_auth.secret: required with forward_auth.path`},
		{"forward-auth short secret", minimal + "forward_auth:\n  listen: 127.0.0.1:9091\n  secret: short\n  trusted_proxies: [10.0.0.0/8]\n", `gateway.yaml:10:11: forward_auth.secret: must be at least 32 characters`},
		{"forward-auth trusted proxies without endpoint", minimal + "forward_auth:\n  trusted_proxies: [10.0.0.0/8]\n", `forward_auth: trusted_proxies is set but no endpoint is`},
		{"not yaml", "routes: [\n", `gateway.yaml:1:1: not valid YAML`},
		{"empty", "", `gateway.yaml: the file is empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gateway.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.src)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%s\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

// Type errors and validation errors are reported together, in the order of
// the file, and a value that failed to decode is not reported twice.
func TestTypeAndValidationErrorsTogether(t *testing.T) {
	src := minimal + "    timeout: -5s\n  - name: Bad Name\n    upstream: nope\n    api: yes\nsession:\n  keys: [\"short\"]\n"
	_, err := Parse("gateway.yaml", []byte(src))
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		"gateway.yaml:8:14: routes[0].timeout: must not be negative, got -5s",
		"gateway.yaml:9:11: routes[1].name: \"Bad Name\" is not a valid name",
		"gateway.yaml:10:15: routes[1].upstream: \"nope\" is not an absolute",
		"gateway.yaml:11:10: routes[1].api: expected true or false, got \"yes\"",
		"gateway.yaml:13:10: session.keys[0]: must be 32 random bytes",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
}

func TestHMACAndNoneAlgorithmsAreRefused(t *testing.T) {
	for _, alg := range []string{"none", "HS256", "HS512"} {
		_, err := Parse("g.yaml", []byte(strings.Replace(minimal, "  audiences: [portero]", "  audiences: [portero]\n  algorithms: [RS256, "+alg+"]", 1)))
		if err == nil || !strings.Contains(err.Error(), "oidc.algorithms[1]") {
			t.Errorf("%s: %v", alg, err)
		}
	}
}

func TestAllErrorsAreReportedTogether(t *testing.T) {
	_, err := Parse("g.yaml", []byte("oidc: {}\nroutes:\n  - name: Bad Name\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) < 4 {
		t.Fatalf("want several errors, got %v", err)
	}
}

func TestRelativePathsAreRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(p, []byte(minimal+"policy:\n  dir: policies\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Dir != filepath.Join(dir, "policies") || !cfg.Policy.WatchPolicy() {
		t.Errorf("policy dir %q watch %v", cfg.Policy.Dir, cfg.Policy.WatchPolicy())
	}
}

func TestMasterAccessConfig(t *testing.T) {
	dir := t.TempDir()
	src := minimal + `
access:
  store: ` + dir + `/access.db
master_access:
  audit_log: ` + dir + `/audit.jsonl
  max_duration: 2h
  webhook: https://hooks.example.com/portero
  tenant_webhooks:
    acme: https://acme.example.com/hook
`
	cfg, err := Parse(filepath.Join(dir, "gateway.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Master
	if !m.Enabled() || m.ReasonMinLength != 10 || m.DefaultDuration != 30*time.Minute || m.MaxDuration != 2*time.Hour ||
		m.AdminURL != "/" || m.TenantWebhooks["acme"] != "https://acme.example.com/hook" || m.WebhookTimeout != 5*time.Second {
		t.Fatalf("master access: %+v", m)
	}
	bad := map[string]string{
		"master_access:\n  audit_log: a.jsonl\n":                                                  "needs the access store",
		"access:\n  store: a.db\nmaster_access:\n  audit_log: a.jsonl\n  default_duration: 5h\n":  "longer than max_duration",
		"access:\n  store: a.db\nmaster_access:\n  audit_log: a.jsonl\n  webhook: ftp://x\n":      "not an http(s) URL",
		"access:\n  store: a.db\nmaster_access:\n  audit_log: a.jsonl\n  admin_url: //evil\n":     "must be a path on this site",
		"access:\n  store: a.db\nmaster_access:\n  audit_log: a.jsonl\n  reason_min_length: -1\n": "between 1 and 500",
	}
	for extra, want := range bad {
		_, err := Parse(filepath.Join(dir, "gateway.yaml"), []byte(minimal+extra))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "gateway.yaml:") {
			t.Errorf("%q: %v, want an error mentioning %q", extra, err, want)
		}
	}
}

// A PostgreSQL store: the password comes from the environment, never the
// file; the pool gets defaults; mistakes name the key and the fix.
func TestPostgresStoreConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PORTERO_TEST_DB_PW", "s3cret")
	cfg, err := Parse(filepath.Join(dir, "gateway.yaml"), []byte(minimal+`
access:
  store: postgres://portero@db.internal:5432/portero?sslmode=verify-full
  password_env: PORTERO_TEST_DB_PW
  pool: {max_open: 8}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Access
	if a.Store != "postgres://portero@db.internal:5432/portero?sslmode=verify-full" || a.Password != "s3cret" ||
		a.Pool.MaxOpen != 8 || a.Pool.MaxIdle != 4 || a.Pool.MaxLifetime != 30*time.Minute {
		t.Fatalf("access: %+v", a)
	}
	bad := map[string]string{
		"access:\n  store: postgres://portero:pw@db:5432/portero\n":                 "carries a password",
		"access:\n  store: postgres:///portero\n":                                   "names no host",
		"access:\n  store: postgres://portero@db:5432\n":                            "names no database",
		"access:\n  store: postgres://p@db/x\n  pool: {max_open: -1}\n":             "access.pool.max_open",
		"access:\n  store: postgres://p@db/x\n  pool: {max_open: 4, max_idle: 9}\n": "access.pool.max_idle",
		"access:\n  store: postgres://p@db/x\n  pool: {max_lifetime: 1ms}\n":        "access.pool.max_lifetime",
		"access:\n  store: postgres://p@db/x\n  password: hunter2\n":                "password",
	}
	for extra, want := range bad {
		_, err := Parse(filepath.Join(dir, "gateway.yaml"), []byte(minimal+extra))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "gateway.yaml:") {
			t.Errorf("%q: %v, want an error mentioning %q", extra, err, want)
		}
	}
}
