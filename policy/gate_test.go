package policy

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/internal/testlog"
)

// A small policy with its tests: the decision's reason is v1, and its test
// says so on line 4 of authz_test.rego.
const (
	gatedPolicy = "package portero.authz\n\ndecision := {\"allow\": true, \"reason\": \"v1\"}\n"
	gatedTests  = "package portero.authz_test\n\nimport data.portero.authz\n\ntest_reason if authz.decision.reason == \"v1\"\n\ntest_allows if authz.decision.allow\n"
)

// writeFile writes then renames, as editors and config management do.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func newGatedEngine(t *testing.T, o EngineOptions) (*Engine, *Metrics, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	o.Metrics = NewMetrics(prometheus.NewRegistry())
	o.Log = newJSONLog(logs)
	e, err := NewEngineWith(context.Background(), o)
	if err != nil {
		t.Fatalf("NewEngineWith: %v", err)
	}
	return e, o.Metrics, logs
}

// An edit that makes the policy's own test fail is refused like one that
// does not compile, through the directory watch: counted, recorded with the
// failing test's name and place, logged, and the last good policy serves;
// the fix is then accepted.
func TestWatchedReloadWithFailingTestIsRefused(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "authz.rego", gatedPolicy)
	writeFile(t, dir, "authz_test.rego", gatedTests)
	e, m, logs := newGatedEngine(t, EngineOptions{Source: DirSource(dir)})
	if !e.TestsRequired() {
		t.Fatal("a policy with tests is not test-gated by default")
	}
	if cur := e.Current(); cur.Tests != 2 || cur.TestsDuration <= 0 {
		t.Fatalf("first load: %d tests in %v", cur.Tests, cur.TestsDuration)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watching, err := e.Watch(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	good := e.Current().Revision

	// Compiles, but test_reason now fails.
	writeFile(t, dir, "authz.rego", strings.Replace(gatedPolicy, "v1", "v2", 1))
	waitFor(t, func() bool { return testutil.ToFloat64(m.reloads.WithLabelValues(reloadTestFailure)) >= 1 })
	if ev := e.Decide(ctx, &Input{}); ev.Decision.Reason != "v1" || ev.Revision != good {
		t.Fatalf("after a refused reload: %s from %s, want v1 from %s", ev.Decision.Reason, ev.Revision, good)
	}
	re := e.LastReloadError()
	if re == nil || len(re.Tests) != 1 {
		t.Fatalf("last refused reload: %+v", re)
	}
	if f := re.Tests[0]; f.Name != "data.portero.authz_test.test_reason" || f.File != "authz_test.rego" || f.Line != 5 {
		t.Fatalf("failing test: %+v", f)
	}
	if msg := re.Err.Error(); !strings.Contains(msg, "1 of 2 policy tests failed: data.portero.authz_test.test_reason (authz_test.rego:5)") {
		t.Fatalf("error: %s", msg)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues(reloadFailure)); got != 0 {
		t.Fatalf("a test failure counted as a compile failure: %v", got)
	}
	if l := logs.String(); !strings.Contains(l, `"msg":"policy reload refused; still serving the last good policy"`) ||
		!strings.Contains(l, `"failing_tests":["data.portero.authz_test.test_reason (authz_test.rego:5)"]`) ||
		!strings.Contains(l, `"result":"test_failure"`) {
		t.Fatalf("log: %s", l)
	}

	// The fix: the test follows the policy.
	writeFile(t, dir, "authz_test.rego", strings.Replace(gatedTests, "v1", "v2", 1))
	waitFor(t, func() bool { return e.Decide(ctx, &Input{}).Decision.Reason == "v2" })
	if e.LastReloadError() != nil {
		t.Fatal("the refused reload is still reported after a good one")
	}
	cancel()
	<-watching
}

// With the gate on, deleting the tests does not turn it off.
func TestGateStaysOnWithoutTests(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "authz.rego", gatedPolicy)
	writeFile(t, dir, "authz_test.rego", gatedTests)
	e, m, _ := newGatedEngine(t, EngineOptions{Source: DirSource(dir)})
	if err := os.Remove(filepath.Join(dir, "authz_test.rego")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "authz.rego", strings.Replace(gatedPolicy, "v1", "v2", 1))
	err := e.Reload(context.Background())
	var tf *TestsFailedError
	if !errors.As(err, &tf) || len(tf.Failures) != 0 || !strings.Contains(err.Error(), "has no tests") {
		t.Fatalf("reload without tests: %v", err)
	}
	if testutil.ToFloat64(m.reloads.WithLabelValues(reloadTestFailure)) != 1 || e.Decide(context.Background(), &Input{}).Decision.Reason != "v1" {
		t.Fatal("not refused")
	}
}

// The gate's settings: off serves a policy whose tests fail; required
// refuses a policy without tests; when-present serves one without tests.
func TestTestGateSettings(t *testing.T) {
	failing := fstest.MapFS{"authz.rego": {Data: []byte(gatedPolicy)},
		"authz_test.rego": {Data: []byte(strings.Replace(gatedTests, "v1", "v9", 1))}}
	untested := fstest.MapFS{"authz.rego": {Data: []byte(gatedPolicy)}}
	ctx := context.Background()
	cases := []struct {
		name string
		fsys fs.FS
		gate TestGate
		ok   bool
	}{
		{"off, failing", failing, TestsNotRequired, true},
		{"when present, failing", failing, TestsWhenPresent, false},
		{"required, failing", failing, TestsRequired, false},
		{"when present, no tests", untested, TestsWhenPresent, true},
		{"required, no tests", untested, TestsRequired, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEngineWith(ctx, EngineOptions{Source: Source{Name: "p", FS: tc.fsys}, Tests: tc.gate,
				Metrics: NewMetrics(prometheus.NewRegistry()), Log: quietLog()})
			if (err == nil) != tc.ok {
				t.Fatalf("NewEngineWith: %v", err)
			}
			// Load (portero check) decides the same.
			if _, err := Load(ctx, Source{Name: "p", FS: tc.fsys}, tc.gate); (err == nil) != tc.ok {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

// Tests that error (not only those that are false) fail the gate, and the
// revision of a test-gated load is the serving files' hash, as without the
// gate.
func TestGateCountsErroringTestsAndKeepsTheRevision(t *testing.T) {
	ctx := context.Background()
	erroring := fstest.MapFS{"authz.rego": {Data: []byte(gatedPolicy)},
		"authz_test.rego": {Data: []byte(gatedTests + "\ntest_conflict if {\n\tx := {\"a\": 1}\n\tto_number(\"nope\") == x.a\n}\n")}}
	_, err := Load(ctx, Source{Name: "p", FS: erroring}, TestsRequired)
	failed := FailedTests(err)
	if len(failed) != 1 || failed[0].Name != "data.portero.authz_test.test_conflict" || failed[0].Line != 9 {
		t.Fatalf("erroring test: %v", err)
	}
	passing := fstest.MapFS{"authz.rego": {Data: []byte(gatedPolicy)}, "authz_test.rego": {Data: []byte(gatedTests)}}
	gated, err := Load(ctx, Source{Name: "p", FS: passing}, TestsRequired)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Compile(ctx, Source{Name: "p", FS: passing})
	if err != nil {
		t.Fatal(err)
	}
	if gated.Revision != plain.Revision || gated.Tests != 2 || plain.Tests != 0 {
		t.Fatalf("gated %s (%d tests), compiled %s (%d)", gated.Revision, gated.Tests, plain.Revision, plain.Tests)
	}
}

// The embedded default policy is gated by default and passes its gate.
func TestDefaultPolicyPassesItsGate(t *testing.T) {
	e, _, _ := newGatedEngine(t, EngineOptions{Source: embedded()})
	if !e.TestsRequired() || e.Current().Tests < 50 {
		t.Fatalf("gate %v, %d tests", e.TestsRequired(), e.Current().Tests)
	}
}

// BenchmarkReloadDefaultPolicy is what a reload of the default policy
// costs without the test gate (compile) and with it (compile and run its
// tests on one CPU).
func BenchmarkReloadDefaultPolicy(b *testing.B) {
	for _, bc := range []struct {
		name string
		gate TestGate
	}{{"compile", TestsNotRequired}, {"compile-and-test", TestsRequired}} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := NewEngineWith(context.Background(), EngineOptions{Source: embedded(), Tests: bc.gate,
				Metrics: NewMetrics(prometheus.NewRegistry()), Log: quietLog()})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Reload(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type syncBuffer = testlog.Buffer

func newJSONLog(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
