package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policy.require_tests and policy.shadow_dir: defaults, paths relative to
// the file, and every refusal at file:line with the fix.
func TestPolicyTestGateAndShadow(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, files ...string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(p, f), []byte("package x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	mk("tested", "authz.rego", "authz_test.rego")
	mk("candidate", "authz.rego", "authz_test.rego")
	mk("untested", "authz.rego")
	mk("hidden", "authz.rego")
	mk("hidden/.old", "authz_test.rego")
	file := filepath.Join(dir, "gateway.yaml")

	cfg, err := Parse(file, []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.RequireTests != nil || cfg.Policy.ShadowDir != "" || cfg.Policy.WatchShadow() {
		t.Fatalf("defaults: %+v", cfg.Policy)
	}
	cfg, err = Parse(file, []byte(minimal+"policy:\n  dir: tested\n  shadow_dir: candidate\n  require_tests: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.ShadowDir != filepath.Join(dir, "candidate") || !cfg.Policy.WatchShadow() || !*cfg.Policy.RequireTests {
		t.Fatalf("parsed: %+v", cfg.Policy)
	}
	cfg, err = Parse(file, []byte(minimal+"policy:\n  shadow_dir: untested\n  watch: false\n  require_tests: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.WatchShadow() || *cfg.Policy.RequireTests {
		t.Fatalf("parsed: %+v", cfg.Policy)
	}

	cases := []struct{ name, policy, want string }{
		{"require_tests not a boolean", "  require_tests: yes\n", "gateway.yaml:9:18: policy.require_tests: expected true or false, got \"yes\""},
		{"require_tests without tests", "  dir: untested\n  require_tests: true\n", "gateway.yaml:10:18: policy.require_tests: \"" + filepath.Join(dir, "untested") + "\" has no *_test.rego files, so every load would be refused; add the policy's tests, or set require_tests: false"},
		{"tests only in a hidden directory", "  dir: hidden\n  require_tests: true\n", "policy.require_tests: \"" + filepath.Join(dir, "hidden") + "\" has no *_test.rego files"},
		{"shadow without tests", "  shadow_dir: untested\n  require_tests: true\n", "gateway.yaml:10:18: policy.require_tests: \"" + filepath.Join(dir, "untested") + "\" (policy.shadow_dir) has no *_test.rego files, so the shadow policy would never load"},
		{"shadow_dir missing", "  shadow_dir: nowhere\n", "gateway.yaml:9:15: policy.shadow_dir: \"" + filepath.Join(dir, "nowhere") + "\" is not a directory; give a directory of .rego files holding the candidate policy, or remove the key"},
		{"shadow_dir a file", "  shadow_dir: gateway.yaml\n", "policy.shadow_dir: \"" + file + "\" is not a directory"},
		{"shadow_dir is dir", "  dir: tested\n  shadow_dir: ./tested/\n", "gateway.yaml:10:15: policy.shadow_dir: \"" + filepath.Join(dir, "tested") + "\" is policy.dir itself"},
		{"shadow_dir not a string", "  shadow_dir: [a, b]\n", "gateway.yaml:9:15: policy.shadow_dir: expected a string, got a list"},
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(file, []byte(minimal+"policy:\n"+tc.policy))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}
