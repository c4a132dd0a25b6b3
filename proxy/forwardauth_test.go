package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/proxy"
)

// The hostile cases of the proxy path, sent through a front proxy that asks
// Portero's forward-auth endpoint and forwards the request itself. The
// front proxy here does what docs/forward-auth.md configures nginx,
// Traefik and Caddy to do (the real nginx and Caddy run in
// frontproxy_test.go): it sets its own X-Forwarded-* headers on the check
// and on the forwarded request, replacing client copies, forwards the
// client's request otherwise as sent, and sets Portero's answer headers on
// it. Every case checks what the upstream received.

const forwardAuthConfig = `
forward_auth:
  path: /.portero/auth
  secret: ` + faSecret + `
  trusted_proxies: [192.0.2.0/24, 127.0.0.1]
`

// faSecret is forward_auth.secret: the front proxy sends it with every
// check.
const faSecret = "0123456789abcdef0123456789abcdef"

// frontProxyAddr is where the front proxy's checks come from
// (httptest.NewRequest's RemoteAddr, inside trusted_proxies).
const frontProxyAddr = "192.0.2.1:1234"

// viaFrontProxy sends req through the front proxy. withBody makes the check
// carry the request's body (Traefik's forwardBody, Envoy's
// with_request_body); nginx and Caddy send none.
func viaFrontProxy(t *testing.T, h *harness, req *http.Request, withBody bool) *httptest.ResponseRecorder {
	t.Helper()
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	own := map[string]string{
		"X-Forwarded-Method": req.Method, "X-Forwarded-Uri": req.URL.RequestURI(), "X-Forwarded-Host": req.Host,
		"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9",
	}
	check := httptest.NewRequest("GET", "http://portero.internal/", nil)
	if withBody && len(body) > 0 {
		check = httptest.NewRequest("POST", "http://portero.internal/", bytes.NewReader(body))
	}
	check.RemoteAddr = frontProxyAddr
	for name, vals := range req.Header {
		check.Header[name] = vals
	}
	for name, v := range own {
		check.Header.Set(name, v)
	}
	check.Header.Set(proxy.SecretHeader, faSecret)
	answer := httptest.NewRecorder()
	h.Gateway.ForwardAuth().ServeHTTP(answer, check)
	if answer.Code != http.StatusOK {
		return answer
	}
	target, err := url.Parse(h.Upstream.URL + req.URL.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	out, err := http.NewRequest(req.Method, target.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out.Host = req.Host
	for name, vals := range req.Header {
		out.Header[name] = vals
	}
	for name, v := range own {
		out.Header.Set(name, v)
	}
	// Portero's answer headers (Traefik: authResponseHeadersRegex
	// ^(X-Portero-|Impersonate-); nginx: one proxy_set_header each), and
	// Cookie replaced by the answer's (or removed without one).
	out.Header.Del("Cookie")
	for name, vals := range answer.Header() {
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-portero-") || strings.HasPrefix(n, "impersonate-") || n == "cookie" {
			out.Header[name] = vals
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rec := httptest.NewRecorder()
	rec.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(rec, resp.Body)
	return rec
}

// anyReason is a refusal's reason, from its JSON or its HTML page.
func anyReason(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if m := regexp.MustCompile(`Reason: <code>([^<]*)</code>`).FindStringSubmatch(rec.Body.String()); m != nil {
		return m[1]
	}
	return reasonOf(t, rec)
}

func newForwardAuthHarness(t *testing.T) *harness {
	t.Helper()
	h, _ := gatewaytest.NewRecordingAccessWith(t, forwardAuthConfig)
	return h
}

// faRequest is a request as the client sends it to the front proxy.
func faRequest(method, target, token string, hdr http.Header, body string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.Header.Set("Accept", "application/json") // refusals before routing answer JSON
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for name, vals := range hdr {
		req.Header[name] = vals
	}
	return req
}

// TestForwardAuthHeaderSets: every hostile header set of the proxy path,
// and random ones, through the front proxy. Portero cannot remove a header
// the front proxy forwards, so a request carrying a reserved, override or
// identity header is refused and never reaches the app; any other reaches
// it with exactly the decision's headers.
func TestForwardAuthHeaderSets(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	send := func(extra http.Header) *httptest.ResponseRecorder {
		return viaFrontProxy(t, h, faRequest("GET", "http://localhost/t/acme/locations/l1", leo, extra, ""), false)
	}
	if rec := send(nil); rec.Code != 200 {
		t.Fatalf("clean request: %d %s", rec.Code, rec.Body)
	}
	clean := h.UpstreamSaw(t)
	want := withoutAssertion(t, upstreamControlled(clean.Header))
	if want.Get("X-Portero-User") != "leo" {
		t.Fatalf("clean request's headers %v", want)
	}
	sets := maps.Clone(hostileHeaderSets)
	rng := rand.New(rand.NewPCG(19, 1))
	for i := range 200 {
		sets[fmt.Sprintf("random set %d", i)] = randomHostileHeaders(rng)
	}
	refused, passed := 0, 0
	for name, set := range sets {
		rec := send(set.Clone())
		switch rec.Code {
		case 200:
			passed++
			got := h.UpstreamSaw(t)
			if diff := headerDiff(want, withoutAssertion(t, upstreamControlled(got.Header))); diff != "" {
				t.Errorf("%s: upstream headers differ from the decision's: %s", name, diff)
			}
			if got.Header.Get("X-Forwarded-Host") != "localhost" || got.Header.Get("X-Forwarded-For") != "203.0.113.9" {
				t.Errorf("%s: upstream X-Forwarded-Host %q, -For %q", name, got.Header.Get("X-Forwarded-Host"), got.Header.Get("X-Forwarded-For"))
			}
		case 400:
			refused++
			if r := anyReason(t, rec); r != "request.reserved_header" && r != "forward_auth.ambiguous" {
				t.Errorf("%s: refused with %q", name, r)
			}
			h.UpstreamSawNothing(t)
		default:
			t.Errorf("%s: status %d: %s", name, rec.Code, rec.Body)
		}
	}
	if refused == 0 || passed == 0 {
		t.Fatalf("refused %d, passed %d: the sets should do both", refused, passed)
	}
	if got := h.Metric(t, "portero_forward_auth_checks_total", "via", "http", "result", "refused"); got != float64(refused) {
		t.Fatalf("refused checks counted %v, want %d", got, refused)
	}
	if got := h.Metric(t, "portero_forward_auth_checks_total", "via", "http", "result", "allowed"); got != float64(passed+1) {
		t.Fatalf("allowed checks counted %v, want %d", got, passed+1)
	}
}

// TestForwardAuthRefusesWhatOnlyTheProxyPathChanges: the proxy path
// forwards these in their canonical form (or without _method); a front
// proxy would forward them as sent, so they are refused.
func TestForwardAuthRefusesWhatOnlyTheProxyPathChanges(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	cases := []struct {
		target, reason string
	}{
		{"http://localhost/t/acme//locations/l1", "request.non_canonical_path"},
		{"http://localhost/t/acme/./locations/l1", "request.non_canonical_path"},
		{"http://localhost/t/acme/x/../locations/l1", "request.non_canonical_path"},
		{"http://localhost/t/acme/locations/l1/.", "request.non_canonical_path"},
		{"http://localhost/t/acme/%2e%2e/globex/locations/l1", "request.bad_path"},
		{"http://localhost/t/acme/locations%2Fl1", "request.bad_path"},
		{"http://localhost/t/acme/locations/l1?_method=DELETE", "request.method_override"},
		{"http://localhost/t/acme/locations/l1?a=1&_METHOD=DELETE", "request.method_override"},
		{"http://localhost/t/acme/locations/l1?%5Fmethod=DELETE", "request.method_override"},
		{"http://localhost/t/acme/locations/l1?.method=DELETE", "request.method_override"},
		{"http://LOCALHOST/t/acme/locations/l1", "request.non_canonical_host"},
		{"http://localhost./t/acme/locations/l1", "request.non_canonical_host"},
		{"http://localhost/.portero/login?rd=/", "forward_auth.portero_path"},
		{"http://localhost/.portero/api/tenants", "forward_auth.portero_path"},
		{"http://localhost" + proxy.JWKSPath, "forward_auth.portero_path"},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			rec := viaFrontProxy(t, h, faRequest("GET", tc.target, leo, nil, ""), false)
			if rec.Code == 200 || reasonOf(t, rec) != tc.reason {
				t.Fatalf("status %d reason %q, want %s", rec.Code, reasonOf(t, rec), tc.reason)
			}
			h.UpstreamSawNothing(t)
		})
	}
	// The canonical spelling of the same request passes, and the app
	// receives its path as sent.
	rec := viaFrontProxy(t, h, faRequest("GET", "http://localhost/t/acme/locations/l1?a=1", leo, nil, ""), false)
	if rec.Code != 200 {
		t.Fatalf("canonical: %d %s", rec.Code, rec.Body)
	}
	if got := h.UpstreamSaw(t); got.Path != "/t/acme/locations/l1" || got.Query != "a=1" {
		t.Fatalf("upstream saw %s?%s", got.Path, got.Query)
	}
}

// TestForwardAuthBodies: on a route whose policy reads bodies, an edit is
// decided on its body when the check carries it, and refused when it does
// not (Portero cannot tell an edit without a body from one whose body the
// front proxy did not send).
func TestForwardAuthBodies(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")   // may edit the phone and hours of l1's profile
	adam := h.TokenFor(t, "adam") // administrator: edits whole resources
	const path = "http://localhost/t/acme/locations/l1/profile"
	cases := []struct {
		name          string
		token, method string
		body          string
		withBody      bool
		status        int
		reason        string
	}{
		{"allowed field, body in the check", leo, "PATCH", `{"phone":"555"}`, true, 200, ""},
		{"other field, body in the check", leo, "PATCH", `{"name":"x"}`, true, 403, "field.not_allowed"},
		{"method override in the body", adam, "POST", `{"_method":"DELETE"}`, true, 400, "request.method_override"},
		{"allowed field, no body in the check", leo, "PATCH", `{"phone":"555"}`, false, 403, "forward_auth.body_required"},
		{"other field, no body in the check", leo, "PATCH", `{"name":"x"}`, false, 403, "forward_auth.body_required"},
		{"administrator, no body in the check", adam, "PATCH", `{"name":"x"}`, false, 403, "forward_auth.body_required"},
		{"DELETE, no body in the check", adam, "DELETE", "", false, 403, "forward_auth.body_required"},
		{"POST, no body in the check", adam, "POST", `{"_method":"DELETE"}`, false, 403, "forward_auth.body_required"},
		{"POST, body in the check", adam, "POST", `{"name":"x"}`, true, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := viaFrontProxy(t, h, faRequest(tc.method, path, tc.token, nil, tc.body), tc.withBody)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				if tc.reason != "" && reasonOf(t, rec) != tc.reason {
					t.Fatalf("reason %q, want %s", reasonOf(t, rec), tc.reason)
				}
				h.UpstreamSawNothing(t)
				return
			}
			if got := h.UpstreamSaw(t); got.Method != tc.method || got.Body != tc.body {
				t.Fatalf("upstream saw %s %q", got.Method, got.Body)
			}
		})
	}
	// Reads need no body.
	if rec := viaFrontProxy(t, h, faRequest("GET", path, leo, nil, ""), false); rec.Code != 200 {
		t.Fatalf("read: %d %s", rec.Code, rec.Body)
	}
	h.UpstreamSaw(t)
}

// TestForwardAuthCheckItself: who may ask, and what a check must say.
func TestForwardAuthCheckItself(t *testing.T) {
	h := newForwardAuthHarness(t)
	leo := h.TokenFor(t, "leo")
	ask := func(remote string, hdr http.Header) *httptest.ResponseRecorder {
		check := httptest.NewRequest("GET", "http://portero.internal/", nil)
		check.RemoteAddr = remote
		check.Header.Set("Authorization", "Bearer "+leo)
		check.Header.Set("Accept", "application/json")
		check.Header.Set(proxy.SecretHeader, faSecret)
		for name, vals := range hdr {
			if len(vals) == 0 || vals[0] == "" && len(vals) == 1 {
				check.Header.Del(name)
				continue
			}
			check.Header[name] = vals
		}
		rec := httptest.NewRecorder()
		h.Gateway.ForwardAuth().ServeHTTP(rec, check)
		return rec
	}
	good := http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/t/acme/locations/l1"}, "X-Forwarded-Host": {"localhost"}}
	with := func(name string, vals ...string) http.Header {
		hdr := good.Clone()
		hdr[name] = vals // nil: absent; ask sets the secret unless hdr names it
		return hdr
	}
	cases := []struct {
		name   string
		remote string
		hdr    http.Header
		status int
		reason string
	}{
		{"trusted", frontProxyAddr, good, 200, ""},
		{"nginx's names", frontProxyAddr, http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/t/acme/locations/l1"}, "X-Forwarded-Host": {"localhost"}}, 200, ""},
		{"both names agree", frontProxyAddr, with("X-Original-Uri", "/t/acme/locations/l1"), 200, ""},
		{"untrusted address", "198.51.100.7:5555", good, 403, "forward_auth.untrusted_source"},
		{"untrusted IPv6", "[2001:db8::1]:5555", good, 403, "forward_auth.untrusted_source"},
		{"no address", "", good, 403, "forward_auth.untrusted_source"},
		{"no secret", frontProxyAddr, with(proxy.SecretHeader, ""), 403, "forward_auth.untrusted_source"},
		{"wrong secret", frontProxyAddr, with(proxy.SecretHeader, "0123456789abcdef0123456789abcdeX"), 403, "forward_auth.untrusted_source"},
		{"secret and another", frontProxyAddr, with(proxy.SecretHeader, faSecret, "x"), 403, "forward_auth.untrusted_source"},
		{"no method", frontProxyAddr, with("X-Forwarded-Method"), 400, "forward_auth.incomplete"},
		{"no uri", frontProxyAddr, with("X-Forwarded-Uri"), 400, "forward_auth.incomplete"},
		{"two uris", frontProxyAddr, with("X-Forwarded-Uri", "/t/acme/locations/l1", "/t/globex/"), 400, "forward_auth.ambiguous"},
		{"names disagree on the uri", frontProxyAddr, with("X-Original-Uri", "/t/globex/locations/l1"), 400, "forward_auth.ambiguous"},
		{"names disagree on the method", frontProxyAddr, with("X-Original-Method", "DELETE"), 400, "forward_auth.ambiguous"},
		{"host list", frontProxyAddr, with("X-Forwarded-Host", "localhost, evil.example"), 400, "forward_auth.ambiguous"},
		{"two hosts", frontProxyAddr, with("X-Forwarded-Host", "localhost", "evil.example"), 400, "forward_auth.ambiguous"},
		{"absolute uri", frontProxyAddr, with("X-Forwarded-Uri", "http://evil.example/t/acme/"), 400, "request.bad_path"},
		{"uri with fragment", frontProxyAddr, with("X-Forwarded-Uri", "/t/acme/locations/l1#x"), 400, "request.bad_path"},
		{"scheme-relative uri", frontProxyAddr, with("X-Forwarded-Uri", "//evil.example/t/acme/"), 400, "request.non_canonical_path"},
		{"lower-case method", frontProxyAddr, with("X-Forwarded-Method", "get"), 400, "request.bad_method"},
		{"CONNECT", frontProxyAddr, with("X-Forwarded-Method", "CONNECT"), 405, "request.method_not_allowed"},
		{"bad host", frontProxyAddr, with("X-Forwarded-Host", "evil_host"), 400, "request.bad_host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := ask(tc.remote, tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 {
				if rec.Header().Get("X-Portero-User") != "leo" || rec.Header().Get("X-Portero-Assertion") == "" {
					t.Fatalf("answer headers %v", rec.Header())
				}
				return
			}
			if r := reasonOf(t, rec); r != tc.reason {
				t.Fatalf("reason %q, want %s", r, tc.reason)
			}
			if tc.reason == "forward_auth.untrusted_source" && h.Metric(t, "portero_forward_auth_checks_total", "via", "http", "result", "untrusted") == 0 {
				t.Fatal("untrusted check not counted")
			}
			if rec.Header().Get("X-Portero-User") != "" || rec.Header().Get("X-Portero-Assertion") != "" {
				t.Fatalf("a refusal carries decision headers: %v", rec.Header())
			}
		})
	}
}

// TestForwardAuthOnThePublicListener: forward_auth.path answers checks on
// the public listener, from trusted addresses only.
func TestForwardAuthOnThePublicListener(t *testing.T) {
	h := newForwardAuthHarness(t)
	req, _ := http.NewRequest("GET", h.Server.URL+"/.portero/auth", nil)
	req.Header.Set("Authorization", "Bearer "+h.TokenFor(t, "leo"))
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/t/acme/locations/l1")
	req.Header.Set("X-Forwarded-Host", "localhost")
	for _, secret := range []string{"", "wrong", faSecret} {
		req.Header.Set(proxy.SecretHeader, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case secret != faSecret && (resp.StatusCode != 403 || resp.Header.Get("X-Portero-User") != ""):
			t.Fatalf("secret %q: status %d, headers %v", secret, resp.StatusCode, resp.Header)
		case secret == faSecret && (resp.StatusCode != 200 || resp.Header.Get("X-Portero-User") != "leo"):
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
	}
	h.UpstreamSawNothing(t) // a check forwards nothing itself
}

// TestForwardAuthAnonymous: an API caller without a token gets the bearer
// challenge; a browser gets 401 with the sign-in address (nginx turns it
// into a redirect with error_page, see docs/forward-auth.md).
func TestForwardAuthAnonymous(t *testing.T) {
	h := newForwardAuthHarness(t)
	rec := viaFrontProxy(t, h, faRequest("GET", "http://localhost/t/acme/locations/l1", "", nil, ""), false)
	if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("api: %d %v", rec.Code, rec.Header())
	}
	h.UpstreamSawNothing(t)

	b := newHarnessWith(t, nil, harnessOpts{Login: true, Extra: forwardAuthConfig})
	rec = viaFrontProxy(t, b, faRequest("GET", "http://localhost/base/page?x=1", "", http.Header{"Accept": {"text/html"}}, ""), false)
	loc := rec.Header().Get("Location")
	if rec.Code != 401 || !strings.HasPrefix(loc, "http://localhost/.portero/login?rd=") || !strings.Contains(rec.Body.String(), `http-equiv="refresh"`) {
		t.Fatalf("browser: %d %q %s", rec.Code, loc, rec.Body)
	}
	if u, _ := url.Parse(loc); u.Query().Get("rd") != "/base/page?x=1" {
		t.Fatalf("return target %q", u.Query().Get("rd"))
	}
	b.UpstreamSawNothing(t)
}

// TestForwardAuthSessionCookieStaysWithPortero: a signed-in browser's
// request reaches the app with its other cookies, never Portero's.
func TestForwardAuthSessionCookieStaysWithPortero(t *testing.T) {
	h := newHarnessWith(t, nil, harnessOpts{Login: true, Extra: forwardAuthConfig})
	b := gatewaytest.NewBrowser(t, h)
	if rec := b.SignIn("http://localhost/t/acme/page", gatewaytest.AliceClaims()); rec.Code != http.StatusFound {
		t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	for _, others := range []string{"", "theme=dark", "theme=dark; lang=es"} {
		req := faRequest("GET", "http://localhost/t/acme/page", "", nil, "")
		var parts []string
		for _, c := range b.Cookies {
			parts = append(parts, c.Name+"="+c.Value)
		}
		if others != "" {
			parts = append(parts, others)
		}
		req.Header.Set("Cookie", strings.Join(parts, "; "))
		rec := viaFrontProxy(t, h, req, false)
		if rec.Code != 200 {
			t.Fatalf("signed in: %d %s", rec.Code, rec.Body)
		}
		got := h.UpstreamSaw(t)
		if got.Header.Get("Cookie") != others || len(got.Header.Values("Cookie")) > 1 {
			t.Fatalf("upstream Cookie %q, want %q", got.Header.Values("Cookie"), others)
		}
		if got.Header.Get("X-Portero-User") != "alice" {
			t.Fatalf("X-Portero-User %q", got.Header.Get("X-Portero-User"))
		}
	}
}
