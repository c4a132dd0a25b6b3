package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCompareDecisions(t *testing.T) {
	allow := Decision{Allow: true, Status: 200, Reason: "member", Headers: map[string][]string{"X-Portero-User": {"u1"}}}
	with := func(mut func(*Decision)) Decision {
		d := allow
		d.Headers = map[string][]string{"X-Portero-User": {"u1"}}
		mut(&d)
		return d
	}
	deny := Decision{Status: 403, Reason: "deny.not_a_member"}
	cases := []struct {
		name           string
		active, shadow Decision
		want           string
	}{
		{"same allow", allow, with(func(*Decision) {}), ""},
		{"same deny", deny, deny, ""},
		{"allow to deny", allow, deny, ShadowAllowToDeny},
		{"deny to allow", deny, allow, ShadowDenyToAllow},
		{"other reason", allow, with(func(d *Decision) { d.Reason = "owner" }), ShadowReason},
		{"other deny status", deny, Decision{Status: 404, Reason: deny.Reason}, ShadowReason},
		{"other header value", allow, with(func(d *Decision) { d.Headers["X-Portero-User"] = []string{"u2"} }), ShadowHeaders},
		{"one more value", allow, with(func(d *Decision) { d.Headers["X-Portero-User"] = []string{"u1", "u2"} }), ShadowHeaders},
		{"one more header", allow, with(func(d *Decision) { d.Headers["X-Portero-Tenant"] = []string{"acme"} }), ShadowHeaders},
		{"no headers", allow, with(func(d *Decision) { d.Headers = nil }), ShadowHeaders},
		{"an assertion subject", allow, with(func(d *Decision) { d.Assertion = &AssertionSubject{Subject: "owner", Actor: "u1"} }), ShadowHeaders},
		{"denials' headers do not count", deny, Decision{Status: 403, Reason: deny.Reason, Headers: map[string][]string{"X": {"y"}}}, ""},
	}
	for _, tc := range cases {
		if got := compareDecisions(tc.active, tc.shadow); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	a := &AssertionSubject{Subject: "o", Actor: "u", Roles: []string{"r"}}
	if !sameAssertion(a, &AssertionSubject{Subject: "o", Actor: "u", Roles: []string{"r"}}) || sameAssertion(a, &AssertionSubject{Subject: "o", Actor: "u"}) {
		t.Error("sameAssertion")
	}
}

// routePolicy allows every route but the one it names.
func routePolicy(closed string) fstest.MapFS {
	return fstest.MapFS{"authz.rego": {Data: []byte(fmt.Sprintf(`package portero.authz
decision := {"allow": false, "status": 403, "reason": "closed"} if input.route.name == %q
else := {"allow": true, "reason": "open", "headers": {"X-Portero-User": input.identity.sub}}
`, closed))}}
}

func routeInput(route, sub string) *Input {
	return &Input{Request: Request{Method: "GET", Path: "/" + route}, Route: Route{Name: route},
		Identity: NewIdentity(Identity{Subject: sub})}
}

func newShadowEngine(t testing.TB, active, shadow fstest.MapFS) (*Engine, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	var src *Source
	if shadow != nil {
		src = &Source{Name: "shadow", FS: shadow}
	}
	e, err := NewEngineWith(context.Background(), EngineOptions{Source: Source{Name: "active", FS: active}, Shadow: src,
		Metrics: NewMetrics(reg), Log: newJSONLog(logs)})
	if err != nil {
		t.Fatal(err)
	}
	return e, reg, logs
}

// The shadow decides the same inputs; only its disagreements are counted
// (by route, reasons and kind) and logged with the decision id, and the
// active policy's metrics do not count its evaluations.
func TestShadowCountsDisagreements(t *testing.T) {
	e, reg, logs := newShadowEngine(t, routePolicy("none"), routePolicy("billing"))
	ctx := context.Background()
	if !e.ShadowOn() || e.Shadow() == nil || e.Shadow().Current() == nil {
		t.Fatal("no shadow")
	}
	for i := range 3 {
		for _, route := range []string{"app", "billing", "api"} {
			in := routeInput(route, "u1")
			ev := e.Decide(ctx, in)
			if !ev.Decision.Allow {
				t.Fatalf("the active policy denied %s", route)
			}
			kind := e.DecideShadow(ctx, fmt.Sprintf("id-%s-%d", route, i), in, ev)
			if want := map[bool]string{true: ShadowAllowToDeny, false: ""}[route == "billing"]; kind != want {
				t.Fatalf("%s: %q, want %q", route, kind, want)
			}
		}
	}
	if got := testutil.ToFloat64(e.shadow.metrics.disagreements.WithLabelValues("billing", "open", "closed", ShadowAllowToDeny)); got != 3 {
		t.Fatalf("disagreements on billing: %v", got)
	}
	if n := testutil.CollectAndCount(e.shadow.metrics.disagreements); n != 1 {
		t.Fatalf("%d disagreement series, want billing's only", n)
	}
	if got := e.ShadowDisagreements(); len(got) != 1 || got[0] != (ShadowDisagreement{Route: "billing", ActiveReason: "open",
		ShadowReason: "closed", Kind: ShadowAllowToDeny, Count: 3}) {
		t.Fatalf("ShadowDisagreements: %+v", got)
	}
	if l := logs.String(); strings.Count(l, `"msg":"shadow policy disagrees"`) != 3 || !strings.Contains(l, `"decision_id":"id-billing-2"`) ||
		!strings.Contains(l, `"active_reason":"open","active_revision"`) || strings.Contains(l, `"route":"app"`) {
		t.Fatalf("log: %s", l)
	}
	// The active policy's own metrics count 9 decisions; the shadow's, 9 of its own.
	if hits, misses := testutil.ToFloat64(e.metrics.cacheHits), testutil.ToFloat64(e.metrics.cacheMisses); hits+misses != 9 {
		t.Fatalf("active decision cache: %v hits, %v misses", hits, misses)
	}
	if n, err := testutil.GatherAndCount(reg, "portero_policy_shadow_decision_cache_total", "portero_policy_shadow_info",
		"portero_policy_shadow_reloads_total"); err != nil || n != 6 {
		t.Fatalf("shadow metrics: %d series, %v", n, err)
	}
}

// Without a shadow nothing is evaluated or registered.
func TestNoShadow(t *testing.T) {
	e, reg, _ := newShadowEngine(t, routePolicy("none"), nil)
	in := routeInput("billing", "u1")
	if e.ShadowOn() || e.Shadow() != nil || e.ShadowDisagreements() != nil || e.DecideShadow(context.Background(), "id", in, e.Decide(context.Background(), in)) != "" {
		t.Fatal("a shadow without shadow_dir")
	}
	if n, _ := testutil.GatherAndCount(reg, "portero_policy_shadow_disagreements_total", "portero_policy_shadow_reloads_total"); n != 0 {
		t.Fatalf("shadow metrics exported without a shadow: %d", n)
	}
}

// A shadow that does not load (here: its tests fail) does not stop the
// active policy; the gateway runs without it until it loads.
func TestShadowThatDoesNotLoad(t *testing.T) {
	broken := routePolicy("billing")
	broken["authz_test.rego"] = &fstest.MapFile{Data: []byte("package portero.authz_test\n\nimport data.portero.authz\n\ntest_billing_open if authz.decision.allow with input.route.name as \"billing\"\n")}
	e, reg, logs := newShadowEngine(t, routePolicy("none"), broken)
	ctx := context.Background()
	in := routeInput("billing", "u1")
	if kind := e.DecideShadow(ctx, "id", in, e.Decide(ctx, in)); kind != "" || e.Shadow().Current() != nil {
		t.Fatalf("an unloaded shadow decided: %q", kind)
	}
	re := e.Shadow().LastReloadError()
	if re == nil || len(re.Tests) != 1 || re.Tests[0].Name != "data.portero.authz_test.test_billing_open" {
		t.Fatalf("shadow's refused load: %+v", re)
	}
	if !strings.Contains(logs.String(), `"msg":"shadow policy load refused; running without it until a load succeeds"`) {
		t.Fatalf("log: %s", logs.String())
	}
	if n, _ := testutil.GatherAndCount(reg, "portero_policy_reloads_total"); n != 3 {
		t.Fatalf("active reload series: %d", n)
	}
	if v := testutil.ToFloat64(e.shadow.metrics.engine.reloads.WithLabelValues(reloadTestFailure)); v != 1 {
		t.Fatalf("shadow test failures: %v", v)
	}
	if v := testutil.ToFloat64(e.metrics.reloads.WithLabelValues(reloadTestFailure)); v != 0 {
		t.Fatalf("the shadow's refusal counted as the active policy's: %v", v)
	}
}

// Reasons that vary per request cannot grow the disagreement series
// without bound; log lines are limited, every disagreement is counted.
func TestShadowIsBounded(t *testing.T) {
	varying := fstest.MapFS{"authz.rego": {Data: []byte(`package portero.authz
decision := {"allow": false, "reason": input.request.path}`)}}
	e, _, logs := newShadowEngine(t, routePolicy("none"), varying)
	ctx := context.Background()
	n := maxShadowSeries + 200
	for i := range n {
		in := routeInput("app", "u1")
		in.Request.Path = fmt.Sprintf("/p%d", i)
		e.DecideShadow(ctx, "id", in, e.Decide(ctx, in))
	}
	if got := testutil.CollectAndCount(e.shadow.metrics.disagreements); got != maxShadowSeries+1 {
		t.Fatalf("%d series, want %d", got, maxShadowSeries+1)
	}
	if got := testutil.ToFloat64(e.shadow.metrics.disagreements.WithLabelValues("app", "other", "other", ShadowAllowToDeny)); got != 200 {
		t.Fatalf("overflow series: %v", got)
	}
	if lines := strings.Count(logs.String(), "shadow policy disagrees"); lines < shadowLogBurst || lines > n/2 {
		t.Fatalf("%d log lines for %d disagreements", lines, n)
	}
}

// BenchmarkDecideShadow is the active decision alone, then with the shadow
// (a copy of the same policy) decided and compared beside it: from both
// decision caches (cached), and evaluated in full (uncached: both caches
// off).
func BenchmarkDecideShadow(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name           string
		shadow, cached bool
	}{{"off/cached", false, true}, {"on/cached", true, true}, {"off/uncached", false, false}, {"on/uncached", true, false}} {
		b.Run(bc.name, func(b *testing.B) {
			var shadow *Source
			if bc.shadow {
				shadow = &Source{Name: "shadow", FS: embedded().FS}
			}
			e, err := NewEngineWith(ctx, EngineOptions{Source: embedded(), Shadow: shadow, Tests: TestsNotRequired,
				Metrics: NewMetrics(prometheus.NewRegistry()), Log: quietLog()})
			if err != nil {
				b.Fatal(err)
			}
			if !bc.cached {
				e.Current().cache = nil
				if s := e.Shadow(); s != nil {
					s.Current().cache = nil
				}
			}
			in := memberInput()
			b.ReportAllocs()
			for b.Loop() {
				ev := e.Decide(ctx, in)
				if !ev.Decision.Allow {
					b.Fatal(ev)
				}
				if e.ShadowOn() && e.DecideShadow(ctx, "id", in, ev) != "" {
					b.Fatal("the same policy disagrees")
				}
			}
		})
	}
}
