package extauthz_test

import (
	"net/http"
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/portero-gateway/portero/internal/gatewaytest"
)

// A hostile-case sweep of the ext_authz endpoint (issue 19): header_map
// spellings and repeats, request targets, and the body flags a client can
// send itself. Every allowed case checks what the app would receive.
func TestSweepEnvoyChecks(t *testing.T) {
	e := newEnvoy(t, "127.0.0.1/32", gatewaytest.Options{})
	bearer := "Bearer " + e.Member(t)
	small := `{"name":"x"}`
	// raw is a check with header_map (encode_raw_headers), plus the entries
	// in extra appended in order, as Envoy sends a repeated header.
	type entry struct{ key, value string }
	cases := []struct {
		name   string
		c      check
		extra  []entry
		status int // 200: allowed
		reason string
	}{
		// The client's copy of the partial-body flag comes first in
		// header_map, Envoy's own (the body was cut at max_request_bytes)
		// after it: the policy must not decide on the cut body.
		{"client's partial-body false before Envoy's true", check{method: "POST", path: "/api/items", raw: true, body: small,
			headers: map[string]string{"authorization": bearer, "content-type": "application/json", "transfer-encoding": "chunked"}},
			[]entry{{"x-envoy-auth-partial-body", "false"}, {"x-envoy-auth-partial-body", "true"}}, 403, "forward_auth.body_required"},
		{"Envoy's partial-body false", check{method: "POST", path: "/api/items", raw: true, body: small,
			headers: map[string]string{"authorization": bearer, "content-type": "application/json", "transfer-encoding": "chunked"}},
			[]entry{{"x-envoy-auth-partial-body", "false"}}, 200, ""},
		{"partial-body TRUE with spaces", check{method: "POST", path: "/api/items", raw: true, body: small,
			headers: map[string]string{"authorization": bearer, "content-type": "application/json", "content-length": strconv.Itoa(len(small))}},
			[]entry{{"x-envoy-auth-partial-body", " TRUE "}}, 403, "forward_auth.body_required"},
		// Header names as a client spells them: Envoy lower-cases HTTP/1
		// names, header_map may still carry others.
		{"upper-case reserved name", check{path: "/api/items", raw: true, headers: map[string]string{"authorization": bearer}},
			[]entry{{"X-Portero-User", "root"}}, 200, ""},
		{"reserved name twice", check{path: "/api/items", raw: true, headers: map[string]string{"authorization": bearer}},
			[]entry{{"x-portero-user", "root"}, {"x-portero-user", "admin"}}, 200, ""},
		{"underscore spelling", check{path: "/api/items", raw: true, headers: map[string]string{"authorization": bearer}},
			[]entry{{"x_portero_user", "root"}}, 200, ""},
		{"override header", check{method: "POST", path: "/api/items", raw: true, body: small,
			headers: map[string]string{"authorization": bearer, "content-type": "application/json", "content-length": strconv.Itoa(len(small))}},
			[]entry{{"x-http-method-override", "DELETE"}}, 200, ""},
		// Request targets.
		{"path without a leading slash", check{path: "api/items", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.bad_path"},
		{"asterisk", check{path: "*", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.bad_path"},
		{"absolute form", check{path: "https://acme.apps.example.com/api/items", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.bad_path"},
		{"double slash", check{path: "/api//items", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.non_canonical_path"},
		{"encoded dot segment", check{path: "/api/%2e%2e/items", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.bad_path"},
		{"_method in the query", check{path: "/api/items?_method=DELETE", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.method_override"},
		{"upper-case authority", check{path: "/api/items", host: "ACME.apps.example.com", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.non_canonical_host"},
		{"authority with port", check{path: "/api/items", host: "acme.apps.example.com:8443", headers: map[string]string{"authorization": bearer}}, nil, 200, ""},
		{"other tenant's authority", check{path: "/api/items", host: "initech.apps.example.com", headers: map[string]string{"authorization": bearer}}, nil, 403, ""},
		{"h2c upgrade", check{path: "/api/items", headers: map[string]string{"authorization": bearer, "upgrade": "h2c"}}, nil, 400, "request.bad_upgrade"},
		{"lower-case method", check{method: "delete", path: "/api/items", headers: map[string]string{"authorization": bearer}}, nil, 400, "request.bad_method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.c.request()
			hr := req.GetAttributes().GetRequest().GetHttp()
			for _, x := range tc.extra {
				hr.HeaderMap.Headers = append(hr.HeaderMap.Headers, &corev3.HeaderValue{Key: x.key, RawValue: []byte(x.value)})
			}
			resp, err := e.client.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status != 200 {
				d := deniedOf(t, resp)
				if d.status != tc.status || tc.reason != "" && d.reason != tc.reason {
					t.Fatalf("denied %d %q, want %d %q: %s", d.status, d.reason, tc.status, tc.reason, d.body)
				}
				return
			}
			ok := allowedOf(t, resp)
			app := http.Header{}
			for _, hv := range hr.GetHeaderMap().GetHeaders() {
				app.Add(hv.GetKey(), string(hv.GetRawValue()))
			}
			for _, name := range ok.GetHeadersToRemove() {
				app.Del(name)
				delete(app, name)
			}
			for _, o := range ok.GetHeaders() {
				app.Set(o.GetHeader().GetKey(), o.GetHeader().GetValue())
			}
			if got := decisionHeaders(t, app); got["X-Portero-User"] != "alice" {
				t.Fatalf("the app would receive %v", app)
			}
			for name := range app {
				switch http.CanonicalHeaderKey(name) {
				case "X-Http-Method-Override", "X_portero_user":
					t.Fatalf("the app would receive %s: %v", name, app)
				}
			}
		})
	}
}
