package proxy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

func TestBearerTokenHostileCases(t *testing.T) {
	h := newHarness(t, nil)
	iss := h.Iss
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	with := func(mut func(map[string]any)) map[string]any {
		c := iss.Claims("alice", "portero")
		c["roles"] = []string{"acme:administrator"}
		mut(c)
		return c
	}
	cases := []struct {
		name   string
		auth   []string // Authorization header values
		status int
		reason string
	}{
		{"valid", []string{"Bearer " + iss.Sign(t, with(func(map[string]any) {}))}, 200, ""},
		{"valid second audience", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["aud"] = []string{"x", "other-api"} }))}, 200, ""},
		{"lower-case scheme", []string{"bearer " + iss.Sign(t, with(func(map[string]any) {}))}, 200, ""},
		{"missing", nil, 401, "auth.required"},
		{"expired", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }))}, 401, "auth.expired"},
		{"no expiry", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { delete(c, "exp") }))}, 401, "auth.expired"},
		{"not yet valid", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }))}, 401, "auth.invalid"},
		{"not yet valid within the skew", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["nbf"] = time.Now().Add(30 * time.Second).Unix() }))}, 200, ""},
		{"issued a day in the future", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["iat"] = time.Now().Add(24 * time.Hour).Unix() }))}, 401, "auth.invalid"},
		{"issued two minutes in the future", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["iat"] = time.Now().Add(2 * time.Minute).Unix() }))}, 401, "auth.invalid"},
		{"issued within the skew", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["iat"] = time.Now().Add(30 * time.Second).Unix() }))}, 200, ""},
		{"nbf two minutes ahead", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["nbf"] = time.Now().Add(2 * time.Minute).Unix() }))}, 401, "auth.invalid"},
		{"iat not a number", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["iat"] = "yesterday" }))}, 401, "auth.invalid"},
		{"other issuer", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["iss"] = "https://evil.example.com" }))}, 401, "auth.invalid"},
		{"other audience", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { c["aud"] = "someone-else" }))}, 401, "auth.invalid"},
		{"no subject", []string{"Bearer " + iss.Sign(t, with(func(c map[string]any) { delete(c, "sub") }))}, 401, "auth.malformed"},
		{"unsigned alg none", []string{"Bearer " + testissuer.Unsigned(with(func(map[string]any) {}))}, 401, "auth.invalid"},
		{"HS256 with the public key", []string{"Bearer " + testissuer.SignWith(t, jose.HS256, iss.PublicKeyPEM(t), with(func(map[string]any) {}))}, 401, "auth.invalid"},
		{"unknown key", []string{"Bearer " + testissuer.SignWith(t, jose.RS256, jose.JSONWebKey{Key: otherKey, KeyID: "k1"}, with(func(map[string]any) {}))}, 401, "auth.invalid"},
		{"unknown key id", []string{"Bearer " + testissuer.SignWith(t, jose.RS256, jose.JSONWebKey{Key: otherKey, KeyID: "nope"}, with(func(map[string]any) {}))}, 401, "auth.invalid"},
		{"tampered payload", []string{"Bearer " + testissuer.Tamper(iss.Sign(t, with(func(map[string]any) {})))}, 401, "auth.invalid"},
		{"garbage", []string{"Bearer not.a.jwt"}, 401, "auth.invalid"},
		{"basic auth", []string{"Basic YWxpY2U6c2VjcmV0"}, 401, "auth.malformed"},
		{"empty bearer", []string{"Bearer "}, 401, "auth.malformed"},
		{"two tokens in one header", []string{"Bearer a b"}, 401, "auth.malformed"},
		{"two Authorization headers", []string{"Bearer " + iss.Sign(t, with(func(map[string]any) {})), "Bearer x"}, 401, "auth.malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.Do(t, "GET", "http://acme.apps.example.com/api/orders", "", http.Header{"Authorization": tc.auth}, "")
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 {
				h.UpstreamSaw(t)
				return
			}
			h.UpstreamSawNothing(t)
			if got := reasonOf(t, rec); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, "Bearer ") {
				t.Errorf("WWW-Authenticate = %q", challenge)
			}
			if tc.reason != "auth.required" && !strings.Contains(challenge, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q, want invalid_token", challenge)
			}
		})
	}
	if got := h.Metric(t, "portero_auth_failures_total", "reason", "expired"); got != 2 {
		t.Errorf("auth failures{expired} = %v, want 2", got)
	}
	for _, leaked := range []string{"eyJ", "YWxpY2U6c2VjcmV0"} {
		if strings.Contains(h.Logs.String(), leaked) {
			t.Errorf("logs contain credentials (%s)", leaked)
		}
	}
}

func TestKeyRotationIsPickedUp(t *testing.T) {
	h := newHarness(t, nil)
	url := "http://acme.apps.example.com/api/x"
	if rec := h.Do(t, "GET", url, h.Member(t), nil, ""); rec.Code != 200 {
		t.Fatalf("before rotation: %d", rec.Code)
	}
	h.UpstreamSaw(t)
	before := h.Iss.JWKSFetches()
	h.Iss.Rotate(t)
	if rec := h.Do(t, "GET", url, h.Member(t), nil, ""); rec.Code != 200 {
		t.Fatalf("after rotation: %d %s", rec.Code, rec.Body)
	}
	h.UpstreamSaw(t)
	if h.Iss.JWKSFetches() <= before {
		t.Fatal("JWKS was not refetched for the new key id")
	}
}

// The whole path: spoofed headers in every spelling are gone, the decision's
// headers and a verifiable assertion arrive, and the path is normalised.
func TestUpstreamReceivesOnlyPorteroIdentity(t *testing.T) {
	h := newHarness(t, nil)
	spoof := http.Header{
		"X-Portero-User": {"root"}, "X_portero_user": {"root"}, "X-PORTERO-TENANT": {"globex"},
		"X-Portero-Roles": {"administrator"}, "X-Portero-Assertion": {"forged"}, "X_Portero_Assertion": {"forged"},
		"Impersonate-User": {"root"}, "Impersonate-Group": {"system:masters", "admins"}, "Impersonate_Extra_Scopes": {"all"},
		"X-Forwarded-For": {"10.9.9.9"}, "X-Forwarded-Host": {"evil.example.com"},
	}
	rec := h.Do(t, "PATCH", "http://ACME.Apps.Example.com.:443//api/./v1/../orders/", h.Member(t), spoof, "")
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := h.UpstreamSaw(t)
	if got.Path != "/api/orders/" {
		t.Errorf("upstream path %q", got.Path)
	}
	for name := range got.Header {
		n := proxy.NormalizeHeaderName(name)
		if strings.HasPrefix(n, "impersonate-") {
			t.Errorf("upstream received %s: %v", name, got.Header[name])
		}
	}
	want := map[string]string{"X-Portero-User": "alice", "X-Portero-Tenant": "acme", "X-Portero-Roles": "account_manager"}
	for k, v := range want {
		if vals := got.Header.Values(k); len(vals) != 1 || vals[0] != v {
			t.Errorf("%s = %q, want %q", k, vals, v)
		}
	}
	for name := range got.Header {
		if strings.Contains(strings.ToLower(name), "_") {
			t.Errorf("underscore spelling reached upstream: %s", name)
		}
	}
	if xff := got.Header.Get("X-Forwarded-For"); strings.Contains(xff, "10.9.9.9") {
		t.Errorf("client X-Forwarded-For passed through: %q", xff)
	}
	if xfh := got.Header.Get("X-Forwarded-Host"); xfh == "evil.example.com" {
		t.Errorf("client X-Forwarded-Host passed through")
	}

	// The assertion verifies with the JWKS the gateway serves.
	resp, err := http.Get(h.Server.URL + proxy.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks: %v %v", err, jwks)
	}
	if jwks.Keys[0].IsPublic() == false || jwks.Keys[0].Algorithm != "ES256" {
		t.Fatalf("jwks key is not a public ES256 key")
	}
	vals := got.Header.Values("X-Portero-Assertion")
	if len(vals) != 1 || vals[0] == "forged" {
		t.Fatalf("assertion header %q", vals)
	}
	tok, err := jwt.ParseSigned(vals[0], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var std jwt.Claims
	var extra struct {
		Tenant string   `json:"tenant"`
		Roles  []string `json:"roles"`
	}
	if err := tok.Claims(jwks.Keys[0].Key, &std, &extra); err != nil {
		t.Fatalf("assertion does not verify against the served JWKS: %v", err)
	}
	if err := std.Validate(jwt.Expected{Issuer: "portero", AnyAudience: []string{"portero-upstream"}, Subject: "alice", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if extra.Tenant != "acme" || len(extra.Roles) != 1 || std.ID == "" || std.Expiry == nil || std.IssuedAt == nil {
		t.Errorf("assertion claims %+v %+v", std, extra)
	}
	if tok.Headers[0].KeyID != jwks.Keys[0].KeyID {
		t.Errorf("assertion kid %q not in JWKS", tok.Headers[0].KeyID)
	}
}

func TestDenials(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.Member(t)
	cases := []struct {
		name, method, url, token, body string
		status                         int
		reason                         string
		html                           bool
	}{
		{"other tenant", "GET", "http://initech.apps.example.com/api/x", tok, "", 403, "deny.not_a_member", false},
		{"tenant by path, not a member", "GET", "http://localhost/t/initech/page", tok, "", 403, "deny.not_a_member", true},
		{"no tenant", "GET", "http://localhost/page", tok, "", 403, "deny.no_tenant", true},
		{"browser route, no credentials", "GET", "http://localhost/t/acme/", "", "", 401, "deny.unauthenticated", true},
		{"encoded dot-dot", "GET", "http://acme.apps.example.com/api/%2e%2e/admin", tok, "", 400, "request.bad_path", true},
		{"encoded slash", "GET", "http://acme.apps.example.com/api%2fadmin", tok, "", 400, "request.bad_path", true},
		{"dot-dot above root", "GET", "http://acme.apps.example.com/api/../../etc", tok, "", 400, "request.bad_path", true},
		{"body too large", "POST", "http://acme.apps.example.com/api/x", tok, `{"a":"` + strings.Repeat("x", 100) + `"}`, 413, "request.body_too_large", false},
		{"body not JSON", "POST", "http://acme.apps.example.com/api/x", tok, `{"a":`, 400, "request.bad_body", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr http.Header
			if tc.body != "" {
				hdr = http.Header{"Content-Type": {"application/json"}}
			}
			rec := h.Do(t, tc.method, tc.url, tc.token, hdr, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			h.UpstreamSawNothing(t)
			isHTML := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html")
			if isHTML != tc.html {
				t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
			}
			if !strings.Contains(rec.Body.String(), tc.reason) {
				t.Errorf("body does not name reason %s: %s", tc.reason, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "package portero") {
				t.Errorf("denial shows policy source")
			}
		})
	}
	if got := h.Metric(t, "portero_requests_total", "route", "api", "decision", "deny", "code", "403"); got != 1 {
		t.Errorf("requests_total{api,deny,403} = %v", got)
	}
}

func TestNoRouteIs404(t *testing.T) {
	// The catch-all "app" route has no hosts, so use a gateway whose only
	// route is host-bound.
	h := newHarnessWith(t, nil, harnessOpts{Config: func(issuer, upstream string) string {
		return fmt.Sprintf("oidc:\n  issuer: %s\n  audiences: [portero]\nroutes:\n  - name: only\n    hosts: [a.example.com]\n    upstream: %s\n", issuer, upstream)
	}})
	rec := h.Do(t, "GET", "http://b.example.com/", "", nil, "")
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "route.none") {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

// A policy sees the JSON body on routes that opt in, and the upstream still
// receives it byte for byte. A policy can only set Portero's own headers.
func TestBodyAndPolicyHeaders(t *testing.T) {
	h := newHarness(t, fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": false, "status": 403, "reason": "body.role"} if input.request.body.role == "admin"
else := {"allow": true, "headers": {
	"X-Portero-User": input.identity.sub,
	"X-Portero-Groups": ["a", "b"],
	"Authorization": "Bearer smuggled",
	"X-Portero-Evil": "a\r\nInjected: 1",
	"X-Portero-Assertion": "forged",
	"X_Portero_Assertion": "forged",
	"x-portero-assertion ": "forged",
	"X.Portero.Tenant": "other",
}}`)}})
	tok := h.Member(t)
	json := http.Header{"Content-Type": {"application/json"}}
	rec := h.Do(t, "POST", "http://acme.apps.example.com/api/x", tok, json, `{"role":"admin"}`)
	if rec.Code != 403 || reasonOf(t, rec) != "body.role" {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	rec = h.Do(t, "POST", "http://acme.apps.example.com/api/x", tok, json, `{"role":"viewer"}`)
	if rec.Code != 200 {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	got := h.UpstreamSaw(t)
	if got.Body != `{"role":"viewer"}` {
		t.Errorf("upstream body %q", got.Body)
	}
	if g := got.Header.Values("X-Portero-Groups"); len(g) != 2 {
		t.Errorf("repeated header: %q", g)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+tok {
		t.Errorf("policy replaced Authorization: %q", a)
	}
	if got.Header.Get("X-Portero-Evil") != "" || got.Header.Get("Injected") != "" {
		t.Errorf("header with CR/LF was set")
	}
	if a := got.Header.Values("X-Portero-Assertion"); len(a) != 1 || a[0] == "forged" {
		t.Errorf("policy overrode the assertion: %q", a)
	}
	for name := range got.Header {
		if n := proxy.NormalizeHeaderName(name); n != "x-portero-assertion" && strings.Contains(n, "assertion") || strings.Contains(name, ".") {
			t.Errorf("upstream received %s: %q", name, got.Header[name])
		}
	}
	if n := h.Metric(t, "portero_policy_dropped_headers_total"); n != 6 {
		t.Errorf("dropped headers = %v, want 6", n)
	}
	// The browser route forwards below the upstream's base path.
	if rec := h.Do(t, "GET", "http://localhost/t/x/y?q=1", tok, nil, ""); rec.Code != 200 {
		t.Fatalf("browser route: %d", rec.Code)
	}
	if p := h.UpstreamSaw(t).Path; p != "/base/t/x/y" {
		t.Errorf("upstream path %q", p)
	}
}

func TestUpstreamDownIs502(t *testing.T) {
	h := newHarness(t, nil)
	h.Upstream.Close()
	rec := h.Do(t, "GET", "http://acme.apps.example.com/api/x", h.Member(t), nil, "")
	if rec.Code != http.StatusBadGateway || reasonOf(t, rec) != "upstream.unavailable" {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if n := h.Metric(t, "portero_upstream_errors_total", "route", "api"); n != 1 {
		t.Errorf("upstream errors = %v", n)
	}
}

func TestDecisionLogLine(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.Member(t)
	h.Do(t, "GET", "http://acme.apps.example.com/api/x?access_token=secret123", tok, nil, "")
	h.UpstreamSaw(t)
	var line map[string]any
	for l := range strings.SplitSeq(h.Logs.String(), "\n") {
		if strings.Contains(l, `"msg":"decision"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range []string{"decision_id", "route", "tenant", "sub", "allow", "reason", "policy_revision", "eval_us"} {
		if _, ok := line[k]; !ok {
			t.Errorf("decision log lacks %s: %v", k, line)
		}
	}
	if strings.Contains(h.Logs.String(), tok[:20]) || strings.Contains(h.Logs.String(), "secret123") {
		t.Error("decision log contains a credential")
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	h := newHarness(t, nil)
	h.Upstream.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("X-Portero-User") != "alice" {
			http.Error(w, "not an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
		_ = brw.Flush()
	})
	conn, err := net.Dial("tcp", h.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/socket HTTP/1.1\r\nHost: acme.apps.example.com\r\nAuthorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", h.Member(t))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	msg := make([]byte, 5)
	if _, err := io.ReadFull(br, msg); err != nil || string(msg) != "hello" {
		t.Fatalf("read %q %v", msg, err)
	}
}

func TestOpsEndpoints(t *testing.T) {
	h := newHarness(t, nil)
	ops := httptest.NewServer(proxy.OpsHandler(h.Gateway, h.Registry))
	defer ops.Close()
	h.Do(t, "GET", "http://acme.apps.example.com/api/x", h.Member(t), nil, "")
	h.UpstreamSaw(t)
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  `"ready":true`,
		"/metrics": "portero_requests_total",
	} {
		resp, err := http.Get(ops.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
		if path == "/metrics" {
			for _, m := range []string{"portero_request_duration_seconds", "portero_policy_eval_duration_seconds",
				"portero_policy_reloads_total", "portero_policy_info{revision=", "portero_upstream_errors_total",
				"portero_auth_failures_total", "go_build_info", "go_goroutines", "process_resident_memory_bytes"} {
				if !strings.Contains(string(body), m) && !strings.HasPrefix(m, "portero_upstream") && !strings.HasPrefix(m, "portero_auth") {
					t.Errorf("metrics lack %s", m)
				}
			}
		}
	}
	// Not ready until discovery has completed.
	h = newHarnessWith(t, nil, harnessOpts{NoDiscovery: true})
	ops = httptest.NewServer(proxy.OpsHandler(h.Gateway, h.Registry))
	defer ops.Close()
	resp, err := http.Get(ops.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("readyz before discovery: %d", resp.StatusCode)
	}
	fresh := h.Iss.Sign(t, h.Iss.Claims("bob", "portero"))
	rec := h.Do(t, "GET", "http://acme.apps.example.com/api/x", fresh, nil, "")
	if rec.Code != 503 {
		t.Errorf("request before discovery: %d, want 503", rec.Code)
	}
}

// A policy directory swapped to a broken policy under load: the gateway
// keeps answering with the last good one.
func TestGatewayServesLastGoodPolicyDuringBrokenReload(t *testing.T) {
	dir := t.TempDir()
	good, err := defaultrego.Bundle.ReadFile("authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	membership, _ := defaultrego.Bundle.ReadFile("membership.rego")
	must(t, os.WriteFile(filepath.Join(dir, "authz.rego"), good, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "membership.rego"), membership, 0o644))
	engine, err := policy.NewEngine(context.Background(), policy.DirSource(dir), policy.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	must(t, err)
	h := newHarnessWith(t, nil, harnessOpts{Engine: engine})
	tok := h.Member(t)
	must(t, os.WriteFile(filepath.Join(dir, "authz.rego"), []byte("package portero.authz\ndecision := {"), 0o644))
	if err := engine.Reload(context.Background()); err == nil {
		t.Fatal("broken policy loaded")
	}
	if rec := h.Do(t, "GET", "http://acme.apps.example.com/api/x", tok, nil, ""); rec.Code != 200 {
		t.Fatalf("after a broken reload: %d %s", rec.Code, rec.Body)
	}
	h.UpstreamSaw(t)
}

func BenchmarkRequestPath(b *testing.B) {
	h := newHarnessWith(b, nil, harnessOpts{DiscardLogs: true}) // see DiscardLogs
	tok := h.Member(b)
	// Drain what the upstream records.
	go func() {
		for range h.Got {
		}
	}()
	req := httptest.NewRequest("GET", "http://acme.apps.example.com/api/orders?page=2", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	for b.Loop() {
		r := req.Clone(context.Background())
		rec := httptest.NewRecorder()
		h.Gateway.ServeHTTP(rec, r)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body)
		}
	}
}

// BenchmarkDecisionPath measures everything but the upstream round trip:
// sanitize, route, authenticate (cached token), evaluate, deny.
func BenchmarkDecisionPath(b *testing.B) {
	h := newHarnessWith(b, nil, harnessOpts{DiscardLogs: true}) // see DiscardLogs
	req := httptest.NewRequest("GET", "http://initech.apps.example.com/api/orders?page=2", nil)
	req.Header.Set("Authorization", "Bearer "+h.Member(b))
	req.Header.Set("Accept", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.Gateway.ServeHTTP(rec, req.Clone(context.Background()))
		if rec.Code != 403 {
			b.Fatal(rec.Code)
		}
	}
}
