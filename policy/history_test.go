package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The engine remembers the revisions it served, newest first, with the
// files each reload added, removed and changed and their diffs; a refused
// reload and a reload of the same files add nothing; it keeps the last 10.
// The test gate's coverage comes with the policy served.
func TestEngineHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "authz.rego", gatedPolicy)
	writeFile(t, dir, "authz_test.rego", gatedTests)
	e, _, _ := newGatedEngine(t, EngineOptions{Source: DirSource(dir)})
	ctx := context.Background()
	c := e.Current()
	<-c.CoverageMeasured()
	if cov, ok := c.TestsCoverage(); c.Tests != 2 || !ok || cov <= 0 || cov > 100 {
		t.Fatalf("tests %d, coverage %.1f%% (%v)", c.Tests, cov, ok)
	}
	first := e.Current().Revision
	if h := e.History(); len(h) != 1 || h[0].ID != first || h[0].Source != dir || len(h[0].Diffs) != 0 {
		t.Fatalf("first history: %+v", h)
	}

	// Same files: nothing new. A refused reload: nothing new.
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "authz.rego", "package portero.authz\n\ndecision := {")
	if err := e.Reload(ctx); err == nil {
		t.Fatal("broken policy loaded")
	}
	if h := e.History(); len(h) != 1 {
		t.Fatalf("history after a no-op and a refused reload: %+v", h)
	}
	if re := e.LastReloadError(); re == nil || len(re.Errors) == 0 || re.Errors[0].File != "authz.rego" || re.Errors[0].Line != 3 ||
		re.Errors[0].Column != 13 || re.Errors[0].Code != "rego_parse_error" {
		t.Fatalf("refused reload's errors: %+v", re)
	}
	writeFile(t, dir, "authz.rego", "package portero.authz\n\ndecision := {\"allow\": undefined_thing}\n")
	if err := e.Reload(ctx); err == nil {
		t.Fatal("policy with an unsafe var loaded")
	}
	if re := e.LastReloadError(); len(re.Errors) != 1 || re.Errors[0].File != "authz.rego" || re.Errors[0].Line != 3 || re.Errors[0].Column == 0 {
		t.Fatalf("compile errors: %+v", re.Errors)
	}

	v2 := strings.Replace(gatedPolicy, "v1", "v2", 1)
	writeFile(t, dir, "authz.rego", v2)
	writeFile(t, dir, "authz_test.rego", strings.Replace(gatedTests, "v1", "v2", 1))
	writeFile(t, dir, "data.json", `{"x": 1}`)
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	h := e.History()
	if len(h) != 2 || h[0].ID != e.Current().Revision || h[1].ID != first {
		t.Fatalf("history: %+v", h)
	}
	r := h[0]
	if !slices.Equal(r.Added, []string{"data.json"}) || len(r.Removed) != 0 ||
		!slices.Equal(r.Changed, []string{"authz.rego", "authz_test.rego"}) || len(r.Diffs) != 3 || r.Truncated {
		t.Fatalf("revision: %+v", r)
	}
	want := "--- a/authz.rego\n+++ b/authz.rego\n@@ -1,3 +1,3 @@\n package portero.authz\n \n-decision := {\"allow\": true, \"reason\": \"v1\"}\n+decision := {\"allow\": true, \"reason\": \"v2\"}\n"
	if r.Diffs[0].File != "authz.rego" || r.Diffs[0].Diff != want {
		t.Fatalf("diff of authz.rego:\n%s\nwant:\n%s", r.Diffs[0].Diff, want)
	}
	if d := r.Diffs[2]; d.File != "data.json" || !strings.HasPrefix(d.Diff, "--- /dev/null\n+++ b/data.json\n@@ -0,0 +1 @@\n+{\"x\": 1}\n") {
		t.Fatalf("diff of data.json: %+v", d)
	}

	if err := os.Remove(filepath.Join(dir, "data.json")); err != nil {
		t.Fatal(err)
	}
	for i := range maxRevisions + 2 {
		writeFile(t, dir, "authz.rego", v2+fmt.Sprintf("\nx := %d\n", i))
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h = e.History()
	if len(h) != maxRevisions || h[0].ID != e.Current().Revision {
		t.Fatalf("history keeps %d revisions, want %d", len(h), maxRevisions)
	}
}

func TestUnifiedDiff(t *testing.T) {
	t.Parallel()
	lines := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i) + "\n")
		}
		return b.String()
	}
	base := lines(20, func(i int) string { return fmt.Sprint(i) })
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"same", base, base, "--- a/f\n+++ b/f\n"},
		{"one line changed", base, strings.Replace(base, "\n10\n", "\nten\n", 1),
			"--- a/f\n+++ b/f\n@@ -8,7 +8,7 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n 12\n 13\n"},
		{"two hunks", base, strings.Replace(strings.Replace(base, "\n1\n", "\none\n", 1), "\n18\n", "\n18\nnew\n", 1),
			"--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n 0\n-1\n+one\n 2\n 3\n 4\n@@ -17,4 +17,5 @@\n 16\n 17\n 18\n+new\n 19\n"},
		{"removed at the start", "a\nb\n", "b\n", "--- a/f\n+++ b/f\n@@ -1,2 +1 @@\n-a\n b\n"},
	} {
		if got := unifiedDiff("f", []byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
	if got := unifiedDiff("f", []byte("a\n"), nil); got != "--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n" {
		t.Errorf("removed file:\n%s", got)
	}
	big := lines(3000, func(i int) string { return fmt.Sprint("a", i) })
	other := lines(3000, func(i int) string { return fmt.Sprint("b", i) })
	if got := unifiedDiff("f", []byte(big), []byte(other)); !strings.Contains(got, "too large a change to show") {
		t.Errorf("large change: %.200s", got)
	}
}
