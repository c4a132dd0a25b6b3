package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func storeInput(user, method string, segments []string, access map[string]any, body string) *Input {
	in := &Input{
		Request:  Request{Method: method, Path: "/" + strings.Join(segments, "/"), Segments: segments, AppSegments: segments},
		Route:    Route{Name: "app", API: true},
		Tenant:   &Tenant{ID: "acme", Status: "active"},
		Identity: NewIdentity(Identity{Subject: user, Auth: "bearer"}),
		Now:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	a, err := NewAccess(access)
	if err != nil {
		panic(err)
	}
	in.Access = a
	if body != "" {
		in.Request.Body = bodyOf(ast.MustParseTerm(body).Value)
	}
	return in
}

func acmeAccess(member map[string]any) map[string]any {
	doc := map[string]any{"tenant": map[string]any{"id": "acme", "name": "Acme", "status": "active", "owner": "olivia", "master_access": true}}
	if member != nil {
		doc["membership"] = member
	}
	return doc
}

// partnerAccess is acme's facts for a user of partnerco, which acme
// delegated reviews and ads to; with m, the user is also a member.
func partnerAccess(m map[string]any) map[string]any {
	doc := acmeAccess(m)
	doc["partner"] = "partnerco"
	doc["delegation"] = map[string]any{"id": "dlg_1", "partner": "partnerco", "scope": "limited", "products": []any{"reviews", "ads"},
		"wallet": false, "status": "accepted", "expired": false}
	return doc
}

func member(role string, extra map[string]any) map[string]any {
	m := map[string]any{"role": role, "businesses": []any{"b1"}, "locations": []any{"l1"}, "features": map[string]any{},
		"fields": map[string]any{}, "rights": []any{}, "profile": "", "status": "active"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// The stages are an optimisation only: every decision with the memoised
// stages is the decision the policy gives when it works everything out
// itself, for allowed and refused requests alike.
func TestStagesGiveTheSameDecisions(t *testing.T) {
	e, m := newTestEngine(t, embedded())
	p := e.Current()
	if got := p.Stages(); got[SubjectQuery] != "memoised" || got[OperationQuery] != "memoised" || got[OperationDenialQuery] != "memoised" {
		t.Fatalf("default policy stages: %v", got)
	}
	plain := *p
	plain.stages, plain.cache = nil, nil
	leo := member("location_manager", map[string]any{
		"features": map[string]any{"profile_listings": "edit", "reviews": "read"},
		"fields":   map[string]any{"profile_listings": []any{"phone"}}})
	inputs := map[string]*Input{
		"owner":            storeInput("olivia", "DELETE", []string{"businesses", "b9"}, acmeAccess(nil), ""),
		"no member":        storeInput("zoe", "GET", []string{"reviews"}, acmeAccess(nil), ""),
		"deactivated":      storeInput("gone", "GET", []string{"reviews"}, acmeAccess(member("administrator", map[string]any{"status": "deactivated"})), ""),
		"field allowed":    storeInput("leo", "PATCH", []string{"locations", "l1", "profile"}, acmeAccess(leo), `{"phone": "1"}`),
		"field refused":    storeInput("leo", "PATCH", []string{"locations", "l1", "profile"}, acmeAccess(leo), `{"name": "x"}`),
		"other location":   storeInput("leo", "PATCH", []string{"locations", "l2", "profile"}, acmeAccess(leo), `{"phone": "1"}`),
		"read only":        storeInput("leo", "POST", []string{"reviews", "r1", "reply"}, acmeAccess(leo), ""),
		"not granted":      storeInput("leo", "GET", []string{"ads"}, acmeAccess(leo), ""),
		"unmapped path":    storeInput("leo", "GET", []string{"no", "such", "page"}, acmeAccess(leo), ""),
		"role too low":     storeInput("leo", "GET", []string{"users"}, acmeAccess(leo), ""),
		"business scope":   storeInput("ann", "GET", []string{"businesses", "b2"}, acmeAccess(member("account_manager", map[string]any{"profile": "full"})), ""),
		"business allowed": storeInput("ann", "GET", []string{"businesses", "b1"}, acmeAccess(member("account_manager", map[string]any{"profile": "full"})), ""),
		"create business":  storeInput("ann", "POST", []string{"businesses"}, acmeAccess(member("account_manager", map[string]any{"profile": "full"})), ""),
		// A partner's user, and a member who is one too: refused as the
		// member, allowed as the partner, with the partner's headers.
		"partner":          storeInput("pat", "GET", []string{"reviews"}, partnerAccess(nil), ""),
		"partner refused":  storeInput("pat", "GET", []string{"billing"}, partnerAccess(nil), ""),
		"union as partner": storeInput("leo", "POST", []string{"ads"}, partnerAccess(leo), ""),
		"union as member":  storeInput("leo", "PATCH", []string{"locations", "l1", "profile"}, partnerAccess(leo), `{"phone": "1"}`),
	}
	reasons := map[string]bool{}
	for name, in := range inputs {
		for round := range 2 { // the second round comes from the memos
			got := e.Decide(context.Background(), in)
			want := plain.decideFor(t, in)
			if got.Err != nil || !reflect.DeepEqual(got.Decision, want) {
				t.Errorf("%s (round %d): with stages %+v (err %v), without %+v", name, round, got.Decision, got.Err, want)
			}
			reasons[got.Decision.Reason] = true
		}
	}
	if len(reasons) < 10 {
		t.Errorf("the cases should cover many outcomes, got %v", reasons)
	}
	if hits := testutil.ToFloat64(m.stages["subject"][1]); hits == 0 {
		t.Error("the subject stage was never answered from its memo")
	}
}

// What follows from a grant is worked out once per grant: a second caller
// with the same role, profile and rights (other locations, other fields,
// another name) gets the grant's facts and the operation's refusal from
// the memos, and their own headers; a caller with another grant does not.
func TestGrantStagesAreSharedByCallers(t *testing.T) {
	e, m := newTestEngine(t, embedded())
	if got := e.Current().Stages(); got[GrantFactsQuery] != "memoised" || got[OperationDenialQuery] != "memoised" {
		t.Fatalf("default policy stages: %v", got)
	}
	hits := func(stage string) float64 { return testutil.ToFloat64(m.stages[stage][1]) }
	grant := map[string]any{"features": map[string]any{"profile_listings": "edit", "reviews": "read"}}
	decide := func(user, role string, extra map[string]any, segs ...string) Evaluation {
		mb := member(role, grant)
		for k, v := range extra {
			mb[k] = v
		}
		ev := e.Decide(context.Background(), storeInput(user, "PATCH", segs, acmeAccess(mb), `{"phone": "1"}`))
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		return ev
	}
	leo := decide("leo", "location_manager", map[string]any{"locations": []any{"l1"}, "fields": map[string]any{"profile_listings": []any{"phone"}}}, "locations", "l1", "profile")
	facts, ops := hits("grant_facts"), hits("operation_denial")
	lea := decide("lea", "location_manager", map[string]any{"locations": []any{"l2", "l3"}, "fields": map[string]any{}}, "locations", "l2", "profile")
	if !leo.Decision.Allow || !lea.Decision.Allow {
		t.Fatalf("leo %+v, lea %+v", leo.Decision, lea.Decision)
	}
	if hits("grant_facts") != facts+1 || hits("operation_denial") != ops+1 {
		t.Errorf("a second caller with the same grant: memo hits grant_facts %v → %v, operation_denial %v → %v", facts, hits("grant_facts"), ops, hits("operation_denial"))
	}
	h := lea.Decision.Headers
	if http.Header(h).Get("X-Portero-User") != "lea" || http.Header(h).Get("X-Portero-Scope") != "locations:l2,l3" || http.Header(h).Get("X-Portero-Features") != http.Header(leo.Decision.Headers).Get("X-Portero-Features") {
		t.Errorf("lea's headers: %v (leo's %v)", h, leo.Decision.Headers)
	}
	facts, ops = hits("grant_facts"), hits("operation_denial")
	ann := decide("ann", "account_manager", map[string]any{"features": map[string]any{}, "profile": "full"}, "locations", "l1", "profile")
	if hits("grant_facts") != facts || hits("operation_denial") != ops {
		t.Errorf("another grant answered from the memos: %+v", ann.Decision)
	}
	if http.Header(ann.Decision.Headers).Get("X-Portero-Features") == http.Header(leo.Decision.Headers).Get("X-Portero-Features") {
		t.Errorf("an account manager has a location manager's features: %v", ann.Decision.Headers)
	}
}

func (p *Loaded) decideFor(t *testing.T, in *Input) Decision {
	t.Helper()
	d, err := p.decide(context.Background(), rego.EvalParsedInput(in.valueFor(p.use)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The subject memo is keyed on the facts' value: changed facts are not
// answered from it, the same facts built again are.
func TestSubjectMemoFollowsTheFacts(t *testing.T) {
	e, m := newTestEngine(t, embedded())
	hits := func() float64 { return testutil.ToFloat64(m.stages["subject"][1]) }
	in := storeInput("adam", "GET", []string{"reviews"}, acmeAccess(member("administrator", nil)), "")
	if ev := e.Decide(context.Background(), in); !ev.Decision.Allow {
		t.Fatalf("active administrator refused: %+v", ev)
	}
	in.Access, _ = NewAccess(acmeAccess(member("administrator", map[string]any{"status": "deactivated"})))
	if ev := e.Decide(context.Background(), in); ev.Decision.Allow || ev.Decision.Reason != "member.deactivated" {
		t.Fatalf("deactivated administrator: %+v", ev)
	}
	before := hits()
	in.Access, _ = NewAccess(acmeAccess(member("administrator", nil)))
	in.Request.Method = "HEAD" // not the decision cache's answer: the subject memo's
	if ev := e.Decide(context.Background(), in); !ev.Decision.Allow || hits() != before+1 {
		t.Fatalf("the same facts built again: %+v, memo hits %v → %v", ev, before, hits())
	}
}

// The operation denial is worked out per caller and mapping entry, when
// the caller first uses it, and serves every path of the entry: the same
// operation at another location comes from the memo, another operation or
// other facts do not.
func TestOperationDenialMemoPerEntry(t *testing.T) {
	e, m := newTestEngine(t, embedded())
	hits := func() float64 { return testutil.ToFloat64(m.stages["operation_denial"][1]) }
	leo := member("location_manager", map[string]any{"locations": []any{"l1", "l2"},
		"features": map[string]any{"profile_listings": "edit", "reviews": "read"},
		"fields":   map[string]any{"profile_listings": []any{"phone"}}})
	decide := func(method string, segs ...string) Evaluation {
		return e.Decide(context.Background(), storeInput("leo", method, segs, acmeAccess(leo), `{"phone": "1"}`))
	}
	if ev := decide("PATCH", "locations", "l1", "profile"); !ev.Decision.Allow {
		t.Fatalf("first edit: %+v", ev)
	}
	before := hits()
	if ev := decide("PATCH", "locations", "l2", "profile"); !ev.Decision.Allow || hits() != before+1 {
		t.Fatalf("the same entry at another location: %+v, memo hits %v → %v", ev, before, hits())
	}
	if ev := decide("POST", "reviews", "r1", "reply"); ev.Decision.Allow || ev.Decision.Reason != "feature.read_only" || hits() != before+1 {
		t.Fatalf("another entry: %+v, memo hits %v → %v", ev, before, hits())
	}
	if ev := decide("POST", "reviews", "r2", "reply"); ev.Decision.Reason != "feature.read_only" || hits() != before+2 {
		t.Fatalf("that entry again: %+v, memo hits %v → %v", ev, before, hits())
	}
}

// A stage that reads more than its key, or is not deterministic, is still
// used, but evaluated for every request; the load log says why.
func TestStagesMemoisedOnlyWhenPure(t *testing.T) {
	const authz = "package portero.authz\n\ndecision := {\"allow\": true, \"status\": 200, \"reason\": input.subject.who}\n"
	cases := map[string]string{
		`facts := {"who": input.identity.sub}`:                               "memoised",
		`facts := {"who": input.request.path}`:                               "evaluated per request: it reads input.request",
		`facts := {"who": sprintf("%d", [time.now_ns()])}`:                   "evaluated per request: it calls a non-deterministic builtin",
		`facts := {"who": input[x].sub} if x := "identity"`:                  "evaluated per request: it reads input through a computed key",
		"facts := {\"who\": _name}\n\n_name := input.request.headers.accept": "evaluated per request: it reads input.request",
	}
	for subject, want := range cases {
		src := Source{Name: "test", FS: fstest.MapFS{
			"authz.rego":   {Data: []byte(authz)},
			"subject.rego": {Data: []byte("package portero.subject\n\n" + subject + "\n")},
		}}
		e, _ := newTestEngine(t, src)
		if got := e.Current().Stages()[SubjectQuery]; got != want {
			t.Errorf("%s: %q, want %q", subject, got, want)
		}
		in := memberInput()
		in.Request.Path = "/p"
		ev := e.Decide(context.Background(), in)
		if !ev.Decision.Allow || ev.Decision.Reason == "" {
			t.Errorf("%s: %+v", subject, ev)
		}
	}
}

// Without store facts the subject names no grant; the stages that read
// only the grant are still memoised (one result serves every such input),
// not evaluated for every request.
func TestStagesMemoisedWithoutStoreFacts(t *testing.T) {
	e, m := newTestEngine(t, embedded())
	e.Current().cache = nil // every request reaches the stages
	for range 3 {
		if ev := e.Decide(context.Background(), memberInput()); ev.Err != nil {
			t.Fatal(ev.Err)
		}
	}
	for _, spec := range stageSpecs {
		miss, hit := testutil.ToFloat64(m.stages[spec.field][0]), testutil.ToFloat64(m.stages[spec.field][1])
		if miss != 1 || hit != 2 {
			t.Errorf("%s: %v misses, %v hits; want 1 and 2", spec.field, miss, hit)
		}
	}
}

// `portero eval` (EvalRaw) decides an input that already holds the
// subject's facts as it decides one without them: the given subject's
// grant is the stages' input.grant, and a subject without a grant (written
// by hand, or recorded before grants) is refused rather than let through
// without the refusals of its operation.
func TestEvalRawWithAGivenSubject(t *testing.T) {
	e, _ := newTestEngine(t, embedded())
	p := e.Current()
	ctx := context.Background()
	leo := member("location_manager", map[string]any{"features": map[string]any{"reviews": "read"}})
	doc := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(string(storeInput("leo", "POST", []string{"reviews", "r1", "reply"}, acmeAccess(leo), "").Value().String())), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	plain, _, err := p.EvalRaw(ctx, doc(), false)
	if err != nil || plain.Allow || plain.Reason != "feature.read_only" {
		t.Fatalf("without a subject: %+v %v", plain, err)
	}
	subject, err := p.stages[0].eval(ctx, rego.EvalParsedInput(storeInput("leo", "POST", []string{"reviews", "r1", "reply"}, acmeAccess(leo), "").Value()))
	if err != nil || p.stages[0].spec != &subjectSpec {
		t.Fatal(err)
	}
	var facts map[string]any
	if err := json.Unmarshal([]byte(subject.String()), &facts); err != nil {
		t.Fatal(err)
	}
	given := doc()
	given["subject"] = facts
	if d, _, err := p.EvalRaw(ctx, given, false); err != nil || !reflect.DeepEqual(d, plain) {
		t.Fatalf("with the subject given: %+v %v, want %+v", d, err, plain)
	}
	delete(facts, "grant")
	if d, _, err := p.EvalRaw(ctx, given, false); err != nil || d.Allow {
		t.Fatalf("with a subject that has no grant: %+v %v", d, err)
	}
}
