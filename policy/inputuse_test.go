package policy

import (
	"context"
	"testing"
	"testing/fstest"
)

// The input is pruned to what the policy reads; the decisions must be the
// same as with the whole input.
func TestInputIsPrunedToWhatThePolicyReads(t *testing.T) {
	cases := []struct {
		name, rego string
		allow      bool
	}{
		{"header read by constant path", `package portero.authz
decision := {"allow": input.request.headers.accept == "application/json"}`, true},
		{"segments", `package portero.authz
decision := {"allow": input.request.segments[0] == "api"}`, true},
		{"whole request", `package portero.authz
decision := {"allow": r.headers.accept == "application/json"} if r := input.request`, true},
		{"dynamic key", `package portero.authz
k := "request"
decision := {"allow": input[k].method == "GET"}`, true},
		{"whole input through a builtin", `package portero.authz
decision := {"allow": object.get(input, ["route", "name"], "") == "api"}`, true},
		{"now", `package portero.authz
decision := {"allow": input.now == "2026-01-01T00:00:00Z"}`, true},
		{"unused parts absent", `package portero.authz
decision := {"allow": true} if not input.request.body
else := {"allow": false}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(tc.rego)}}})
			ev := e.Decide(context.Background(), memberInput())
			if ev.Err != nil || ev.Decision.Allow != tc.allow {
				t.Fatalf("got %+v", ev)
			}
		})
	}
	e, _ := newTestEngine(t, embedded())
	u := e.Current().use
	if u.all || u.needsRequest("headers") || u.needsRequest("query") || !u.needs("identity") || !u.needs("access") {
		t.Errorf("default policy use: %+v", u)
	}
}
