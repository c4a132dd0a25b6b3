package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestDecisionCache(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestEngine(t, embedded())
	in := memberInput()
	first := e.Decide(ctx, in)
	second := e.Decide(ctx, in)
	if first.Cached || !second.Cached || second.Decision.Reason != first.Decision.Reason || !second.Decision.Allow {
		t.Fatalf("first %+v second %+v", first, second)
	}
	// Another tenant, another identity, another route: evaluated afresh.
	other := memberInput()
	other.Tenant = &Tenant{ID: "initech", Status: "active"}
	if ev := e.Decide(ctx, other); ev.Cached || ev.Decision.Allow {
		t.Fatalf("other tenant: %+v", ev)
	}
	// Keys are values: the same identity built again (another token with
	// the same claims) is the same key; any field the policy can read
	// changed is another.
	if ev := e.Decide(ctx, memberInput()); !ev.Cached {
		t.Fatal("an equal identity built again was not answered from the cache")
	}
	for name, change := range map[string]func(*Identity){
		"subject":     func(id *Identity) { id.Subject = "u2" },
		"email":       func(id *Identity) { id.Email = "other@example.com" },
		"org":         func(id *Identity) { id.Org = "o" },
		"groups":      func(id *Identity) { id.Groups = []string{"g"} },
		"roles":       func(id *Identity) { id.Roles = id.Roles[:1] },
		"memberships": func(id *Identity) { id.Memberships = map[string][]string{"acme": {"account_manager"}} },
		"claims":      func(id *Identity) { id.Claims = map[string]any{"sub": "u1", "scope": "openid profile"} },
		"auth":        func(id *Identity) { id.Auth = "session" },
		"session":     func(id *Identity) { id.Session = "another-sign-in" },
	} {
		other := memberInput()
		fields := *other.Identity
		change(&fields)
		other.Identity = NewIdentity(fields)
		if ev := e.Decide(ctx, other); ev.Cached {
			t.Fatalf("an identity with another %s answered from the cache", name)
		}
	}
	// An Identity or Access not built by NewIdentity or NewAccess has no
	// key: never cached, nor memoised.
	bare := memberInput()
	bare.Identity = &Identity{Subject: "u1"}
	if _, ok := e.Current().cache.keyFor(bare); ok {
		t.Fatal("an identity without a key has a decision key")
	}
	if _, ok := subjectSpec.key(bare, inputUse{}, &priorStages{}); ok {
		t.Fatal("an identity without a key has a subject key")
	}
	bare = memberInput()
	bare.Access = &Access{}
	if _, ok := e.Current().cache.keyFor(bare); ok {
		t.Fatal("access without a key has a decision key")
	}
	if _, ok := subjectSpec.key(bare, inputUse{}, &priorStages{}); ok {
		t.Fatal("access without a key has a subject key")
	}
	other = memberInput()
	other.Identity = in.Identity
	other.Route.Name = "admin"
	if ev := e.Decide(ctx, other); ev.Cached {
		t.Fatal("another route answered from the cache")
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := e.Decide(ctx, in); ev.Cached {
		t.Fatal("a reloaded policy answered from the old cache")
	}
}

func TestDecisionCacheOnlyWhenSafe(t *testing.T) {
	cases := map[string]string{
		"reads the headers": `package portero.authz
decision := {"allow": input.request.headers.accept == "x"}`,
		"reads the whole request": `package portero.authz
decision := {"allow": count(input.request) > 0}`,
		"reads the time": `package portero.authz
decision := {"allow": input.now != ""}`,
		"non-deterministic builtin": `package portero.authz
decision := {"allow": time.now_ns() > 0, "reason": input.identity.sub}`,
		"whole input": `package portero.authz
decision := {"allow": count(input) > 0}`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			e, _ := newTestEngine(t, Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(src)}}})
			if e.Current().cache != nil {
				t.Fatal("policy would be cached")
			}
		})
	}
	e, _ := newTestEngine(t, Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": input.identity.sub == "u1"}`)}}})
	if e.Current().cache == nil {
		t.Fatal("identity-only policy not cached")
	}
}

// A policy that reads request fields is cached per value of those fields,
// and never for a request with a body it reads.
func TestDecisionCacheKeysOnTheRequestFieldsRead(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestEngine(t, Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": input.request.method == "GET", "reason": concat("/", input.request.app_segments)} if not input.request.body
else := {"allow": false, "reason": "body"}`)}}})
	in := memberInput()
	in.Request.AppSegments = []string{"a", "b"}
	if ev := e.Decide(ctx, in); ev.Cached || ev.Decision.Reason != "a/b" {
		t.Fatalf("%+v", ev)
	}
	if ev := e.Decide(ctx, in); !ev.Cached {
		t.Fatal("same request not cached")
	}
	in.Request.AppSegments = []string{"a", "c"}
	if ev := e.Decide(ctx, in); ev.Cached || ev.Decision.Reason != "a/c" {
		t.Fatalf("other path answered from the cache: %+v", ev)
	}
	in.Request.Method = "POST"
	if ev := e.Decide(ctx, in); ev.Cached || ev.Decision.Allow {
		t.Fatalf("other method answered from the cache: %+v", ev)
	}
	body, err := NewBody(map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	in.Request.Body = body
	for range 2 {
		if ev := e.Decide(ctx, in); ev.Cached || ev.Decision.Reason != "body" {
			t.Fatalf("request with a body: %+v", ev)
		}
	}
}

// The default policy reads a body's shape, not the body: an edit is
// answered from the cache when an earlier one had the same shape (kind,
// top-level keys) and query parameter names, and from nothing else. Each
// case is decided twice; the second must be cached with the same answer,
// and no case may be answered with another case's decision.
func TestDecisionCacheKeysEditsOnTheBodyShape(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestEngine(t, embedded())
	if e.Current().cache == nil {
		t.Fatal("the default policy is not cached")
	}
	leo := member("location_manager", map[string]any{"locations": []any{"l1", "l2"},
		"features": map[string]any{"profile_listings": "edit"},
		"fields":   map[string]any{"profile_listings": []any{"phone", "hours"}}})
	cases := []struct {
		name, method, body string
		query              []string
		want               string // the reason; "" allows
		// sameShape: an earlier case had its shape, so even the first
		// round is answered from the cache.
		sameShape bool
	}{
		{"allowed fields", "PATCH", `{"phone": "1", "hours": "9-5"}`, []string{}, "", false},
		{"the same fields, other values", "PATCH", `{"phone": "2", "hours": "8-4"}`, []string{}, "", true},
		{"a field not allowed", "PATCH", `{"phone": "1", "name": "x"}`, []string{}, "field.not_allowed", false},
		{"one key holding two names", "PATCH", `{"hours\u0000phone": "1"}`, []string{}, "field.not_allowed", false},
		{"a name with a comma", "PATCH", `{"hours,phone": "1"}`, []string{}, "field.not_allowed", false},
		{"an array of allowed names", "PATCH", `["phone", "hours"]`, []string{}, "field.not_allowed", false},
		{"a string", "PATCH", `"phone"`, []string{}, "field.not_allowed", false},
		{"null", "PATCH", `null`, []string{}, "field.not_allowed", false},
		{"empty", "PATCH", `{}`, []string{}, "", false},
		{"a query field not allowed", "PATCH", `{"phone": "1"}`, []string{"name"}, "field.not_allowed", false},
		{"a query field allowed", "PATCH", `{"phone": "1"}`, []string{"hours"}, "", false},
		{"query names that join into another", "PATCH", `{}`, []string{"hours", "phone"}, "", false},
		{"one query name holding two", "PATCH", `{}`, []string{"hours\x00phone"}, "field.not_allowed", false},
		{"not inspected", "PATCH", "", []string{}, "field.body_unchecked", false},
		{"replace", "PUT", `{"phone": "1"}`, []string{}, "field.method_not_allowed", false},
	}
	for _, round := range []string{"first", "again"} {
		for _, c := range cases {
			in := storeInput("leo", c.method, []string{"locations", "l1", "profile"}, acmeAccess(leo), c.body)
			in.Request.QueryKeys = c.query
			ev := e.Decide(ctx, in)
			reason := ev.Decision.Reason
			if ev.Decision.Allow {
				reason = ""
			}
			if reason != c.want || ev.Cached != (round == "again" || c.sameShape) {
				t.Errorf("%s, %s: %+v (cached %v), want reason %q", c.name, round, ev.Decision, ev.Cached, c.want)
			}
		}
	}
}

// Body shapes are keys by value: two bodies share one only when a policy
// reading the shape cannot tell them apart.
func TestBodyShape(t *testing.T) {
	shape := func(doc string) *Body {
		t.Helper()
		return bodyOf(ast.MustParseTerm(doc).Value)
	}
	b := shape(`{"b": 1, "a": {"c": 2}}`)
	if b.kind != "object" || !slices.Equal(b.keys, []string{"a", "b"}) {
		t.Fatalf("%+v", b)
	}
	distinct := []string{`{}`, `[]`, `{"a": 1}`, `{"a,1:b": 1}`, `{"a": 1, "b": 2}`, `"a"`, `1`, `true`, `null`, `{"1:a": 1}`}
	seen := map[string]string{}
	for _, d := range distinct {
		s := shape(d).shape
		if other, ok := seen[s]; ok {
			t.Errorf("%s and %s have one shape %q", d, other, s)
		}
		seen[s] = d
	}
	if shape(`{"a": 1, "b": [2]}`).shape != shape(`{"b": "x", "a": null}`).shape || shape(`["a"]`).shape != shape(`[]`).shape {
		t.Error("the same keys, or kind, with other values have another shape")
	}
}

// A request whose key would be very long (thousands of body keys, a huge
// path) is evaluated, not cached: the cache is bounded by entries, and the
// client chooses these bytes.
func TestDecisionCacheSkipsHugeKeys(t *testing.T) {
	e, _ := newTestEngine(t, embedded())
	in := memberInput()
	keys := make(map[string]any, 300)
	for i := range 300 {
		keys[fmt.Sprintf("field_number_%04d", i)] = 1
	}
	body, err := NewBody(keys)
	if err != nil {
		t.Fatal(err)
	}
	in.Request.Body = body
	if _, ok := e.Current().cache.keyFor(in); ok {
		t.Fatal("a 300-key body has a decision key")
	}
	in.Request.Body = nil
	if _, ok := e.Current().cache.keyFor(in); !ok {
		t.Fatal("an ordinary request has no decision key")
	}
}
