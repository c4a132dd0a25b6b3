package control_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/control"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/policy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

// A reload refused because the policy's tests fail shows the failing tests
// in GET /policy and on the console's policy page, for the active policy
// and for the shadow policy.
func TestPolicyStatusShowsFailingTests(t *testing.T) {
	dir := t.TempDir()
	must := gatewaytest.Must
	must(t, fs.WalkDir(defaultrego.Bundle, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || name == "embed.go" {
			return err
		}
		b, err := defaultrego.Bundle.ReadFile(name)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}))
	shadowDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(shadowDir, "authz.rego"), []byte("package portero.authz\n\ndecision := {\"allow\": false}\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(shadowDir, "authz_test.rego"), []byte("package portero.authz_test\n\nimport data.portero.authz\n\ntest_allows if authz.decision.allow\n"), 0o644))
	shadow := policy.DirSource(shadowDir)
	engine, err := policy.NewEngineWith(context.Background(), policy.EngineOptions{Source: policy.DirSource(dir), Shadow: &shadow,
		Metrics: policy.NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler)})
	must(t, err)
	// The active policy compiles, but one of its tests now fails.
	f, err := os.OpenFile(filepath.Join(dir, "authz_test.rego"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("\ntest_broken if authz.decision.allow with input as {}\n")
	must(t, err)
	must(t, f.Close())
	if err := engine.Reload(context.Background()); err == nil {
		t.Fatal("reload with a failing test accepted")
	}
	text, err := os.ReadFile(filepath.Join(dir, "authz_test.rego"))
	must(t, err)
	line := strings.Count(string(text), "\n") // test_broken is the last line

	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "access.db")
	store, err := access.Open(ctx, db, access.WithActors(control.ActorOf))
	must(t, err)
	t.Cleanup(func() { store.Close() })
	h := newHarnessWith(t, nil, harnessOpts{Login: true, Store: store, Engine: engine, Extra: "access:\n  store: " + db + "\n"})

	<-engine.Current().CoverageMeasured()
	status, body := apiCall(h, t, adminToken(h, t), "GET", "/policy", "")
	raw, _ := json.Marshal(body)
	var st control.PolicyStatus
	must(t, json.Unmarshal(raw, &st))
	if status != 200 || !st.RequireTests || st.TestsPassed < 50 || len(st.FailingTests) != 1 || st.Shadow == nil {
		t.Fatalf("GET /policy: %d %s", status, raw)
	}
	if ft := st.FailingTests[0]; ft.Name != "data.portero.authz_test.test_broken" || ft.File != "authz_test.rego" || ft.Line != line {
		t.Fatalf("failing test: %+v, want line %d", ft, line)
	}
	if sh := st.Shadow; sh.Revision != "" || len(sh.FailingTests) != 1 || sh.FailingTests[0].Name != "data.portero.authz_test.test_allows" ||
		!strings.Contains(sh.LastError, "1 of 1 policy tests failed") {
		t.Fatalf("shadow: %+v", sh)
	}

	b := gatewaytest.NewBrowser(t, h)
	b.SignIn("http://localhost/.portero/admin/", samClaims())
	rec := b.Do("GET", "http://localhost/.portero/admin/policy", nil, nil)
	page := rec.Body.String()
	for _, want := range []string{`id="policy-error"`, "<code>data.portero.authz_test.test_broken</code> at authz_test.rego:",
		`id="shadow-error"`, "<code>data.portero.authz_test.test_allows</code> at authz_test.rego:5", "0 failed before it was served",
		`id="policy-coverage"`, `id="revision-` + st.Revision + `"`} {
		if rec.Code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("policy page (%d) lacks %q: %s", rec.Code, want, page)
		}
	}
	if st.TestsCoverage == nil || *st.TestsCoverage < 50 || *st.TestsCoverage > 100 || len(st.History) != 1 || st.History[0].ID != st.Revision {
		t.Fatalf("coverage %v, history %+v", st.TestsCoverage, st.History)
	}
	if want := fmt.Sprintf(`id="policy-coverage" class="measured">%.1f %%</span>`, *st.TestsCoverage); !strings.Contains(page, want) {
		t.Fatalf("policy page lacks %q: %s", want, page)
	}

	// An edit that loads is in the history with its diff; then a file that
	// does not parse is refused with its error at file:line:column.
	tests, err := defaultrego.Bundle.ReadFile("authz_test.rego")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "authz_test.rego"), tests, 0o644))
	authz, err := os.ReadFile(filepath.Join(dir, "authz.rego"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "authz.rego"), append(authz, "\n# edited for the history\n"...), 0o644))
	must(t, engine.Reload(ctx))
	must(t, os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package portero.broken\n\np := {"), 0o644))
	if err := engine.Reload(ctx); err == nil {
		t.Fatal("a policy that does not parse loaded")
	}
	status, body = apiCall(h, t, adminToken(h, t), "GET", "/policy", "")
	raw, _ = json.Marshal(body)
	st = control.PolicyStatus{}
	must(t, json.Unmarshal(raw, &st))
	if status != 200 || len(st.History) != 2 || st.History[0].ID != st.Revision || len(st.History[0].Changed) != 1 ||
		st.History[0].Changed[0] != "authz.rego" || len(st.History[0].Diffs) != 1 || !strings.Contains(st.History[0].Diffs[0].Diff, "+# edited for the history") {
		t.Fatalf("history after an edit: %s", raw)
	}
	if len(st.Errors) == 0 || st.Errors[0].File != "broken.rego" || st.Errors[0].Line != 3 || st.Errors[0].Column == 0 {
		t.Fatalf("refused reload's errors: %+v", st.Errors)
	}
	rec = b.Do("GET", "http://localhost/.portero/admin/policy", nil, nil)
	page = rec.Body.String()
	for _, want := range []string{`<details class="diff"><summary>Diff of <code>authz.rego</code>`, "&#43;# edited for the history",
		"<code>broken.rego:3:", "rego_parse_error", "<strong>(served)</strong>"} {
		if rec.Code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("policy page (%d) lacks %q: %s", rec.Code, want, page)
		}
	}
}

// The shadow policy's disagreements, read from its counters, are in GET
// /policy and on the page: here a shadow that refuses everything disagrees
// with the management calls the active policy allows.
func TestPolicyStatusShowsShadowDisagreements(t *testing.T) {
	must := gatewaytest.Must
	shadowDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(shadowDir, "authz.rego"), []byte("package portero.authz\n\ndecision := {\"allow\": false, \"status\": 403, \"reason\": \"shadow.closed\"}\n"), 0o644))
	shadow := policy.DirSource(shadowDir)
	engine, err := policy.NewEngineWith(context.Background(), policy.EngineOptions{Source: policy.Source{Name: "embedded", FS: defaultrego.Bundle}, Shadow: &shadow,
		Metrics: policy.NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler)})
	must(t, err)
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "access.db")
	store, err := access.Open(ctx, db, access.WithActors(control.ActorOf))
	must(t, err)
	t.Cleanup(func() { store.Close() })
	h := newHarnessWith(t, nil, harnessOpts{Login: true, Store: store, Engine: engine, Extra: "access:\n  store: " + db + "\n"})

	token := adminToken(h, t)
	apiCall(h, t, token, "GET", "/policy", "")
	status, body := apiCall(h, t, token, "GET", "/policy", "")
	raw, _ := json.Marshal(body)
	var st control.PolicyStatus
	must(t, json.Unmarshal(raw, &st))
	if status != 200 || st.Shadow == nil || st.Shadow.Revision == "" || len(st.Shadow.History) != 1 || len(st.Shadow.Disagreements) != 1 {
		t.Fatalf("GET /policy: %d %s", status, raw)
	}
	// The first GET and this one's own decision (before it read the counters).
	if d := st.Shadow.Disagreements[0]; d.Route != "portero-api" || d.Kind != policy.ShadowAllowToDeny || d.ShadowReason != "shadow.closed" || d.Count != 2 {
		t.Fatalf("disagreement: %+v", d)
	}
	b := gatewaytest.NewBrowser(t, h)
	b.SignIn("http://localhost/.portero/admin/", samClaims())
	rec := b.Do("GET", "http://localhost/.portero/admin/policy", nil, nil)
	if page := rec.Body.String(); rec.Code != 200 || !strings.Contains(page, `id="shadow-disagreements"`) || !strings.Contains(page, "<td><code>portero-console</code></td><td>allow_to_deny</td>") {
		t.Fatalf("policy page (%d): %s", rec.Code, page)
	}
}
