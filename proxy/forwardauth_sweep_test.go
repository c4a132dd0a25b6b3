package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/proxy"
)

// A hostile-case sweep of forward-auth (issue 19): the request classes of
// hostile_sweep_test.go, and those only a front proxy adds, sent through
// the simulated front proxy (viaFrontProxy) and, where the class is about
// what the front proxy itself does, through the real nginx and Caddy.
// The rule every case checks: forward-auth never lets through what the
// proxy path refuses, and an allowed request reaches the app as sent, with
// the decision's headers. Open gaps are marked as in hostile_sweep_test.go
// (sweepFinding).

// sameAsProxyPath sends req through the front proxy and the same request
// through Portero itself, and fails unless forward-auth refused it (and the
// app received nothing) or both allowed it and the app received through
// the front proxy the request as sent with the decision's headers.
func sameAsProxyPath(t *testing.T, h *harness, newReq func() *http.Request, withBody bool) (int, string) {
	t.Helper()
	rec := viaFrontProxy(t, h, newReq(), withBody)
	if rec.Code != 200 {
		h.UpstreamSawNothing(t)
		return rec.Code, anyReason(t, rec)
	}
	got := h.UpstreamSaw(t)
	sent := newReq()
	if got.Method != sent.Method || got.Query != sent.URL.RawQuery {
		t.Errorf("app received %s ?%s, the client sent %s ?%s", got.Method, got.Query, sent.Method, sent.URL.RawQuery)
	}
	direct := httptest.NewRecorder()
	h.Gateway.ServeHTTP(direct, newReq())
	if direct.Code != 200 {
		t.Errorf("forward-auth allowed what the proxy path refuses (%d %s)", direct.Code, anyReason(t, direct))
		return rec.Code, ""
	}
	viaPortero := h.UpstreamSaw(t)
	// The same segments; the encoding may differ (%6C for l: the proxy
	// path sends Go's canonical encoding, the front proxy the client's),
	// and Portero prefixes the path of the route's upstream_url.
	if a, b := unescapedPath(t, got.Path), unescapedPath(t, viaPortero.Path); !strings.HasSuffix(b, a) {
		t.Errorf("app received path %q behind the front proxy, %q behind Portero", got.Path, viaPortero.Path)
	}
	behind := got.Header.Clone()
	for name := range proxy.ForwardAuthHeaders {
		behind.Del(name) // the front proxy's own
	}
	if diff := headerDiff(withoutAssertion(t, upstreamControlled(viaPortero.Header)), withoutAssertion(t, upstreamControlled(behind))); diff != "" {
		t.Errorf("decision headers differ from the proxy path's: %s", diff)
	}
	return rec.Code, ""
}

func unescapedPath(t *testing.T, p string) string {
	t.Helper()
	u, err := url.PathUnescape(p)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestForwardAuthSweepPathSpellings: the path spellings of
// TestSweepPathSpellingsHold through the front proxy.
func TestForwardAuthSweepPathSpellings(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	cases := []struct {
		method, path string
		allowed      bool
	}{
		{"PATCH", "/t/acme/LOCATIONS/l9/profile", false},
		{"PATCH", "/t/acme/locations/L1/profile", false},
		{"PATCH", "/t/acme/locations/l1/../l9/profile", false},
		{"PATCH", "/t/acme/locations/l1/..%2fl9/profile", false},
		{"PATCH", "/t/acme/locations/l1%252f..%252fl9/profile", false},
		{"PATCH", "/t/acme/locations/l1/%2e%2e/l9/profile", false},
		{"PATCH", "/t/acme/locations/l1%00/profile", false},
		{"PATCH", "/t/acme/locations/l1%0d%0aX-Portero-User:%20olivia/profile", false},
		{"PATCH", "/t/acme/locations/l1%c2%a0/profile", false},
		{"PATCH", "/t/acme/locations/%ef%bd%8c1/profile", false},
		{"PATCH", "/t/acme/locations/l1;/profile", false},
		{"PATCH", "/t/acme/locations/l1/profile/..;/..;/l9/profile", false},
		{"GET", "/t/acme/locations/l9", false},
		{"HEAD", "/t/acme/locations/l9", false},
		{"OPTIONS", "/t/acme/locations/l9", false},
		{"GET", "/T/acme/locations/l1", false},
		{"GET", "/t/ACME/locations/l1", false},
		{"GET", "/t/acme%20/locations/l1", false},
		{"GET", "/t/acme/.portero/api/v1/tenants", false},
		{"GET", "/t/acme/locations%3F/l9", false},
		{"GET", "/t/acme/locations/l9%3F/../l1", false}, // canonical only after the proxy path's rewrite
		{"GET", "/t/acme/locations/l9%23/x", false},
		{"GET", "/t/acme/%6Cocations/l9", false},
		{"GET", "/t/acme/locations/%6C1", true}, // the app decodes %6C as the policy did
		{"GET", "//t//acme//locations//l1", false},
		{"GET", "/t/acme/locations/l9/../l1/", false},
		{"GET", "/t/acme/locations/l1/", true},
		{"HEAD", "/t/acme/locations/l1", true},
		{"OPTIONS", "/t/acme/locations/l1", true},
		{"GET", "/t/acme/locations/l1/a%3Fb%23c", true},
		{"GET", "/t/acme/locations/l1%2F", false},
		{"GET", "/t/acme/locations/l1%5C..%5Cl9", false},
		{"GET", "/t/acme/locations/l1/%2E", false},
		{"GET", "/t/acme/locations/" + strings.Repeat("a", 8000), false},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				return faRequest(tc.method, "http://localhost"+tc.path, leo, nil, "")
			}, false)
			if (code == 200) != tc.allowed {
				t.Fatalf("status %d (%s), allowed want %v", code, reason, tc.allowed)
			}
		})
	}
}

// TestForwardAuthSweepMethods: the methods of TestSweepMethodsHold.
func TestForwardAuthSweepMethods(t *testing.T) {
	h := newForwardAuthHarness(t)
	avery := h.TokenFor(t, "avery") // billing edit, plan_changes read
	cases := []struct {
		method string
		status int
	}{
		{"POST", 403}, {"PUT", 403}, {"DELETE", 403}, {"PATCH", 403},
		{"HEAD", 200}, {"OPTIONS", 200}, {"GET", 200},
		{"pOST", 400}, {"get", 400}, {"MOVE", 405}, {"PROPPATCH", 405}, {"PURGE", 405},
		{"QUERY", 405}, {"GETS", 405}, {"TRACE", 405},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				return faRequest(tc.method, "http://localhost/t/acme/plan", avery, nil, "")
			}, false)
			if code != tc.status {
				t.Fatalf("status %d (%s), want %d", code, reason, tc.status)
			}
		})
	}
}

// TestForwardAuthSweepQuery: the queries of TestSweepQueryHolds and
// _method spellings: the app receives the query the policy saw, or none.
func TestForwardAuthSweepQuery(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	cases := []struct {
		query  string
		status int
	}{
		{"q=%E2%80%8B%EF%BC%8E%F0%9F%98%80", 200},
		{"q=%ff%fe", 200},
		{"q=caf%C3%A9&q=cafe%CC%81", 200},
		{"a=1&&b=2", 200},
		{"a", 200},
		{"q=%00", 200},
		{"q=..%2f..%2fx", 200},
		{"q=a%3Fb", 200},
		{"a=1;b=2", 400},
		{"a=%", 400},
		{"a=%G0", 400},
		{"_method=DELETE", 400},
		{"_Method=DELETE", 400},
		{"%5fmethod=DELETE", 400},
		{"+method=DELETE", 400},
		{"%5Bmethod=DELETE", 400},
		{"a=1&_method", 400},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				return faRequest("GET", "http://localhost/t/acme/locations/l1?"+tc.query, leo, nil, "")
			}, false)
			if code != tc.status {
				t.Fatalf("status %d (%s), want %d", code, reason, tc.status)
			}
		})
	}
}

// TestForwardAuthSweepHosts: host spellings, ports, IPv6 and the tenant
// named by host and path.
func TestForwardAuthSweepHosts(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo") // acme only
	cases := []struct {
		host, path string
		status     int
	}{
		{"localhost", "/t/acme/locations/l1", 200},
		{"localhost:8443", "/t/acme/locations/l1", 200},
		{"localhost:", "/t/acme/locations/l1", 200},
		{"LOCALHOST", "/t/acme/locations/l1", 400},
		{"localhost.", "/t/acme/locations/l1", 400},
		{"localhost.:8443", "/t/acme/locations/l1", 400},
		{"localhost@evil.example", "/t/acme/locations/l1", 400},
		{"localhost:80:80", "/t/acme/locations/l1", 400},
		{"local_host", "/t/acme/locations/l1", 400},
		{"[::1]", "/t/acme/locations/l1", 400},
		{"[::1]:8443", "/t/acme/locations/l1", 200},
		{"[::1", "/t/acme/locations/l1", 400},
		{"::1", "/t/acme/locations/l1", 200},
		{"[::FFFF:127.0.0.1]:80", "/t/acme/locations/l1", 400},
		{"127.0.0.1:8080", "/t/acme/locations/l1", 200},
		{"0x7f.1", "/t/acme/locations/l1", 200}, // a name like any other: no tenant in it
	}
	for _, tc := range cases {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				req := faRequest("GET", "http://localhost"+tc.path, leo, nil, "")
				req.Host = tc.host
				return req
			}, false)
			if code != tc.status {
				t.Fatalf("status %d (%s), want %d", code, reason, tc.status)
			}
		})
	}
}

// TestForwardAuthSweepTenantInHostAndPath: with tenants in the host
// ({tenant}.apps.example.com) and the path (/t/{tenant}/), a member of
// acme only.
func TestForwardAuthSweepTenantInHostAndPath(t *testing.T) {
	h := newHarnessWith(t, nil, harnessOpts{Extra: forwardAuthConfig})
	c := h.Iss.Claims("mallory", "portero")
	c["roles"] = []string{"acme:location_manager"}
	tok := h.Iss.Sign(t, c)
	cases := []struct {
		host, path string
		allowed    bool
	}{
		{"acme.apps.example.com", "/reviews", true},
		{"acme.apps.example.com:8443", "/reviews", true},
		{"globex.apps.example.com", "/reviews", false},
		{"globex.apps.example.com:8443", "/reviews", false},
		{"GLOBEX.apps.example.com", "/reviews", false},
		{"globex.apps.example.com.", "/reviews", false},
		{"acme.globex.apps.example.com", "/reviews", false},
		{"localhost", "/t/globex/reviews", false},
		{"globex.apps.example.com", "/t/acme/reviews", false},
	}
	for _, tc := range cases {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				req := faRequest("GET", "http://localhost"+tc.path, tok, nil, "")
				req.Host = tc.host
				return req
			}, false)
			if (code == 200) != tc.allowed {
				t.Fatalf("status %d (%s), allowed want %v", code, reason, tc.allowed)
			}
		})
	}
	t.Run("host acme, path globex", func(t *testing.T) {
		sweepFinding(t, "held, as on the proxy path (TestSweepTenantInHostAndPath): host and path name different tenants")
		rec := viaFrontProxy(t, h, func() *http.Request {
			req := faRequest("GET", "http://localhost/t/globex/reviews", tok, nil, "")
			req.Host = "acme.apps.example.com"
			return req
		}(), false)
		if rec.Code == 200 {
			got := h.UpstreamSaw(t)
			t.Fatalf("upstream received %s with X-Portero-Tenant %q", got.Path, got.Header.Get("X-Portero-Tenant"))
		}
		h.UpstreamSawNothing(t)
	})
}

// TestForwardAuthSweepBodies: bodies the check carries (Traefik's
// forwardBody) under other types and methods than the proxy path's tests.
func TestForwardAuthSweepBodies(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	const path = "http://localhost/t/acme/locations/l1/profile"
	cases := []struct {
		name, method, body string
		hdr                http.Header
		withBody           bool
		status             int
	}{
		{"text/plain body", "PATCH", `{"name":"x"}`, http.Header{"Content-Type": {"text/plain"}}, true, 415},
		{"no content type", "PATCH", `{"name":"x"}`, http.Header{"Content-Type": nil}, true, 415},
		{"form body", "PATCH", `name=x`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, true, 403},
		{"json with a charset", "PATCH", `{"phone":"1"}`, http.Header{"Content-Type": {"application/json; charset=utf-8"}}, true, 200},
		{"duplicate keys", "PATCH", `{"phone":"1","name":"x","name":"y"}`, nil, true, 400},
		{"body on a GET", "GET", `{"name":"x"}`, nil, true, 200},
		{"body on a DELETE", "DELETE", `{"phone":"1"}`, nil, true, 403},
		{"body on a DELETE, not in the check", "DELETE", `{"phone":"1"}`, nil, false, 403},
		{"method override in the body", "POST", `{"_method":"PATCH","phone":"1"}`, nil, true, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				req := faRequest(tc.method, path, leo, nil, tc.body)
				for name, vals := range tc.hdr {
					req.Header[name] = vals
					if vals == nil {
						delete(req.Header, name)
					}
				}
				return req
			}, tc.withBody)
			if code != tc.status {
				t.Fatalf("status %d (%s), want %d", code, reason, tc.status)
			}
		})
	}
}

// TestForwardAuthSweepCheckSource: who may ask: the secret's spellings and
// IPv4-mapped addresses.
func TestForwardAuthSweepCheckSource(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	cases := []struct {
		name, remote string
		secret       []string
		status       int
	}{
		{"trusted", frontProxyAddr, []string{faSecret}, 200},
		{"IPv4-mapped trusted address", "[::ffff:192.0.2.1]:1234", []string{faSecret}, 200},
		{"IPv4-mapped untrusted address", "[::ffff:198.51.100.7]:1234", []string{faSecret}, 403},
		{"IPv6 zone", "[fe80::1%eth0]:1234", []string{faSecret}, 403},
		{"secret twice", frontProxyAddr, []string{faSecret, faSecret}, 403},
		{"secret empty", frontProxyAddr, []string{""}, 403},
		{"secret with a space", frontProxyAddr, []string{" " + faSecret}, 403},
		{"secret as a list", frontProxyAddr, []string{faSecret + ", " + faSecret}, 403},
		{"secret's prefix", frontProxyAddr, []string{faSecret[:31]}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := httptest.NewRequest("GET", "http://portero.internal/", nil)
			check.RemoteAddr = tc.remote
			check.Header.Set("Authorization", "Bearer "+leo)
			check.Header.Set("Accept", "application/json")
			check.Header.Set("X-Forwarded-Method", "GET")
			check.Header.Set("X-Forwarded-Uri", "/t/acme/locations/l1")
			check.Header.Set("X-Forwarded-Host", "localhost")
			check.Header[proxy.SecretHeader] = tc.secret
			rec := httptest.NewRecorder()
			h.Gateway.ForwardAuth().ServeHTTP(rec, check)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
		})
	}
	// The secret in another spelling is the client's, not the proxy's.
	rec := viaFrontProxy(t, h, faRequest("GET", "http://localhost/t/acme/locations/l1", leo,
		http.Header{"X_Portero_Forward_Auth_Secret": {faSecret}}, ""), false)
	if rec.Code != 400 || anyReason(t, rec) != "request.reserved_header" {
		t.Fatalf("secret in another spelling: %d %s", rec.Code, rec.Body)
	}
	h.UpstreamSawNothing(t)
}

var _ = gatewaytest.Config

// TestForwardAuthSweepHopByHop: hop-by-hop headers and Connection tokens
// through the simulated front proxy: the check sees them as the client
// sent them, and serve's upgradeRefused runs on the rebuilt request.
func TestForwardAuthSweepHopByHop(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	cases := []struct {
		name    string
		hdr     http.Header
		allowed bool
	}{
		{"h2c upgrade", http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQAAP__"}}, false},
		{"websocket and h2c", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket, h2c"}}, false},
		{"two Upgrade lines", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket", "h2c"}}, false},
		{"TLS upgrade", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"TLS/1.2"}}, false},
		{"empty Upgrade", http.Header{"Upgrade": {""}}, false},
		{"Te trailers", http.Header{"Te": {"trailers"}}, true},
		{"Keep-Alive", http.Header{"Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"}}, true},
		{"Proxy-Connection", http.Header{"Proxy-Connection": {"keep-alive"}}, true},
		{"Trailer naming a reserved header", http.Header{"Trailer": {"X-Portero-User"}}, true},
		{"Proxy header (httpoxy)", http.Header{"Proxy": {"http://evil.example"}}, false},
		{"Proxy-Authorization", http.Header{"Proxy-Authorization": {"Basic eDp5"}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := sameAsProxyPath(t, h, func() *http.Request {
				return faRequest("GET", "http://localhost/t/acme/locations/l1", leo, tc.hdr.Clone(), "")
			}, false)
			if (code == 200) != tc.allowed {
				t.Fatalf("status %d (%s), allowed want %v", code, reason, tc.allowed)
			}
		})
	}
}

// TestForwardAuthSweepConnectionThroughFrontProxies: a client's Connection
// header naming one of the headers Portero answers with, sent through the
// real nginx and Caddy. Caddy (like Go's ReverseProxy, and so Traefik)
// removes the headers a Connection header names when it forwards, both
// from the check and from the request to the app, after it set Portero's
// answer headers on the latter.
func TestForwardAuthSweepConnectionThroughFrontProxies(t *testing.T) {
	for _, fp := range frontProxies {
		t.Run(fp.name, func(t *testing.T) {
			frontProxyBinary(t, fp.name)
			h, authAddr := forwardAuthHarness(t, harnessOpts{}, "127.0.0.1/32")
			c := frontClient(fp.start(t, h, authAddr))
			tok := h.Member(t)
			const api = "http://acme.apps.example.com/api/orders"
			if rec := h.Do(t, "GET", api, tok, nil, ""); rec.Code != 200 {
				t.Fatalf("through Portero: %d %s", rec.Code, rec.Body)
			}
			viaPortero := h.UpstreamSaw(t)
			for _, conn := range []string{"X-Portero-Tenant", "X-Portero-Roles, X-Portero-User", "X-Portero-Assertion", "Cookie", "Upgrade, X-Portero-Tenant", "keep-alive, X-Portero-User"} {
				t.Run(conn, func(t *testing.T) {
					resp, body := frontRequest{method: "GET", url: api, token: tok,
						header: http.Header{"Connection": {conn}, "Cookie": {"theme=dark"}}}.send(t, c)
					if resp.StatusCode != 200 {
						h.UpstreamSawNothing(t)
						return // refusing holds too
					}
					_ = body
					got := h.UpstreamSaw(t)
					checkSameAsPortero(t, got, viaPortero, "acme.apps.example.com")
					if got.Header.Get("Cookie") != "theme=dark" {
						t.Errorf("Cookie %q, want theme=dark", got.Header.Values("Cookie"))
					}
				})
			}
			t.Run("h2c upgrade", func(t *testing.T) {
				resp, _ := frontRequest{method: "GET", url: api, token: tok,
					header: http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQAAP__"}}}.send(t, c)
				if resp.StatusCode != 200 {
					h.UpstreamSawNothing(t)
					return
				}
				if got := h.UpstreamSaw(t); got.Header.Get("Upgrade") != "" {
					t.Fatalf("the app received Upgrade %q, the policy decided on no upgrade", got.Header.Get("Upgrade"))
				}
			})
		})
	}
}

// TestForwardAuthSweepTrailersThroughFrontProxies: request trailers come
// after the check; the proxy path never forwards them
// (TestRequestTrailersNeverReachTheApp).
func TestForwardAuthSweepTrailersThroughFrontProxies(t *testing.T) {
	for _, fp := range frontProxies {
		t.Run(fp.name, func(t *testing.T) {
			frontProxyBinary(t, fp.name)
			h, authAddr := forwardAuthHarness(t, harnessOpts{}, "127.0.0.1/32")
			addr := fp.start(t, h, authAddr)
			tok := h.Member(t)
			raw := "GET /api/orders HTTP/1.1\r\nHost: acme.apps.example.com\r\nAuthorization: Bearer " + tok +
				"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Portero-User\r\n\r\n1\r\nx\r\n0\r\nX-Portero-User: root\r\n\r\n"
			if status := rawRequest(t, addr, raw); status != 200 {
				h.UpstreamSawNothing(t)
				return
			}
			got := h.UpstreamSaw(t)
			// Caddy passes the Trailer declaration on, with no value.
			if got.Trailer.Get("X-Portero-User") != "" || got.Header.Get("X-Portero-User") != "alice" {
				t.Fatalf("the app received trailers %v, X-Portero-User %q", got.Trailer, got.Header.Values("X-Portero-User"))
			}
		})
	}
}

// TestForwardAuthSweepCookies: Portero's session cookie in repeated Cookie
// headers, among other cookies, in its chunk names (portero_session_1) and
// in spellings that are not Portero's: the app receives every other cookie
// and none of Portero's.
func TestForwardAuthSweepCookies(t *testing.T) {
	h := newHarnessWith(t, nil, harnessOpts{Login: true, Extra: forwardAuthConfig})
	b := gatewaytest.NewBrowser(t, h)
	if rec := b.SignIn("http://localhost/t/acme/page", gatewaytest.AliceClaims()); rec.Code != http.StatusFound {
		t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	var session []string
	for _, c := range b.Cookies {
		session = append(session, c.Name+"="+c.Value)
	}
	own := strings.Join(session, "; ")
	name, _, _ := strings.Cut(session[0], "=")
	cases := []struct {
		name   string
		cookie []string
		want   string // the app's Cookie; "" none
	}{
		{"session in a second Cookie header", []string{"theme=dark", own}, "theme=dark"},
		{"session in the first of two", []string{own, "theme=dark"}, "theme=dark"},
		{"two other headers", []string{own, "a=1", "b=2"}, "a=1; b=2"},
		{"a chunk name of Portero's", []string{own + "; " + name + "_1=x; " + name + "_9=y; theme=dark"}, "theme=dark"},
		{"a name Portero's is a prefix of", []string{own + "; " + name + "x=1"}, name + "x=1"},
		{"upper-case spelling of Portero's name", []string{own + "; " + strings.ToUpper(name) + "=1"}, strings.ToUpper(name) + "=1"},
		{"empty parts", []string{own + ";;; ; theme=dark;"}, "theme=dark"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := faRequest("GET", "http://localhost/t/acme/page", "", http.Header{"Cookie": tc.cookie}, "")
			rec := viaFrontProxy(t, h, req, false)
			if rec.Code != 200 {
				t.Fatalf("status %d %s", rec.Code, rec.Body)
			}
			got := h.UpstreamSaw(t)
			if c := got.Header.Values("Cookie"); strings.Join(c, "|") != tc.want {
				t.Fatalf("the app received Cookie %q, want %q", c, tc.want)
			}
			if got.Header.Get("X-Portero-User") != "alice" {
				t.Fatalf("X-Portero-User %q", got.Header.Get("X-Portero-User"))
			}
		})
	}
}
