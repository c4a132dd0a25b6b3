package policy

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Keys are values: equal documents have equal keys however they were
// built (map order included); any difference the policy could see gives
// another key.
func TestValueKeys(t *testing.T) {
	t.Parallel()
	base := func() Identity {
		return Identity{Subject: "u1", Email: "u1@example.com", Org: "o", Groups: []string{"g1", "g2"},
			Roles:       []string{"acme:administrator", "globex:account_manager"},
			Memberships: map[string][]string{"acme": {"administrator"}, "globex": {"account_manager"}, "initech": {}},
			Claims:      map[string]any{"sub": "u1", "scope": "openid", "n": 1.0, "nested": map[string]any{"a": []any{"x", true}, "b": nil}},
			Auth:        "session", Session: "ref1"}
	}
	want := NewIdentity(base()).Key()
	if want == (ValueKey{}) {
		t.Fatal("zero key")
	}
	for range 50 { // maps iterate in another order each time
		if got := NewIdentity(base()).Key(); got != want {
			t.Fatal("the same identity built again has another key")
		}
	}
	changes := map[string]func(*Identity){
		"subject":            func(id *Identity) { id.Subject = "u2" },
		"email":              func(id *Identity) { id.Email = "" },
		"org":                func(id *Identity) { id.Org = "p" },
		"group order":        func(id *Identity) { id.Groups = []string{"g2", "g1"} },
		"groups":             func(id *Identity) { id.Groups = nil },
		"roles":              func(id *Identity) { id.Roles = id.Roles[1:] },
		"membership roles":   func(id *Identity) { id.Memberships["initech"] = []string{"x"} },
		"memberships":        func(id *Identity) { delete(id.Memberships, "initech") },
		"claim value":        func(id *Identity) { id.Claims["scope"] = "openid email" },
		"claim type":         func(id *Identity) { id.Claims["n"] = "1" },
		"nested claim":       func(id *Identity) { id.Claims["nested"] = map[string]any{"a": []any{"x", false}, "b": nil} },
		"claim added":        func(id *Identity) { id.Claims["extra"] = "" },
		"auth":               func(id *Identity) { id.Auth = "bearer" },
		"session":            func(id *Identity) { id.Session = "ref2" },
		"no session":         func(id *Identity) { id.Session = "" },
		"value moved fields": func(id *Identity) { id.Subject, id.Email = id.Email, id.Subject },
	}
	seen := map[ValueKey]string{want: "base"}
	for name, change := range changes {
		id := base()
		change(&id)
		k := NewIdentity(id).Key()
		if other, dup := seen[k]; dup {
			t.Errorf("%s: same key as %s", name, other)
		}
		seen[k] = name
	}

	doc := func() map[string]any {
		return map[string]any{"tenant": map[string]any{"id": "acme", "status": "active"},
			"membership": map[string]any{"role": "administrator", "features": map[string]any{"reviews": "read", "ads": "edit"}}}
	}
	a1, _ := NewAccess(doc())
	a2, _ := NewAccess(doc())
	if a1.Key() != a2.Key() || a1.Key() == (ValueKey{}) {
		t.Fatal("equal access documents have different keys")
	}
	d := doc()
	d["membership"].(map[string]any)["features"].(map[string]any)["ads"] = "read"
	if a3, _ := NewAccess(d); a3.Key() == a1.Key() {
		t.Fatal("different access documents share a key")
	}
	empty, _ := NewAccess(map[string]any{})
	if empty.Key() == a1.Key() || empty.Key() == (ValueKey{}) {
		t.Fatal("empty access document's key")
	}
	// Documents that would print or concatenate alike in a careless
	// encoding are apart.
	alike := []map[string]any{
		{"a": "bc"}, {"ab": "c"}, {"a": []any{"b", "c"}}, {"a": []any{"bc"}}, {"a": []any{"b"}, "c": []any{}},
		{"x": "1"}, {"x": 1}, {"x": true}, {"x": "true"}, {"x": nil}, {"x": "null"},
		{"x": map[string]any{}}, {"x": []any{}}, {"x": ""}, {"x": map[string]any{"": ""}},
		{"x": "a\x00b"}, {"x": "a", "\x00b": ""},
	}
	keys := map[ValueKey]int{}
	for i, doc := range alike {
		a, err := NewAccess(doc)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := keys[a.Key()]; dup {
			t.Errorf("%v and %v share a key", alike[j], doc)
		}
		keys[a.Key()] = i
	}
}

// BenchmarkNewIdentity is the cost of an identity's policy form and key,
// paid once per verified token or opened session.
func BenchmarkNewIdentity(b *testing.B) {
	claims := map[string]any{"sub": "alice", "email": "alice@example.com", "iss": "https://idp.example.com", "aud": "portero",
		"exp": 1.7e9, "iat": 1.7e9, "roles": []any{"acme:administrator"}}
	b.ReportAllocs()
	for b.Loop() {
		NewIdentity(Identity{Subject: "alice", Email: "alice@example.com", Roles: []string{"acme:administrator"},
			Memberships: map[string][]string{"acme": {"administrator"}}, Claims: claims, Auth: "session", Session: "0123456789abcdef0123456789abcdef"})
	}
}

// input.tenant is memoised per tenant value: each input gets its own
// tenant's object, whatever was built before, and an id no store could
// hold is not kept.
func TestTenantTerms(t *testing.T) {
	long := strings.Repeat("x", maxTenantIDMemo+1)
	for _, tn := range []Tenant{{ID: "acme", Status: "active"}, {ID: "acme", Status: "suspended"}, {ID: "globex", Status: "active"},
		{ID: "acme", Status: "active"}, {ID: long, Status: "active"}} {
		in := &Input{Tenant: &tn}
		want := ast.ObjectTerm(item("id", ast.StringTerm(tn.ID)), item("status", ast.StringTerm(tn.Status)))
		if got := in.Value().(ast.Object).Get(ast.StringTerm("tenant")); got == nil || !got.Equal(want) {
			t.Errorf("input for %+v: %v, want %v", tn, got, want)
		}
	}
	if _, ok := tenantTerms.Get(Tenant{ID: long, Status: "active"}); ok {
		t.Error("an id longer than any store's was memoised")
	}
}
