package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/proxy"
)

// The tables in this file are the hostile cases of issue 11, one table per
// class, each sent through the real ServeHTTP to a real upstream, checking
// what the upstream received, not only the status.

// upstreamControlled returns the headers of h that a client must never be
// able to set or remove: Portero's own, impersonation, and the override
// headers (X-Forwarded-For, -Host and -Proto are set by the forwarder from
// the connection and compared separately).
func upstreamControlled(h http.Header) http.Header {
	out := http.Header{}
	for name, vals := range h {
		n := proxy.NormalizeHeaderName(name)
		switch n {
		case "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto":
			continue
		}
		if proxy.UpstreamControlledName("X-Portero-Assertion", n) {
			out[name] = vals
		}
	}
	return out
}

// withoutAssertion drops the assertion (its jti and times differ per
// request) after checking there is exactly one.
func withoutAssertion(t *testing.T, h http.Header) http.Header {
	t.Helper()
	if v := h.Values("X-Portero-Assertion"); len(v) != 1 || strings.Count(v[0], ".") != 2 {
		t.Fatalf("upstream assertion %q, want exactly one JWT", v)
	}
	out := h.Clone()
	out.Del("X-Portero-Assertion")
	return out
}

// hostileHeaderSets are inbound headers that try to add, change or delete
// what Portero sets: copies of reserved and override headers in several
// spellings, Connection tokens naming them (ReverseProxy deletes every
// header named in Connection), and combinations.
var hostileHeaderSets = map[string]http.Header{
	"connection names user and assertion": {"Connection": {"close, X-Portero-User, X-Portero-Assertion"}},
	"connection names every header":       {"Connection": {"X-Portero-User, X-Portero-Tenant, X-Portero-Role, X-Portero-Roles, X-Portero-Scope, X-Portero-Features, X-Portero-Assertion"}},
	"connection names impersonator":       {"Connection": {"X-Portero-Impersonator, X-Portero-Impersonation-Reason, X-Portero-Impersonation-Id, X-Portero-Impersonation-Mode, X-Portero-Impersonation-Expires"}},
	"connection names kubernetes":         {"Connection": {"Impersonate-User, Impersonate-Group, Impersonate-Extra-Impersonator, Impersonate-Extra-Reason"}},
	"connection tokens in odd spellings":  {"Connection": {"x_portero_user,X-PORTERO-ASSERTION", "  x-portero-tenant  ,keep-alive"}},
	"two connection headers":              {"Connection": {"keep-alive", "X-Portero-User"}},
	"connection names forwarded headers":  {"Connection": {"X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto"}},
	"copies of reserved headers": {
		"X-Portero-User": {"root"}, "X_portero_tenant": {"globex"}, "X-PORTERO-ROLE": {"administrator"},
		"X-Portero-Features": {`{"billing":"edit"}`}, "X-Portero-Assertion": {"forged.jwt.value"},
		"X-Portero-Impersonator": {"mallory"}, "Impersonate-User": {"root"}, "impersonate_group": {"system:masters"},
	},
	"override headers": {
		"X-Original-Url": {"/admin"}, "X-Rewrite-Url": {"/admin"}, "X-Forwarded-Uri": {"/admin"},
		"X-Original-Uri": {"/admin"}, "X-Forwarded-Prefix": {"/admin"}, "X-Forwarded-Path": {"/admin"},
		"X-Http-Method-Override": {"DELETE"}, "X-Http-Method": {"DELETE"}, "X-Method-Override": {"DELETE"},
		"X-Real-Ip": {"10.0.0.1"}, "X-Forwarded-For": {"10.0.0.1"}, "X-Forwarded-Host": {"evil.example"},
		"Forwarded": {"for=10.0.0.1;host=evil.example"}, "X-Original-Method": {"DELETE"}, "X_forwarded_uri": {"/admin"},
	},
	"reserved copies named in connection too": {
		"X-Portero-User": {"root"}, "Connection": {"X-Portero-User, X-Portero-Assertion"},
		"X-Portero-Assertion": {"forged"},
	},
}

// TestDecisionHeadersCannotBeRemovedOrForged sends every hostile header set
// as a member, and as a system admin under master access in both header
// profiles: the upstream's controlled headers are exactly those of the same
// request sent without them.
func TestDecisionHeadersCannotBeRemovedOrForged(t *testing.T) {
	t.Run("member", func(t *testing.T) {
		h, _ := gatewaytest.NewRecordingAccess(t)
		leo := h.TokenFor(t, "leo")
		send := func(extra http.Header) received {
			rec := h.Do(t, "GET", "http://localhost/t/acme/locations/l1", leo, extra, "")
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			return h.UpstreamSaw(t)
		}
		checkHeaderSets(t, send)
	})
	for _, profile := range []string{"portero", "kubernetes"} {
		t.Run("master access "+profile, func(t *testing.T) {
			m := newMasterHarness(t, "headers:\n  profile: "+profile+"\n")
			m.B.SignIn("http://localhost/t/acme/", samClaims())
			m.MustStart(t, "acme", "Ticket SUP-90: header property test", "read_only", "10m")
			send := func(extra http.Header) received {
				rec := m.B.Do("GET", "http://localhost/t/acme/reviews", nil, extra)
				if rec.Code != 200 {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				return m.UpstreamSaw(t)
			}
			clean := checkHeaderSets(t, send)
			want := "X-Portero-Impersonator"
			if profile == "kubernetes" {
				want = "Impersonate-Extra-Impersonator"
			}
			if clean.Get(want) != "sam" {
				t.Fatalf("%s = %q, want sam", want, clean.Get(want))
			}
		})
	}
}

// checkHeaderSets compares each hostile set with the clean request and
// returns the clean request's controlled headers.
func checkHeaderSets(t *testing.T, send func(http.Header) received) http.Header {
	t.Helper()
	clean := send(nil)
	want := withoutAssertion(t, upstreamControlled(clean.Header))
	if len(want) == 0 {
		t.Fatal("the clean request carried no decision headers")
	}
	sets := maps.Clone(hostileHeaderSets)
	rng := rand.New(rand.NewPCG(11, uint64(len(want))))
	for i := range 150 {
		sets[fmt.Sprintf("random set %d", i)] = randomHostileHeaders(rng)
	}
	for name, set := range sets {
		got := send(set.Clone())
		if diff := headerDiff(want, withoutAssertion(t, upstreamControlled(got.Header))); diff != "" {
			t.Errorf("%s: upstream headers differ from the decision's: %s", name, diff)
		}
		if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || strings.Contains(xff[0], "10.0.0.1") {
			t.Errorf("%s: X-Forwarded-For %q", name, xff)
		}
		if got.Method != "GET" || got.Header.Get("X-Forwarded-Host") == "evil.example" {
			t.Errorf("%s: upstream saw method %s host %q", name, got.Method, got.Header.Get("X-Forwarded-Host"))
		}
	}
	return want
}

// headerNamePool mixes Portero's header names in several spellings,
// override headers, hop-by-hop headers and ordinary ones.
var headerNamePool = []string{
	"X-Portero-User", "x-portero-user", "X_Portero_User", "X-PORTERO-TENANT", "X-Portero-Role", "X-Portero-Roles",
	"X-Portero-Scope", "X-Portero-Features", "X-Portero-Partner", "X-Portero-Assertion", "x_portero_assertion",
	"X-Portero-Impersonator", "X-Portero-Impersonation-Reason", "X-Portero-Impersonation-Id", "X-Portero-Impersonation-Mode",
	"X-Portero-Impersonation-Expires", "X-Portero-New", "Impersonate-User", "impersonate_group", "Impersonate-Extra-Reason",
	"Impersonate-Extra-Impersonator", "Impersonate-Uid", "X-Original-Url", "X-Rewrite-Url", "X-Forwarded-Uri",
	"X-Forwarded-Prefix", "X-Forwarded-Path", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Real-Ip", "Keep-Alive", "Te", "Trailer",
	"Proxy-Connection", "Accept", "X-Request-Id", "Cookie", "X-Custom",
}

// randomHostileHeaders draws a few names from the pool, with values, and a
// Connection header naming some of them (and of the pool).
func randomHostileHeaders(rng *rand.Rand) http.Header {
	h := http.Header{}
	for range 1 + rng.IntN(6) {
		name := headerNamePool[rng.IntN(len(headerNamePool))]
		h[name] = append(h[name], fmt.Sprintf("v%d", rng.IntN(100)))
	}
	var tokens []string
	for range rng.IntN(6) {
		tokens = append(tokens, headerNamePool[rng.IntN(len(headerNamePool))])
	}
	if len(tokens) > 0 {
		h["Connection"] = []string{strings.Join(tokens, ", ")}
	}
	delete(h, "Te") // "TE: v1" is a protocol error the server itself answers
	delete(h, "Trailer")
	return h
}

func headerDiff(want, got http.Header) string {
	var diffs []string
	for name, v := range want {
		if !slices.Equal(got[name], v) {
			diffs = append(diffs, fmt.Sprintf("%s: got %q want %q", name, got[name], v))
		}
	}
	for name, v := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %q", name, v))
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}

// TestRequestTrailersNeverReachTheApp sends chunked bodies with trailers
// over a real connection: on a route that inspects bodies and on one that
// streams them, the app receives the body and no trailer.
func TestRequestTrailersNeverReachTheApp(t *testing.T) {
	h := newHarnessWith(t, nil, harnessOpts{Config: func(issuer, upstream string) string {
		return fmt.Sprintf(testConfig, issuer, upstream, upstream) + `
  - name: stream
    hosts: ["*.stream.example.com"]
    upstream: ` + upstream + `
    body: {inspect: false}
`
	}})
	tok := h.Member(t)
	targets := map[string]string{ // host -> path
		"acme.apps.example.com":   "/api/x",                   // inspects bodies
		"acme.stream.example.com": "/t/acme/reviews/r1/reply", // streams them
	}
	for host, path := range targets {
		for _, trailer := range []string{"X-Portero-User", "X-Portero-Assertion", "Impersonate-User", "X-Custom", "X-Forwarded-Uri"} {
			t.Run(host+" "+trailer, func(t *testing.T) {
				raw := "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok +
					"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: " + trailer +
					"\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n" + trailer + ": forged\r\n\r\n"
				if status := rawRequest(t, h.Server.Listener.Addr().String(), raw); status != 200 {
					t.Fatalf("status %d", status)
				}
				got := h.UpstreamSaw(t)
				if len(got.Trailer) != 0 || got.Header.Get(trailer) == "forged" {
					t.Fatalf("upstream received trailer %v headers %v", got.Trailer, got.Header)
				}
				if got.Body != `{"a":1}` {
					t.Fatalf("upstream body %q", got.Body)
				}
			})
		}
	}
}

func rawRequest(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBodiesFailClosed: a location manager limited to phone and hours
// tries to change the name with every label and encoding. What Portero
// cannot parse is refused whatever its label; what it parses is checked;
// the app never receives a body the policy did not see. The table runs
// twice on one gateway: the second time, bodies of a shape decided before
// (the same kind and keys) are answered from the decision cache, which
// must give every case the same answer.
func TestBodiesFailClosed(t *testing.T) {
	h, _ := gatewaytest.NewRecordingAccess(t)
	leo := h.TokenFor(t, "leo")
	const path = "http://localhost/t/acme/locations/l1/profile"
	cases := []bodyCase{
		{"text/plain", "PATCH", http.Header{"Content-Type": {"text/plain"}}, `{"name":"x"}`, 415, "request.body_unsupported"},
		{"no content type", "PATCH", nil, `{"name":"x"}`, 415, "request.body_unsupported"},
		{"two content types", "PATCH", http.Header{"Content-Type": {"application/json", "text/plain"}}, `{"phone":"1"}`, 415, "request.body_unsupported"},
		{"text/json", "PATCH", http.Header{"Content-Type": {"text/json"}}, `{"name":"x"}`, 415, "request.body_unsupported"},
		{"multipart", "PATCH", http.Header{"Content-Type": {"multipart/form-data; boundary=b"}}, "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--b--\r\n", 415, "request.body_unsupported"},
		{"gzip encoded", "PATCH", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, "\x1f\x8b", 415, "request.body_unsupported"},
		{"utf-16 charset", "PATCH", http.Header{"Content-Type": {"application/json; charset=utf-16"}}, `{"phone":"1"}`, 415, "request.body_unsupported"},
		{"unparseable type", "PATCH", http.Header{"Content-Type": {"application/json; ;"}}, `{"phone":"1"}`, 415, "request.body_unsupported"},
		{"form with a forbidden field", "PATCH", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "phone=1&name=x", 403, "field.not_allowed"},
		{"form with nested field", "PATCH", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "location%5Bname%5D=x", 403, "field.not_allowed"},
		{"form with semicolons", "PATCH", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "phone=1;name=x", 400, "request.bad_body"},
		{"json forbidden field", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"name":"x"}`, 403, "field.not_allowed"},
		{"json escaped key", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"n\u0061me":"x"}`, 403, "field.not_allowed"},
		{"json other case", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"Name":"x"}`, 403, "field.not_allowed"},
		{"json +json suffix", "PATCH", http.Header{"Content-Type": {"application/merge-patch+json"}}, `{"name":"x"}`, 403, "field.not_allowed"},
		{"json duplicate key", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1","phone":"2"}`, 400, "request.duplicate_key"},
		{"json duplicate nested key", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":{"a":1,"a":2}}`, 400, "request.duplicate_key"},
		{"json escaped duplicate", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1","ph\u006fne":"2"}`, 400, "request.duplicate_key"},
		{"json trailing data", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1"}{"name":"x"}`, 400, "request.bad_body"},
		{"json array", "PATCH", http.Header{"Content-Type": {"application/json"}}, `[{"name":"x"}]`, 403, "field.not_allowed"},
		{"json string", "PATCH", http.Header{"Content-Type": {"application/json"}}, `"name"`, 403, "field.not_allowed"},
		{"json invalid utf-8", "PATCH", http.Header{"Content-Type": {"application/json"}}, "{\"phone\":\"\xff\"}", 400, "request.bad_body"},
		{"json with a byte order mark", "PATCH", http.Header{"Content-Type": {"application/json"}}, "\ufeff{\"name\":\"x\"}", 400, "request.bad_body"},
		{"json _method", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1","_method":"DELETE"}`, 400, "request.method_override"},
		{"form _method", "POST", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "phone=1&_method=DELETE", 400, "request.method_override"},
		{"PUT replaces every field", "PUT", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1"}`, 403, "field.method_not_allowed"},
		{"DELETE removes every field", "DELETE", nil, "", 403, "field.method_not_allowed"},
		{"field in the query", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1"}`, 403, "field.not_allowed"},
		{"POST forbidden field", "POST", http.Header{"Content-Type": {"application/json"}}, `{"name":"x"}`, 403, "field.not_allowed"},
		{"too deep", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 400, "request.bad_body"},
		// Allowed: the app receives exactly the body the policy saw.
		{"json allowed fields", "PATCH", http.Header{"Content-Type": {"application/json; charset=utf-8"}}, `{"phone":"1","hours":"9-5"}`, 200, ""},
		{"form allowed fields", "PATCH", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "phone=1&hours=9-5", 200, ""},
		{"empty body", "PATCH", nil, "", 200, ""},
		// After allowed shapes were decided: the same keys with one more,
		// in another kind, in one key, or in the query.
		{"allowed fields and one more", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"2","hours":"9-5","name":"x"}`, 403, "field.not_allowed"},
		{"allowed fields in another order", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"hours":"8-4","phone":"3"}`, 200, ""},
		{"allowed fields in an array", "PATCH", http.Header{"Content-Type": {"application/json"}}, `[{"phone":"1","hours":"9-5"}]`, 403, "field.not_allowed"},
		{"allowed names as one key", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"hours\u0000phone":"1"}`, 403, "field.not_allowed"},
		{"field in the query after the same body", "PATCH", http.Header{"Content-Type": {"application/json"}}, `{"phone":"1","hours":"9-5"}`, 403, "field.not_allowed"},
	}
	for _, round := range []string{"first", "again"} {
		for _, tc := range cases {
			t.Run(round+"/"+tc.name, func(t *testing.T) { checkBody(t, h, leo, path, tc) })
		}
	}
}

// checkBody sends one case of TestBodiesFailClosed and checks what the
// client and the upstream got.
func checkBody(t *testing.T, h *gatewaytest.Harness, token, path string, tc bodyCase) {
	t.Helper()
	target := path
	if strings.HasPrefix(tc.name, "field in the query") {
		target += "?name=Evil"
	}
	rec := h.Do(t, tc.method, target, token, tc.headers, tc.body)
	if tc.status != http.StatusOK {
		wantRefusal(t, h, rec, tc.status, tc.reason)
		return
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
	got := h.UpstreamSaw(t)
	if got.Body != tc.body || got.Method != tc.method {
		t.Fatalf("upstream got %s %q, want %s %q", got.Method, got.Body, tc.method, tc.body)
	}
}

// wantRefusal checks a refused request: its status and reason, and that
// the upstream received nothing.
func wantRefusal(t *testing.T, h *gatewaytest.Harness, rec *httptest.ResponseRecorder, status int, reason string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	h.UpstreamSawNothing(t)
	if got := reasonOf(t, rec); got != reason {
		t.Fatalf("reason %q, want %q", got, reason)
	}
}

type bodyCase struct {
	name    string
	method  string
	headers http.Header
	body    string
	status  int
	reason  string
}

// TestUnmappedOperationsAreRefused: operations the route mapping does not
// name are refused for every caller (default deny); every URL and method of
// a feature is covered by its subtree and method class.
func TestUnmappedOperationsAreRefused(t *testing.T) {
	h, store := gatewaytest.NewRecordingAccess(t)
	ctx := context.Background()
	d, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews", "billing"}, InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Transition(ctx, d.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, method, path string
		status             int
		reason             string
	}{
		{"avery", "DELETE", "/t/acme/reviews/r1", 403, "feature.not_granted"},
		{"avery", "POST", "/t/acme/reviews/r1/reply", 403, "feature.not_granted"},
		{"avery", "GET", "/t/acme/reviews/r1/replies/2", 403, "feature.not_granted"},
		{"leo", "POST", "/t/acme/locations/l9/status", 403, "scope.location"},
		{"leo", "PUT", "/t/acme/locations/l9/profile", 403, "scope.location"},
		{"leo", "DELETE", "/t/acme/locations/l9/photos/p1", 403, "scope.location"},
		{"leo", "GET", "/t/acme/locations/l1/locations/l9", 403, "scope.location"},
		{"pat", "GET", "/t/acme/billing/invoices", 403, "delegation.no_wallet"},
		{"pat", "GET", "/t/acme/ads", 403, "delegation.product_not_granted"},
		{"leo", "GET", "/t/acme/orders", 403, "operation.unmapped"},
		{"adam", "GET", "/t/acme/orders", 403, "operation.unmapped"},
		{"olivia", "DELETE", "/t/acme/admin/everything", 403, "operation.unmapped"},
		{"adam", "PATCH", "/t/acme/", 403, "operation.unmapped"},
		{"adam", "DELETE", "/t/acme/static/app.css", 403, "operation.unmapped"},
		{"adam", "GET", "/t/acme/reviews.json", 403, "operation.unmapped"},
		{"adam", "GET", "/t/acme/reviews.", 403, "operation.unmapped"},
		// Allowed: the mapped operations still work.
		{"pat", "GET", "/t/acme/reviews/r1", 200, ""},
		{"leo", "GET", "/t/acme/", 200, ""},
		{"leo", "GET", "/t/acme/static/app.css", 200, ""},
		{"leo", "POST", "/t/acme/locations/l1/status", 200, ""},
		{"adam", "GET", "/t/acme/Reviews", 200, ""},
		{"adam", "GET", "/t/%61cme/./settings//x/../", 200, ""}, // forwarded as /t/acme/settings/
	}
	for _, tc := range cases {
		t.Run(tc.user+" "+tc.method+" "+tc.path, func(t *testing.T) {
			rec := h.Do(t, tc.method, "http://localhost"+tc.path, h.TokenFor(t, tc.user), nil, "")
			if tc.status != http.StatusOK {
				wantRefusal(t, h, rec, tc.status, tc.reason)
				return
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
			}
			want := tc.path
			if strings.Contains(want, "%61") {
				want = "/t/acme/settings/"
			}
			if got := h.UpstreamSaw(t); got.Method != tc.method || got.Path != want {
				t.Fatalf("upstream got %s %s, want %s", got.Method, got.Path, want)
			}
		})
	}
}

// TestOneCanonicalRequest: spellings of a path, method or query that an app
// could route differently from what the policy decided on are refused
// before the policy (400/405); overrides are removed; the app receives the
// method, path and query the policy saw.
func TestOneCanonicalRequest(t *testing.T) {
	h, _ := gatewaytest.NewRecordingAccess(t)
	avery := h.TokenFor(t, "avery") // billing only: may not read reviews
	refused := []struct {
		method, path string
		status       int
		reason       string
		header       http.Header
	}{
		// Upgrades other than WebSocket would tunnel requests past Portero.
		{"GET", "/t/acme/billing", 400, "request.bad_upgrade", http.Header{"Upgrade": {"h2c"}, "Connection": {"Upgrade, HTTP2-Settings"}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}}},
		{"GET", "/t/acme/billing", 400, "request.bad_upgrade", http.Header{"Upgrade": {"websocket, h2c"}, "Connection": {"Upgrade"}}},
		{"GET", "/t/acme/billing", 400, "request.bad_upgrade", http.Header{"Upgrade": {"TLS/1.2"}, "Connection": {"Upgrade"}}},
		{"GET", "/t/acme/reviews;x=1", 400, "request.bad_path", nil},
		{"GET", "/t/acme/reviews;", 400, "request.bad_path", nil},
		{"GET", "/t/acme/reviews%3bx", 400, "request.bad_path", nil},
		{"GET", "/t/acme/reviews%3Bx", 400, "request.bad_path", nil},
		{"GET", "/t/acme/billing;/../reviews", 400, "request.bad_path", nil},
		{"GET", "/t/acme/reviews%20", 400, "request.bad_path", nil},
		{"GET", "/t/acme/reviews%e2%80%8b", 400, "request.bad_path", nil},
		{"GET", "/t/acme/%e2%80%8breviews", 400, "request.bad_path", nil},
		{"GET", "/t/acme/%c0%ae%c0%ae/reviews", 400, "request.bad_path", nil},
		{"GET", "/t/acme/billing/%ef%bc%8e%ef%bc%8e/reviews", 400, "request.bad_path", nil},
		{"GET", "/t/acme/%ef%bd%92eviews", 400, "request.bad_path", nil},
		{"GET", "/t/acme/reviews%ff", 400, "request.bad_path", nil},
		{"GET", "/t/acme/Reviews", 403, "feature.not_granted", nil},
		{"GET", "/t/acme/REVIEWS", 403, "feature.not_granted", nil},
		{"GET", "/t/acme/reviews.json", 403, "operation.unmapped", nil},
		{"delete", "/t/acme/billing", 400, "request.bad_method", nil},
		{"Get", "/t/acme/billing", 400, "request.bad_method", nil},
		{"TRACE", "/t/acme/billing", 405, "request.method_not_allowed", nil},
		{"CONNECT", "/t/acme/billing", 405, "request.method_not_allowed", nil},
		{"PROPFIND", "/t/acme/billing", 405, "request.method_not_allowed", nil},
		{"BREW", "/t/acme/billing", 405, "request.method_not_allowed", nil},
		{"GET", "/t/acme/billing?a=1;b=2", 400, "request.bad_query", nil},
		{"GET", "/t/acme/billing?a=%zz", 400, "request.bad_query", nil},
	}
	for _, tc := range refused {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://localhost"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header.Clone()
			if req.Header == nil {
				req.Header = http.Header{}
			}
			req.Header.Set("Authorization", "Bearer "+avery)
			req.Header.Set("Accept", "application/json")
			rec := httptest.NewRecorder()
			h.Gateway.ServeHTTP(rec, req)
			wantRefusal(t, h, rec, tc.status, tc.reason)
		})
	}
	// Overrides: removed, and the app receives the method the policy saw.
	overrides := []struct {
		name   string
		query  string
		header http.Header
	}{
		{"X-HTTP-Method-Override", "", http.Header{"X-Http-Method-Override": {"DELETE"}}},
		{"X-HTTP-Method", "", http.Header{"X-Http-Method": {"DELETE"}}},
		{"X-Method-Override", "", http.Header{"X-Method-Override": {"DELETE"}}},
		{"_method parameter", "_method=DELETE&page=2", nil},
		{"encoded _method parameter", "%5Fmethod=DELETE&page=2", nil},
		{"upper-case _METHOD parameter", "page=2&_METHOD=DELETE", nil},
		{"path overrides", "page=2", http.Header{"X-Original-Url": {"/t/acme/reviews"}, "X-Rewrite-Url": {"/t/acme/reviews"}, "X-Forwarded-Prefix": {"/admin"}}},
	}
	for _, tc := range overrides {
		t.Run("override "+tc.name, func(t *testing.T) {
			rec := h.Do(t, "GET", "http://localhost/t/acme/billing?"+tc.query, avery, tc.header, "")
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			got := h.UpstreamSaw(t)
			if got.Method != "GET" || got.Path != "/t/acme/billing" || strings.Contains(strings.ToLower(got.Query), "_method") {
				t.Fatalf("upstream got %s %s?%s", got.Method, got.Path, got.Query)
			}
			if c := upstreamControlled(got.Header); c.Get("X-Http-Method-Override")+c.Get("X-Http-Method")+c.Get("X-Method-Override")+c.Get("X-Original-Url")+c.Get("X-Rewrite-Url")+c.Get("X-Forwarded-Prefix") != "" {
				t.Fatalf("override headers reached the app: %v", c)
			}
		})
	}
}

// TestMethodOverrideOptIn: a route that opts in has the policy decide on
// the overridden method, which the app then receives as the method.
func TestMethodOverrideOptIn(t *testing.T) {
	h := newHarnessWith(t, nil, harnessOpts{Config: func(issuer, upstream string) string {
		return fmt.Sprintf(gatewaytest.AccessConfig, issuer, upstream) + "    method_override: true\n    extra_methods: [PROPFIND]\n"
	}})
	rec := h.Do(t, "POST", "http://localhost/t/acme/x?_method=PROPFIND", h.Member(t), nil, "")
	// claims mode: any member; the decision is on PROPFIND.
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := h.UpstreamSaw(t); got.Method != "PROPFIND" || got.Query != "" {
		t.Fatalf("upstream got %s ?%s", got.Method, got.Query)
	}
	rec = h.Do(t, "POST", "http://localhost/t/acme/x", h.Member(t), http.Header{"X-Http-Method-Override": {"DELETE"}, "X-Method-Override": {"PUT"}}, "")
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("conflicting overrides: %d", rec.Code)
	}
	rec = h.Do(t, "GET", "http://localhost/t/acme/x", h.Member(t), http.Header{"X-Http-Method-Override": {"DELETE"}}, "")
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("override of a GET: %d", rec.Code)
	}
	h.UpstreamSawNothing(t)
}

// TestFeaturesHeaderIsTheEffectiveRight: a limited partner without wallet
// is told only the products it was granted; a location manager with
// user_rights ticked is not told it may edit them.
func TestFeaturesHeaderIsTheEffectiveRight(t *testing.T) {
	h, store := gatewaytest.NewRecordingAccess(t)
	ctx := context.Background()
	d, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews", "billing"}, InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Transition(ctx, d.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutMember(ctx, access.Member{Tenant: "acme", User: "lena", Role: "location_manager", Locations: []string{"l1"},
		Features: map[string]string{"user_rights": "edit", "reviews": "read"}}); err != nil {
		t.Fatal(err)
	}
	features := func(user string) map[string]string {
		rec := h.Do(t, "GET", "http://localhost/t/acme/reviews", h.TokenFor(t, user), nil, "")
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", user, rec.Code, rec.Body)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(h.UpstreamSaw(t).Header.Get("X-Portero-Features")), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := features("pat"); len(got) != 1 || got["reviews"] != "edit" {
		t.Errorf("partner features %v, want only reviews", got)
	}
	if got := features("lena"); got["user_rights"] != "" || got["reviews"] != "read" {
		t.Errorf("location manager features %v", got)
	}
}

// The JWKS on the public listener is served, not rejected: it is counted
// under its own route, never as decision="reject".
func TestJWKSIsNotCountedAsRejected(t *testing.T) {
	h := newHarness(t, nil)
	if rec := h.Do(t, "GET", "http://localhost"+proxy.JWKSPath, "", nil, ""); rec.Code != 200 {
		t.Fatalf("JWKS: %d", rec.Code)
	}
	if n := h.Metric(t, "portero_requests_total", "route", "jwks", "decision", "control", "code", "200"); n != 1 {
		t.Fatalf("requests{route=jwks,decision=control} = %v", n)
	}
	if n := h.Metric(t, "portero_requests_total", "route", "none", "decision", "reject", "code", "200"); n != 0 {
		t.Fatalf("JWKS counted as a rejection: %v", n)
	}
}
