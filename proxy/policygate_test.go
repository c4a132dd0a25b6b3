package proxy_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/policy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

// copyDefaultPolicy writes the embedded policy (tests included) to a new
// directory, with edit applied to each file's text.
func copyDefaultPolicy(t testing.TB, edit func(name, text string) string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(defaultrego.Bundle, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, ".json")) {
			return err
		}
		b, err := defaultrego.Bundle.ReadFile(name)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), []byte(edit(name, string(b))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func unchanged(_, text string) string { return text }

// replaceIn writes name in dir with old replaced by new, through a rename
// as editors do.
func replaceIn(t *testing.T, dir, name, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	must(t, err)
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	tmp := filepath.Join(dir, ".edit")
	must(t, os.WriteFile(tmp, []byte(strings.Replace(string(b), old, new, 1)), 0o644))
	must(t, os.Rename(tmp, filepath.Join(dir, name)))
}

// waitUntil polls a condition another goroutine makes true; the deadline
// only bounds a failing test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
	}
}

// An edit of the watched policy directory that makes one of the policy's
// own tests fail is refused: the gateway goes on serving the last good
// policy (what the upstream receives does not change), the refusal is
// counted and logged with the failing test; the edit that fixes the test
// is then served.
func TestGatewayRefusesReloadWhoseTestsFail(t *testing.T) {
	dir := copyDefaultPolicy(t, unchanged)
	reg := prometheus.NewRegistry()
	logs := &gatewaytest.SyncBuffer{}
	engine, err := policy.NewEngineWith(context.Background(), policy.EngineOptions{Source: policy.DirSource(dir),
		Metrics: policy.NewMetrics(reg), Log: slog.New(slog.NewJSONHandler(logs, nil))})
	must(t, err)
	if !engine.TestsRequired() {
		t.Fatal("the default policy's copy is not test-gated")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watching, err := engine.Watch(ctx, dir)
	must(t, err)
	h := newHarnessWith(t, nil, harnessOpts{Engine: engine})
	tok := h.Member(t)
	tenantSent := func() string {
		t.Helper()
		if rec := h.Do(t, "GET", "http://acme.apps.example.com/api/orders", tok, nil, ""); rec.Code != 200 {
			t.Fatalf("member: %d %s", rec.Code, rec.Body)
		}
		return h.UpstreamSaw(t).Header.Get("X-Portero-Tenant")
	}
	if got := tenantSent(); got != "acme" {
		t.Fatalf("X-Portero-Tenant %q", got)
	}
	reloads := func(result string) float64 {
		for _, s := range gather(t, reg, "portero_policy_reloads_total") {
			if s.labels == "result="+result {
				return s.value
			}
		}
		return 0
	}
	good := engine.Current().Revision

	// The edit compiles, but test_member_without_roles_is_allowed expects
	// the tenant as it is.
	replaceIn(t, dir, "authz.rego", `"X-Portero-Tenant": input.tenant.id,`, `"X-Portero-Tenant": upper(input.tenant.id),`)
	waitUntil(t, "refused reload", func() bool { return reloads("test_failure") >= 1 })
	if got := tenantSent(); got != "acme" || engine.Current().Revision != good {
		t.Fatalf("after the refused reload the upstream received X-Portero-Tenant %q from revision %s", got, engine.Current().Revision)
	}
	re := engine.LastReloadError()
	if re == nil || len(re.Tests) != 1 || re.Tests[0].Name != "data.portero.authz_test.test_member_without_roles_is_allowed" ||
		re.Tests[0].File != "authz_test.rego" || re.Tests[0].Line != 9 {
		t.Fatalf("refused reload: %+v", re)
	}
	if l := logs.String(); !strings.Contains(l, `"failing_tests":["data.portero.authz_test.test_member_without_roles_is_allowed (authz_test.rego:9)"]`) {
		t.Fatalf("log: %s", l)
	}

	// The fix: the test expects the new header.
	replaceIn(t, dir, "authz_test.rego", `d.headers["X-Portero-Tenant"] == "acme"`, `d.headers["X-Portero-Tenant"] == "ACME"`)
	waitUntil(t, "accepted reload", func() bool { return reloads("success") >= 2 })
	if got := tenantSent(); got != "ACME" || engine.LastReloadError() != nil {
		t.Fatalf("after the fix: X-Portero-Tenant %q, last refusal %+v", got, engine.LastReloadError())
	}
	cancel()
	<-watching
}

// A shadow policy that closes one route disagrees on that route only:
// counted by route and reasons, logged with the request's decision id,
// while the active policy's decisions are enforced (the upstream receives
// the requests, with the active policy's headers).
func TestShadowPolicyThatDeniesOneRoute(t *testing.T) {
	shadowDir := copyDefaultPolicy(t, func(name, text string) string {
		if name != "authz.rego" {
			return text
		}
		return strings.Replace(text, "decision := {\"allow\": false, \"status\": 401, \"reason\": \"deny.unauthenticated\"} if {",
			"decision := {\"allow\": false, \"status\": 403, \"reason\": \"route.closed\"} if {\n\tinput.route.name == \"app\"\n} else := {\"allow\": false, \"status\": 401, \"reason\": \"deny.unauthenticated\"} if {", 1)
	})
	reg := prometheus.NewRegistry()
	logs := &gatewaytest.SyncBuffer{}
	shadow := policy.DirSource(shadowDir)
	engine, err := policy.NewEngineWith(context.Background(), policy.EngineOptions{
		Source: policy.Source{Name: "embedded", FS: defaultrego.Bundle}, Shadow: &shadow,
		Metrics: policy.NewMetrics(reg), Log: slog.New(slog.NewJSONHandler(logs, nil))})
	must(t, err)
	if engine.Shadow().Current() == nil || engine.Shadow().Current().Tests == 0 {
		t.Fatalf("shadow not loaded, test-gated: %v", engine.Shadow().LastReloadError())
	}
	h := newHarnessWith(t, nil, harnessOpts{Engine: engine})
	tok := h.Member(t)
	for range 3 {
		for _, target := range []string{"http://acme.apps.example.com/api/orders", "http://acme.apps.example.com/reviews"} {
			if rec := h.Do(t, "GET", target, tok, nil, ""); rec.Code != 200 {
				t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
			}
			got := h.UpstreamSaw(t)
			if got.Header.Get("X-Portero-User") != "alice" || got.Header.Get("X-Portero-Tenant") != "acme" || got.Header.Get("X-Portero-Roles") != "account_manager" {
				t.Fatalf("%s: the upstream received %v", target, got.Header)
			}
		}
	}
	series := gather(t, reg, "portero_policy_shadow_disagreements_total")
	if len(series) != 1 || series[0].labels != "active_reason=member,kind=allow_to_deny,route=app,shadow_reason=route.closed" || series[0].value != 3 {
		t.Fatalf("disagreements: %+v", series)
	}
	// Each disagreement's log line names a decision the gateway made on
	// the app route.
	var ids []string
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var l map[string]any
		must(t, json.Unmarshal([]byte(line), &l))
		if l["msg"] != "shadow policy disagrees" {
			continue
		}
		if l["route"] != "app" || l["kind"] != "allow_to_deny" || l["shadow_reason"] != "route.closed" || l["active_reason"] != "member" {
			t.Fatalf("disagreement logged: %s", line)
		}
		ids = append(ids, l["decision_id"].(string))
	}
	if len(ids) != 3 {
		t.Fatalf("%d disagreements logged: %s", len(ids), logs.String())
	}
	for _, id := range ids {
		if !strings.Contains(h.Logs.String(), `"decision_id":"`+id+`","route":"app"`) {
			t.Fatalf("decision %s is not an app request's: %s", id, h.Logs.String())
		}
	}
}

type sample struct {
	labels string
	value  float64
}

// gather returns a counter's series on reg as "name=value,…" (sorted by
// name) and their values.
func gather(t testing.TB, reg *prometheus.Registry, name string) []sample {
	t.Helper()
	families, err := reg.Gather()
	must(t, err)
	var out []sample
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			var pairs []string
			for _, l := range m.Label {
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			out = append(out, sample{strings.Join(pairs, ","), m.GetCounter().GetValue()})
		}
	}
	return out
}

// BenchmarkRequestPathShadow is BenchmarkRequestPath without and with a
// shadow policy (a copy of the default policy, so every decision agrees
// and is compared): get repeats a cached decision, post carries a JSON
// body the policy reads, so neither policy can answer from its cache.
func BenchmarkRequestPathShadow(b *testing.B) {
	shadowDir := copyDefaultPolicy(b, unchanged)
	for _, bc := range []struct {
		name, method, body string
		shadow             bool
	}{
		{"off/get", "GET", "", false}, {"on/get", "GET", "", true},
		{"off/post", "POST", `{"note":"x"}`, false}, {"on/post", "POST", `{"note":"x"}`, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := policy.EngineOptions{Source: policy.Source{Name: "embedded", FS: defaultrego.Bundle}, Tests: policy.TestsNotRequired,
				Metrics: policy.NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler)}
			if bc.shadow {
				src := policy.DirSource(shadowDir)
				o.Shadow = &src
			}
			engine, err := policy.NewEngineWith(context.Background(), o)
			must(b, err)
			h := newHarnessWith(b, nil, harnessOpts{Engine: engine})
			tok := h.Member(b)
			go func() {
				for range h.Got {
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(bc.method, "http://acme.apps.example.com/api/orders?page=2", strings.NewReader(bc.body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Accept", "application/json")
				if bc.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				rec := httptest.NewRecorder()
				h.Gateway.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body)
				}
			}
		})
	}
}

// policy.shadow_sample: the shadow decides only that share of requests.
func TestShadowSampleBoundsTheShadow(t *testing.T) {
	shadowDir := copyDefaultPolicy(t, func(name, text string) string {
		if name != "authz.rego" {
			return text
		}
		return strings.Replace(text, "decision := {\"allow\": false, \"status\": 401, \"reason\": \"deny.unauthenticated\"} if {",
			"decision := {\"allow\": false, \"status\": 403, \"reason\": \"route.closed\"} if {\n\tinput.route.name == \"app\"\n} else := {\"allow\": false, \"status\": 401, \"reason\": \"deny.unauthenticated\"} if {", 1)
	})
	for _, c := range []struct {
		sample string
		min    float64
		max    float64
	}{
		{"policy:\n  shadow_sample: 0.000001\n", 0, 0},
		{"policy:\n  shadow_sample: 0.5\n", 10, 70}, // of 80: far outside these bounds once in ~10^9 runs
	} {
		reg := prometheus.NewRegistry()
		shadow := policy.DirSource(shadowDir)
		engine, err := policy.NewEngineWith(context.Background(), policy.EngineOptions{
			Source: policy.Source{Name: "embedded", FS: defaultrego.Bundle}, Shadow: &shadow,
			Metrics: policy.NewMetrics(reg), Log: slog.New(slog.DiscardHandler)})
		must(t, err)
		h := newHarnessWith(t, nil, harnessOpts{Engine: engine, Extra: c.sample})
		tok := h.Member(t)
		go func() {
			for range h.Got {
			}
		}()
		for range 80 {
			if rec := h.Do(t, "GET", "http://acme.apps.example.com/reviews", tok, nil, ""); rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
		var n float64
		for _, s := range gather(t, reg, "portero_policy_shadow_disagreements_total") {
			n += s.value
		}
		if n < c.min || n > c.max {
			t.Errorf("%q: %v disagreements of 80 requests, want %v to %v", c.sample, n, c.min, c.max)
		}
	}
}
