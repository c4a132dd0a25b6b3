package policy

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// richInput fills every part of the input, so a round trip through the
// decision log's JSON leaves nothing out.
func richInput(t testing.TB) *Input {
	t.Helper()
	acc, err := NewAccess(map[string]any{
		"tenant":     map[string]any{"id": "acme", "name": "Acme", "status": "active", "owner": "olivia", "master_access": true},
		"membership": map[string]any{"role": "location_manager", "businesses": []any{}, "locations": []any{"l1"}, "features": map[string]any{"profile_listings": "edit"}, "fields": map[string]any{"profile_listings": []any{"phone"}}, "rights": []any{}, "profile": "", "status": "active"},
		"master":     map[string]any{"id": "m1", "admin": "sam", "tenant": "acme", "reason": "ticket 7", "ticket": "", "mode": "full", "session": "s-hash", "expires": "2026-01-01T01:00:00Z", "expired": false},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, err := NewBody(map[string]any{"phone": "+1 555 0100", "hours": map[string]any{"mon": []any{json.Number("9"), json.Number("17.5")}}, "ok": true, "none": nil})
	if err != nil {
		t.Fatal(err)
	}
	return &Input{
		Request: Request{Method: "PATCH", Host: "acme.apps.example.com", Path: "/t/acme/locations/l1/profile",
			Segments: []string{"t", "acme", "locations", "l1", "profile"}, AppSegments: []string{"locations", "l1", "profile"},
			Query: map[string][]string{"a": {"1", "2"}}, QueryKeys: []string{"a"}, Headers: map[string]string{"content-type": "application/json"},
			Body: body, Upgrade: true},
		Route:  Route{Name: "app", API: true},
		Tenant: &Tenant{ID: "acme", Status: "active"},
		Identity: NewIdentity(Identity{Subject: "leo", Email: "leo@example.com", Org: "acme", Groups: []string{"g"}, Roles: []string{"acme:location_manager"},
			Memberships: map[string][]string{"acme": {"location_manager"}}, Auth: "session", Session: "s-hash",
			Claims: map[string]any{"sub": "leo", "exp": 1767229200, "nested": map[string]any{"x": []any{"y", 2.5}}}}),
		Access: acc,
		Management: &Management{Action: "members.write", Tenant: "acme", Partner: "p", UserPartner: "q",
			Target: &MemberChange{User: "avery", Current: &MemberGrant{Role: "account_manager", Features: map[string]string{"reviews": "read"}, Fields: map[string][]string{"profile_listings": {"hours"}}},
				New: &MemberGrant{Role: "location_manager", Locations: []string{"l1"}}},
			Grant: &DelegationGrant{Partner: "p", Scope: "limited", Products: []string{"ads"}, Wallet: true}},
		Gateway: NewGateway("kubernetes"),
		Now:     time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC),
	}
}

func recorded(t testing.TB, in *Input) json.RawMessage {
	t.Helper()
	raw := in.AppendJSON(nil, nil)
	if !json.Valid(raw) {
		t.Fatalf("not JSON: %s", raw)
	}
	return raw
}

// AppendJSON writes what encoding/json writes for the input as OPA gives
// it to Go (without HTML escaping), whatever the strings hold.
func TestAppendJSONIsTheInputAsJSON(t *testing.T) {
	in := richInput(t)
	body, err := NewBody(map[string]any{
		"plain": "abc", "quote": `a"b\c`, "ctl": "a\x00b\x1f\n\r\t", "html": "<a href='x'>&</a>", "utf8": "ünïcødé 日本 😀",
		"bad": "a\xffb\xc3", "sep": "a\u2028b\u2029c", "num": json.Number("-1.5e3"), "t": true, "f": false, "null": nil,
		"list": []any{"x", json.Number("2"), []any{}, map[string]any{}}, "obj": map[string]any{"z": "1", "a": "2", "é": "3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Request.Body = body
	x, err := ast.JSON(in.Value())
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		t.Fatal(err)
	}
	if got := string(in.AppendJSON(nil, nil)) + "\n"; got != want.String() {
		t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want.String())
	}
}

// pathMask hides the paths it lists.
type pathMask map[string]bool

func (m pathMask) Masked(path []string) bool { return m[strings.Join(path, ".")] }
func (m pathMask) Pseudonym(kind byte, text string) string {
	return "hidden:" + string(kind) + ":" + strings.ToUpper(text)
}

// A masked value is written as its pseudonym, everything in it too; the
// shape of objects and lists stays.
func TestAppendJSONMasks(t *testing.T) {
	raw := richInput(t).AppendJSON(nil, pathMask{"identity.session": true, "request.body.hours": true, "request.segments.1": true})
	var doc struct {
		Identity struct{ Session, Sub string }
		Request  struct {
			Body     map[string]any
			Segments []string
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Identity.Session != "hidden:s:S-HASH" || doc.Identity.Sub != "leo" {
		t.Errorf("identity %+v", doc.Identity)
	}
	if got := doc.Request.Body["hours"]; !reflect.DeepEqual(got, map[string]any{"mon": []any{"hidden:n:9", "hidden:n:17.5"}}) || doc.Request.Body["phone"] != "+1 555 0100" {
		t.Errorf("body %v", doc.Request.Body)
	}
	if !slices.Equal(doc.Request.Segments, []string{"t", "hidden:s:ACME", "locations", "l1", "profile"}) {
		t.Errorf("segments %q", doc.Request.Segments)
	}
}

// The document the decision log records comes back as the same input, so
// a replay goes through Decide (memos, decision cache) and sees exactly
// what the live decision saw.
func TestRecordedInputComesBackExactly(t *testing.T) {
	for name, in := range map[string]*Input{"rich": richInput(t), "member": memberInput(), "anonymous": {Request: Request{Method: "GET", Path: "/"}, Now: time.Unix(0, 0)}} {
		t.Run(name, func(t *testing.T) {
			var doc map[string]any
			dec := json.NewDecoder(strings.NewReader(string(recorded(t, in))))
			dec.UseNumber()
			if err := dec.Decode(&doc); err != nil {
				t.Fatal(err)
			}
			back, ok := inputFromDocument(doc)
			if !ok {
				t.Fatal("not rebuilt")
			}
			if back.Value().Compare(in.Value()) != 0 {
				t.Fatalf("round trip changed the input:\n%v\n%v", in.Value(), back.Value())
			}
			if !sameDocument(back.Value(), doc) {
				t.Fatal("sameDocument: the rebuilt input differs from its document")
			}
			if in.Identity != nil && back.Identity.Key() != in.Identity.Key() {
				t.Error("the identity's value key changed: the replay would miss the memos")
			}
			if in.Access != nil && back.Access.Key() != in.Access.Key() {
				t.Error("the access facts' value key changed")
			}
		})
	}
}

func TestSameDocumentTellsDocumentsApart(t *testing.T) {
	v := ast.MustParseTerm(`{"a": [1, "x", true, null], "b": {"c": 2.5}}`).Value
	same := map[string]any{"a": []any{json.Number("1"), "x", true, nil}, "b": map[string]any{"c": json.Number("2.5")}}
	if !sameDocument(v, same) {
		t.Fatal("equal documents differ")
	}
	for name, x := range map[string]any{
		"extra key":     map[string]any{"a": same["a"], "b": same["b"], "c": nil},
		"missing key":   map[string]any{"a": same["a"]},
		"string number": map[string]any{"a": []any{"1", "x", true, nil}, "b": same["b"]},
		"shorter list":  map[string]any{"a": []any{json.Number("1")}, "b": same["b"]},
		"other bool":    map[string]any{"a": []any{json.Number("1"), "x", false, nil}, "b": same["b"]},
		"not an object": []any{},
	} {
		if sameDocument(v, x) {
			t.Errorf("%s: taken for the same document", name)
		}
	}
}

func TestDecideRecordedMatchesDecide(t *testing.T) {
	e, _ := newTestEngine(t, embedded())
	ctx := context.Background()
	for _, in := range []*Input{memberInput(), richInput(t)} {
		want := e.Decide(ctx, in)
		got, err := e.DecideRecorded(ctx, recorded(t, in))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Decision, want.Decision) || (got.Err == nil) != (want.Err == nil) {
			t.Errorf("replayed %+v, live %+v", got, want)
		}
	}
}

// A document this version would not build (hand-edited, or from another
// version) is evaluated as written; stage results in it are dropped, so the
// policy under test works them out itself.
func TestDecideRecordedEvaluatesOtherDocumentsAsWritten(t *testing.T) {
	e, _ := newTestEngine(t, Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": input.extra == 1, "reason": object.get(input, ["subject", "said"], "computed")}`)}}})
	ctx := context.Background()
	ev, err := e.DecideRecorded(ctx, json.RawMessage(`{"request": {"method": "GET"}, "extra": 1, "subject": {"said": "forged"}}`))
	if err != nil || !ev.Decision.Allow || ev.Decision.Reason != "computed" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	for _, bad := range []string{`not json`, `[1]`, `null`, `{"a": 1} trailing`} {
		if _, err := e.DecideRecorded(ctx, json.RawMessage(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// BenchmarkDecideRecorded is one recorded input of the store-backed kind
// replayed against the default policy: JSON, the input rebuilt and checked,
// Decide (memo hits after the first round).
func BenchmarkDecideRecorded(b *testing.B) {
	e, _ := newTestEngine(b, embedded())
	raw := recorded(b, richInput(b))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.DecideRecorded(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideRichInput is the same input decided live, for comparison.
func BenchmarkDecideRichInput(b *testing.B) {
	e, _ := newTestEngine(b, embedded())
	in := richInput(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(ctx, in)
	}
}
