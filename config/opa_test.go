package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policy.bundle, policy.decision_logs and policy.status: defaults, the
// key and tokens read once, and every mistake named at its line.
func TestOPAManagementConfig(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(pub, []byte("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(dir, "private.pem")
	if err := os.WriteFile(priv, []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTERO_TEST_BUNDLE_TOKEN", "s3cret")
	file := filepath.Join(dir, "gateway.yaml")
	good := minimal + `policy:
  bundle:
    url: https://bundles.example.com
    token_env: PORTERO_TEST_BUNDLE_TOKEN
    long_polling_timeout: 30s
    signing: {public_key_file: bundle.pem, key_id: portero}
    persist_dir: state
  decision_logs:
    url: https://collector.example.com
  status:
    url: http://127.0.0.1:8181
`
	cfg, err := Parse(file, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Policy.Bundle
	if b.Token != "s3cret" || b.Resource != "bundles/portero.tar.gz" || b.StartTimeout != 30*time.Second ||
		b.PersistDir != filepath.Join(dir, "state") || b.Signing.Algorithm != "RS256" || !strings.Contains(string(b.Signing.PublicKey), "PUBLIC KEY") {
		t.Errorf("bundle = %+v, signing %+v", b, b.Signing)
	}
	if cfg.Policy.DecisionLogs.Resource != "/logs" || cfg.Policy.Status.Interval != time.Minute || !cfg.Policy.OPAManagement() {
		t.Errorf("decision logs %+v, status %+v", cfg.Policy.DecisionLogs, cfg.Policy.Status)
	}

	cases := []struct{ name, src, want string }{
		{"dir and bundle", minimal + "policy:\n  dir: .\n  bundle: {url: https://b.example.com}\n", `gateway.yaml:10:11: policy.bundle: policy.dir and policy.bundle are both set`},
		{"no url", minimal + "policy:\n  bundle: {resource: x}\n", `gateway.yaml:9:11: policy.bundle.url: is required`},
		{"plain http elsewhere", minimal + "policy:\n  bundle: {url: http://b.example.com}\n", `policy.bundle.url: "http://b.example.com" is plain http to another host`},
		{"credentials in the url", minimal + "policy:\n  decision_logs: {url: \"https://u:p@c.example.com\"}\n", `policy.decision_logs.url: "https://u:p@c.example.com" is not an http or https URL (credentials go in token_env`},
		{"token in token_env", minimal + "policy:\n  status: {url: https://s.example.com, token_env: \"abc.def\"}\n", `policy.status.token_env: "abc.def" is not an environment variable name`},
		{"unset token", minimal + "policy:\n  bundle: {url: https://b.example.com, token_env: PORTERO_TEST_UNSET_TOKEN}\n", `policy.bundle.token_env: environment variable PORTERO_TEST_UNSET_TOKEN is not set`},
		{"half the delays", minimal + "policy:\n  bundle: {url: https://b.example.com, min_delay: 10s}\n", `policy.bundle.min_delay: min_delay and max_delay must both be set`},
		{"delays reversed", minimal + "policy:\n  decision_logs: {url: https://c.example.com, min_delay: 10s, max_delay: 5s}\n", `policy.decision_logs.max_delay: 5s is below min_delay 10s`},
		{"sub-second long poll", minimal + "policy:\n  bundle: {url: https://b.example.com, long_polling_timeout: 500ms}\n", `policy.bundle.long_polling_timeout: must be at least 1s`},
		{"private signing key", minimal + "policy:\n  bundle:\n    url: https://b.example.com\n    signing: {public_key_file: private.pem}\n", `policy.bundle.signing.public_key_file: "` + priv + `" holds a private key`},
		{"missing signing key", minimal + "policy:\n  bundle:\n    url: https://b.example.com\n    signing: {key_id: k}\n", `gateway.yaml:11:14: policy.bundle.signing.public_key_file: is required`},
		{"unknown algorithm", minimal + "policy:\n  bundle:\n    url: https://b.example.com\n    signing: {public_key_file: bundle.pem, algorithm: none}\n", `policy.bundle.signing.algorithm: unknown algorithm "none"`},
		{"negative buffer", minimal + "policy:\n  decision_logs: {url: https://c.example.com, buffer_events: -1}\n", `policy.decision_logs.buffer_events: must be positive`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(file, []byte(tc.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.src)
			}
			if got := strings.ReplaceAll(err.Error(), file, "gateway.yaml"); !strings.Contains(got, tc.want) {
				t.Fatalf("error:\n%s\nwant it to contain:\n%s", got, tc.want)
			}
		})
	}
}
