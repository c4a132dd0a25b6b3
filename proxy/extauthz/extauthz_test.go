package extauthz_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/proxy/extauthz"
)

// The checks here go from a real gRPC client (the generated
// AuthorizationClient, as Envoy's ext_authz filter sends them) over
// loopback TCP to the server in front of a whole gateway. What the app
// would receive is worked out from the answer the way Envoy applies it
// (appReceives), and the cases check that, not only the status.

// envoyConfig turns on the gRPC endpoint; the listener itself is the
// test's (127.0.0.1:0).
const envoyConfig = `
forward_auth:
  envoy: 127.0.0.1:0
  trusted_proxies: [127.0.0.1/32]
`

type envoy struct {
	*gatewaytest.Harness
	client authv3.AuthorizationClient
}

// newEnvoy is a gateway (o, with envoyConfig) behind the ext_authz server,
// which believes checks from trusted, and a client connected to it.
func newEnvoy(t *testing.T, trusted string, o gatewaytest.Options) *envoy {
	t.Helper()
	o.Extra += envoyConfig
	h := gatewaytest.NewWith(t, nil, o)
	srv := extauthz.New(h.Gateway, config.ForwardAuth{
		Envoy:          "127.0.0.1:0",
		TrustedProxies: []string{trusted},
		Trusted:        []netip.Prefix{netip.MustParsePrefix(trusted)},
	}, slog.New(slog.NewJSONHandler(h.Logs, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &envoy{Harness: h, client: authv3.NewAuthorizationClient(conn)}
}

// check is the original request as Envoy describes it.
type check struct {
	method, path, host string
	protocol           string            // "" means HTTP/1.1
	headers            map[string]string // lower-case names, as Envoy sends them
	body               string
	raw                bool // header_map (encode_raw_headers) and raw_body (pack_as_bytes)
}

func (c check) request() *authv3.CheckRequest {
	if c.method == "" {
		c.method = "GET"
	}
	if c.host == "" {
		c.host = "acme.apps.example.com"
	}
	if c.protocol == "" {
		c.protocol = "HTTP/1.1"
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Id: "req-1", Method: c.method, Path: c.path, Host: c.host, Scheme: "https", Protocol: c.protocol,
	}
	// Envoy's own: the pseudo-headers and what the connection manager sets.
	headers := map[string]string{
		":authority": c.host, ":method": c.method, ":path": c.path, ":scheme": "https",
		"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-request-id": "req-1",
	}
	for k, v := range c.headers {
		headers[k] = v
	}
	if c.raw {
		hm := &corev3.HeaderMap{}
		for _, k := range slices.Sorted(maps.Keys(headers)) {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(headers[k])})
		}
		hr.HeaderMap = hm
		hr.RawBody = []byte(c.body)
	} else {
		hr.Headers = headers
		hr.Body = c.body
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:  &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		Request: &authv3.AttributeContext_Request{Http: hr},
	}}
}

// send asks the server and fails on a gRPC error: every answer must be a
// CheckResponse.
func (e *envoy) send(t *testing.T, c check) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.client.Check(ctx, c.request())
	if err != nil {
		t.Fatalf("%s %s: gRPC error %v, want a CheckResponse", c.method, c.path, err)
	}
	return resp
}

// appReceives is the request's headers after Envoy applied ok: headers set
// (OVERWRITE_IF_EXISTS_OR_ADD) or appended, headers_to_remove removed. It
// applies them in both orders and fails unless the result is the same, so
// the answer does not depend on which one Envoy applies first.
func appReceives(t *testing.T, c check, ok *authv3.OkHttpResponse) http.Header {
	t.Helper()
	sent := c.request().GetAttributes().GetRequest().GetHttp()
	base := http.Header{}
	for k, v := range sent.GetHeaders() {
		if !strings.HasPrefix(k, ":") {
			base.Set(k, v)
		}
	}
	for _, hv := range sent.GetHeaderMap().GetHeaders() {
		if !strings.HasPrefix(hv.GetKey(), ":") {
			base.Add(hv.GetKey(), string(hv.GetRawValue()))
		}
	}
	set := func(h http.Header) {
		for _, o := range ok.GetHeaders() {
			switch o.GetAppendAction() {
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				h.Set(o.GetHeader().GetKey(), o.GetHeader().GetValue())
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				h.Add(o.GetHeader().GetKey(), o.GetHeader().GetValue())
			default:
				t.Fatalf("header %s: append action %v", o.GetHeader().GetKey(), o.GetAppendAction())
			}
		}
	}
	remove := func(h http.Header) {
		for _, name := range ok.GetHeadersToRemove() {
			if name != strings.ToLower(name) {
				t.Fatalf("headers_to_remove %q: Envoy wants lower case", name)
			}
			delete(h, name) // the raw, possibly non-canonical spelling
			h.Del(name)
		}
	}
	setFirst, removeFirst := base.Clone(), base.Clone()
	set(setFirst)
	remove(setFirst)
	remove(removeFirst)
	set(removeFirst)
	if !equalHeaders(setFirst, removeFirst) {
		t.Fatalf("the answer depends on Envoy's order:\nset, then remove: %v\nremove, then set: %v", setFirst, removeFirst)
	}
	return setFirst
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// denial is a denied answer's status, headers (lower-case names) and the
// reason in its JSON body.
type denial struct {
	status int
	header http.Header
	reason string
	body   string
}

var pageReason = regexp.MustCompile(`Reason: <code>([^<]+)</code>`)

func deniedOf(t *testing.T, resp *authv3.CheckResponse) denial {
	t.Helper()
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("allowed, want denied: %v", resp)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied {
		t.Fatalf("denied with status %v, want PERMISSION_DENIED", resp.GetStatus())
	}
	out := denial{status: int(d.GetStatus().GetCode()), header: http.Header{}, body: d.GetBody()}
	for _, o := range d.GetHeaders() {
		out.header.Add(o.GetHeader().GetKey(), o.GetHeader().GetValue())
	}
	var body struct{ Reason string }
	if json.Unmarshal([]byte(d.GetBody()), &body) == nil {
		out.reason = body.Reason
	} else if m := pageReason.FindStringSubmatch(d.GetBody()); m != nil {
		out.reason = m[1] // the HTML page of a refusal before routing
	}
	return out
}

func allowedOf(t *testing.T, resp *authv3.CheckResponse) *authv3.OkHttpResponse {
	t.Helper()
	ok := resp.GetOkResponse()
	if ok == nil {
		d := resp.GetDeniedResponse()
		t.Fatalf("denied %d, want allowed: %s", d.GetStatus().GetCode(), d.GetBody())
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("allowed with status %v, want OK", resp.GetStatus())
	}
	return ok
}

// decisionHeaders are the headers the policy decides for alice in acme.
func decisionHeaders(t *testing.T, h http.Header) map[string]string {
	t.Helper()
	if v := h.Values("X-Portero-Assertion"); len(v) != 1 || strings.Count(v[0], ".") != 2 || v[0] == "forged.jwt.value" {
		t.Fatalf("assertion %q, want exactly one JWT of Portero's", v)
	}
	out := map[string]string{}
	for name, vals := range h {
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-portero-") && n != "x-portero-assertion" {
			out[http.CanonicalHeaderKey(name)] = strings.Join(vals, "|")
		}
	}
	return out
}

// TestAllowedRequestsReachTheAppAsDecided: allowed checks, with and without
// hostile copies of Portero's, impersonation and override headers. The app
// receives the decision's headers and the assertion, one copy each, and
// none of the client's reserved headers; Envoy's own headers pass as Envoy
// set them.
func TestAllowedRequestsReachTheAppAsDecided(t *testing.T) {
	e := newEnvoy(t, "127.0.0.1/32", gatewaytest.Options{})
	bearer := "Bearer " + e.Member(t)
	want := map[string]string{"X-Portero-User": "alice", "X-Portero-Tenant": "acme", "X-Portero-Roles": "account_manager"}
	cases := map[string]struct {
		headers map[string]string
		raw     bool
		// removed must be in headers_to_remove; absent must not reach the
		// app.
		removed, absent []string
	}{
		"plain": {headers: map[string]string{}},
		"raw headers (encode_raw_headers)": {
			headers: map[string]string{"x-portero-user": "root"}, raw: true,
			absent: []string{"X-Forwarded-Host"},
		},
		"copies of reserved headers": {
			headers: map[string]string{
				"x-portero-user": "root", "x-portero-tenant": "globex", "x-portero-assertion": "forged.jwt.value",
				"x_portero_roles": "administrator", "x-portero-impersonator": "mallory",
			},
			removed: []string{"x_portero_roles", "x-portero-impersonator"},
			absent:  []string{"X_portero_roles", "X-Portero-Impersonator"},
		},
		"impersonation and other auth proxies' identity": {
			headers: map[string]string{
				"impersonate-user": "root", "impersonate-group": "system:masters", "x-remote-user": "bob",
				"remote-user": "bob", "x-auth-request-user": "bob", "x-forwarded-user": "bob",
			},
			removed: []string{"impersonate-user", "impersonate-group", "x-remote-user", "remote-user", "x-auth-request-user", "x-forwarded-user"},
			absent:  []string{"Impersonate-User", "Impersonate-Group", "X-Remote-User", "Remote-User", "X-Auth-Request-User", "X-Forwarded-User"},
		},
		"override headers Envoy does not set": {
			headers: map[string]string{
				"x-forwarded-host": "evil.example", "x-original-url": "/admin", "x-http-method-override": "DELETE",
				"x-real-ip": "10.0.0.1", "forwarded": "for=10.0.0.1", "x-envoy-original-path": "/admin",
			},
			removed: []string{"x-forwarded-host", "x-original-url", "x-http-method-override", "x-real-ip", "forwarded", "x-envoy-original-path"},
			absent:  []string{"X-Forwarded-Host", "X-Original-Url", "X-Http-Method-Override", "X-Real-Ip", "Forwarded", "X-Envoy-Original-Path"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.headers["authorization"] = bearer
			c := check{path: "/api/items?page=2", headers: tc.headers, raw: tc.raw}
			ok := allowedOf(t, e.send(t, c))
			for _, r := range tc.removed {
				if !slices.Contains(ok.GetHeadersToRemove(), r) {
					t.Errorf("headers_to_remove %v lacks %s", ok.GetHeadersToRemove(), r)
				}
			}
			app := appReceives(t, c, ok)
			if got := decisionHeaders(t, app); !equalMaps(got, want) {
				t.Errorf("the app receives %v, want %v", got, want)
			}
			for _, a := range tc.absent {
				if v, ok := app[a]; ok {
					t.Errorf("the app receives %s: %q", a, v)
				}
			}
			for name, v := range map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Request-Id": "req-1", "Authorization": bearer} {
				if got := app.Values(name); len(got) != 1 || got[0] != v {
					t.Errorf("the app receives %s %q, want Envoy's %q", name, got, v)
				}
			}
			if len(ok.GetResponseHeadersToAdd()) != 0 {
				t.Errorf("response_headers_to_add %v, want none for a bearer token", ok.GetResponseHeadersToAdd())
			}
		})
	}
	if n := e.Metric(t, "portero_forward_auth_checks_total", "via", "envoy", "result", "allowed"); n != float64(len(cases)) {
		t.Errorf("portero_forward_auth_checks_total{via=envoy,result=allowed} = %v, want %d", n, len(cases))
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRefusedChecks: what Portero refuses, and what the front proxy could
// not make canonical, is a denied answer with Portero's status, headers and
// reason.
func TestRefusedChecks(t *testing.T) {
	e := newEnvoy(t, "127.0.0.1/32", gatewaytest.Options{})
	bearer := "Bearer " + e.Member(t)
	member := func(more map[string]string) map[string]string {
		h := map[string]string{"authorization": bearer}
		for k, v := range more {
			h[k] = v
		}
		return h
	}
	cases := map[string]struct {
		c      check
		status int
		reason string
		header map[string]string // lower-case name: a value it contains
	}{
		"anonymous API request": {
			c: check{path: "/api/items"}, status: 401, reason: "auth.required",
			header: map[string]string{"www-authenticate": `Bearer realm="portero"`},
		},
		"invalid token": {
			c: check{path: "/api/items", headers: map[string]string{"authorization": "Bearer not.a.token"}}, status: 401,
			header: map[string]string{"www-authenticate": `error="invalid_token"`},
		},
		"another tenant": {
			c: check{path: "/api/items", host: "initech.apps.example.com", headers: member(nil)}, status: 403, reason: "deny.not_a_member",
		},
		"double slash":        {c: check{path: "/api/a//b", headers: member(nil)}, status: 400, reason: "request.non_canonical_path"},
		"dot segment":         {c: check{path: "/api/./x", headers: member(nil)}, status: 400, reason: "request.non_canonical_path"},
		"encoded dot-dot":     {c: check{path: "/api/%2e%2e/x", headers: member(nil)}, status: 400},
		"dot-dot":             {c: check{path: "/api/x/../y", headers: member(nil)}, status: 400, reason: "request.non_canonical_path"},
		"_method in query":    {c: check{path: "/api/items?_method=DELETE", headers: member(nil)}, status: 400, reason: "request.method_override"},
		"encoded _method":     {c: check{path: "/api/items?%5Fmethod=DELETE", headers: member(nil)}, status: 400, reason: "request.method_override"},
		"upper-case host":     {c: check{path: "/api/items", host: "ACME.apps.example.com", headers: member(nil)}, status: 400, reason: "request.non_canonical_host"},
		"path without slash":  {c: check{path: "api/items", headers: member(nil)}, status: 400, reason: "request.bad_path"},
		"asterisk":            {c: check{method: "OPTIONS", path: "*", headers: member(nil)}, status: 400, reason: "request.bad_path"},
		"fragment in path":    {c: check{path: "/api/items#x", headers: member(nil)}, status: 400, reason: "request.bad_path"},
		"Portero's own paths": {c: check{path: "/.portero/login", headers: member(nil)}, status: 403, reason: "forward_auth.portero_path"},
		"JWKS":                {c: check{path: "/.well-known/portero/jwks.json"}, status: 403, reason: "forward_auth.portero_path"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := deniedOf(t, e.send(t, tc.c))
			if d.status != tc.status || tc.reason != "" && d.reason != tc.reason {
				t.Fatalf("denied %d %q, want %d %q: %s", d.status, d.reason, tc.status, tc.reason, d.body)
			}
			for name, v := range tc.header {
				if !strings.Contains(d.header.Get(name), v) {
					t.Errorf("%s %q, want it to contain %q", name, d.header.Get(name), v)
				}
			}
			if d.header.Get("cache-control") != "no-store" {
				t.Errorf("cache-control %q, want no-store", d.header.Get("cache-control"))
			}
		})
	}
}

// TestBodies: on a route whose body the policy reads (the api route, JSON,
// at most 64 bytes), an edit is decided on the body the check carries, and
// refused when the check does not carry all of it.
func TestBodies(t *testing.T) {
	e := newEnvoy(t, "127.0.0.1/32", gatewaytest.Options{})
	bearer := "Bearer " + e.Member(t)
	post := func(body string, headers map[string]string) check {
		h := map[string]string{"authorization": bearer, "content-type": "application/json"}
		for k, v := range headers {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return check{method: "POST", path: "/api/items", headers: h, body: body}
	}
	small := `{"name":"x"}`
	large := `{"name":"` + strings.Repeat("x", 80) + `"}`
	length := func(s string) string { return strconv.Itoa(len(s)) }
	cases := map[string]struct {
		c      check
		status int // 200: allowed
		reason string
	}{
		"with body": {c: post(small, map[string]string{"content-length": length(small)}), status: 200},
		"with body, packed as bytes": {c: func() check {
			c := post(small, map[string]string{"content-length": length(small)})
			c.raw = true
			return c
		}(), status: 200},
		"with body, chunked":           {c: post(small, map[string]string{"transfer-encoding": "chunked"}), status: 200},
		"decided on the body: too big": {c: post(large, map[string]string{"content-length": length(large)}), status: 413, reason: "request.body_too_large"},
		"decided on the body: not JSON": {
			c: post(`{"name":`, map[string]string{"content-length": "8"}), status: 400,
		},
		"without body, content-length 10": {c: post("", map[string]string{"content-length": "10"}), status: 403, reason: "forward_auth.body_required"},
		"without body, chunked":           {c: post("", map[string]string{"transfer-encoding": "chunked"}), status: 403, reason: "forward_auth.body_required"},
		"cut at max_request_bytes": {
			c: post(small[:5], map[string]string{"content-length": length(small), "x-envoy-auth-partial-body": "true"}), status: 403, reason: "forward_auth.body_required",
		},
		"shorter than content-length":  {c: post(small[:5], map[string]string{"content-length": length(small)}), status: 403, reason: "forward_auth.body_required"},
		"two content-lengths":          {c: post(small, map[string]string{"content-length": length(small) + "," + length(small)}), status: 403, reason: "forward_auth.body_required"},
		"no body, content-length 0":    {c: post("", map[string]string{"content-length": "0"}), status: 200},
		"no body, no length, HTTP/1.1": {c: post("", nil), status: 200},
		"no body, no length, HTTP/2": {
			c: func() check { c := post("", nil); c.protocol = "HTTP/2"; return c }(), status: 403, reason: "forward_auth.body_required",
		},
		"GET without its body": {c: check{path: "/api/items", headers: map[string]string{"authorization": bearer, "content-length": "10"}}, status: 200},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp := e.send(t, tc.c)
			if tc.status == 200 {
				app := appReceives(t, tc.c, allowedOf(t, resp))
				decisionHeaders(t, app)
				return
			}
			d := deniedOf(t, resp)
			if d.status != tc.status || tc.reason != "" && d.reason != tc.reason {
				t.Fatalf("denied %d %q, want %d %q: %s", d.status, d.reason, tc.status, tc.reason, d.body)
			}
		})
	}
}

// TestUntrustedPeer: a check from outside forward_auth.trusted_proxies is
// refused before anything in it is looked at, as a denied answer (a gRPC
// error would leave the request to failure_mode_allow), and logged.
func TestUntrustedPeer(t *testing.T) {
	e := newEnvoy(t, "10.0.0.0/8", gatewaytest.Options{})
	for name, c := range map[string]check{
		"member":    {path: "/api/items", headers: map[string]string{"authorization": "Bearer " + e.Member(t)}},
		"anonymous": {path: "/api/items"},
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			d := deniedOf(t, e.send(t, c))
			if d.status != 403 || d.reason != "forward_auth.untrusted_source" {
				t.Fatalf("denied %d %q, want 403 forward_auth.untrusted_source", d.status, d.reason)
			}
		})
	}
	if !strings.Contains(e.Logs.String(), "untrusted") {
		t.Errorf("no warning logged: %s", e.Logs)
	}
	if n := e.Metric(t, "portero_forward_auth_checks_total", "via", "envoy", "result", "untrusted"); n != 3 {
		t.Errorf("portero_forward_auth_checks_total{via=envoy,result=untrusted} = %v, want 3", n)
	}
}

// TestIncompleteCheck: a check without the HTTP request's attributes.
func TestIncompleteCheck(t *testing.T) {
	e := newEnvoy(t, "127.0.0.1/32", gatewaytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, req := range map[string]*authv3.CheckRequest{
		"nothing":       {},
		"no http":       {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		"no method":     check{path: "/api/items"}.request(),
		"invalid token": check{method: "GE T", path: "/api/items"}.request(),
	} {
		if name == "no method" {
			req.Attributes.Request.Http.Method = ""
		}
		resp, err := e.client.Check(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := deniedOf(t, resp); d.status != 400 {
			t.Errorf("%s: denied %d %q, want 400", name, d.status, d.reason)
		}
	}
}

// TestBrowserSignIn: a browser without a session is sent to sign in (302
// to the login URL, which Envoy passes on as is); with a session the app
// receives its own cookies and none of Portero's.
func TestBrowserSignIn(t *testing.T) {
	e := newEnvoy(t, "127.0.0.1/32", gatewaytest.Options{Login: true})
	page := check{path: "/t/acme/page", host: "localhost", headers: map[string]string{"accept": "text/html"}}
	d := deniedOf(t, e.send(t, page))
	if d.status != http.StatusFound || !strings.HasPrefix(d.header.Get("location"), "http://localhost/.portero/login?rd=") {
		t.Fatalf("anonymous page: %d %q, want 302 to sign-in", d.status, d.header.Get("location"))
	}

	b := gatewaytest.NewBrowser(t, e.Harness)
	b.SignIn("http://localhost/t/acme/", gatewaytest.AliceClaims())
	var own []string
	for _, c := range b.Cookies {
		own = append(own, c.Name+"="+c.Value)
	}
	if len(own) == 0 {
		t.Fatal("no session cookie after sign-in")
	}
	cases := map[string]struct {
		cookie string
		want   string // the app's Cookie; "" none
	}{
		"only Portero's cookies": {cookie: strings.Join(own, "; ")},
		"with the app's":         {cookie: "theme=dark; " + strings.Join(own, "; ") + "; lang=en", want: "theme=dark; lang=en"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := page
			c.headers = map[string]string{"accept": "text/html", "cookie": tc.cookie}
			ok := allowedOf(t, e.send(t, c))
			app := appReceives(t, c, ok)
			if got := app.Get("Cookie"); got != tc.want {
				t.Errorf("the app's Cookie %q, want %q", got, tc.want)
			}
			if app.Get("X-Portero-User") != "alice" {
				t.Errorf("X-Portero-User %q, want alice", app.Get("X-Portero-User"))
			}
			for _, o := range ok.GetResponseHeadersToAdd() {
				if o.GetHeader().GetKey() != "set-cookie" {
					t.Errorf("response header %s for the client, want only set-cookie", o.GetHeader().GetKey())
				}
			}
		})
	}
}

// TestShutdown: Shutdown waits for nothing when idle, and afterwards a
// check fails to connect (Envoy's failure_mode_allow: false then refuses).
func TestShutdown(t *testing.T) {
	h := gatewaytest.NewWith(t, nil, gatewaytest.Options{Extra: envoyConfig})
	srv := extauthz.New(h.Gateway, config.ForwardAuth{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Check(ctx, check{path: "/api/items"}.request()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := client.Check(ctx, check{path: "/api/items"}.request()); status.Code(err) != codes.Unavailable {
		t.Fatalf("after shutdown: %v, want Unavailable", err)
	}
}
