package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policyConfig writes gateway.yaml (the example, plus policy) beside a
// policy directory holding files, and returns the configuration's path.
func policyConfig(t *testing.T, policy string, dirs map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, files := range dirs {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		for f, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := filepath.Join(dir, "gateway.yaml")
	src, err := os.ReadFile("../../gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(src, []byte("policy:\n"+policy)...), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

var (
	allowAll     = map[string]string{"authz.rego": "package portero.authz\n\ndecision := {\"allow\": true, \"reason\": \"v1\"}\n"}
	failingTests = map[string]string{
		"authz.rego":      allowAll["authz.rego"],
		"authz_test.rego": "package portero.authz_test\n\nimport data.portero.authz\n\ntest_reason if authz.decision.reason == \"v2\"\n\ntest_allow if authz.decision.allow\n",
	}
)

// A policy whose own tests fail does not start: serve and check exit 1
// naming the failing test and where it is, as a refused reload does.
func TestFailingPolicyTestsStopServeAndCheck(t *testing.T) {
	cfg := policyConfig(t, "  dir: policy\n", map[string]map[string]string{"policy": failingTests})
	want := "1 of 2 policy tests failed: data.portero.authz_test.test_reason (authz_test.rego:5)"
	for _, cmd := range []string{"check", "serve"} {
		out, code := runCLI(t, cmd, "-c", cfg)
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("%s: %d %s", cmd, code, out)
		}
	}
	// Not required: served, tests or not.
	cfg = policyConfig(t, "  dir: policy\n  require_tests: false\n", map[string]map[string]string{"policy": failingTests})
	if out, code := runCLI(t, "check", "-c", cfg); code != 0 || strings.Contains(out, "tests passed") {
		t.Fatalf("check without the gate: %d %s", code, out)
	}
}

// check reports the tests that gated the policy and loads the shadow
// policy as serve would; a shadow that fails its tests fails check.
func TestCheckReportsTestsAndShadow(t *testing.T) {
	out, code := runCLI(t, "check", "-c", "../../gateway.yaml")
	if code != 0 || !strings.Contains(out, "tests passed)") {
		t.Fatalf("%d %s", code, out)
	}
	cfg := policyConfig(t, "  shadow_dir: candidate\n", map[string]map[string]string{"candidate": allowAll})
	if out, code := runCLI(t, "check", "-c", cfg); code != 0 || !strings.Contains(out, "tests passed, shadow policy ") || !strings.Contains(out, "candidate revision") {
		t.Fatalf("%d %s", code, out)
	}
	cfg = policyConfig(t, "  shadow_dir: candidate\n", map[string]map[string]string{"candidate": failingTests})
	if out, code := runCLI(t, "check", "-c", cfg); code != 1 || !strings.Contains(out, "policy.shadow_dir: load policy") || !strings.Contains(out, "test_reason (authz_test.rego:5)") {
		t.Fatalf("%d %s", code, out)
	}
}
