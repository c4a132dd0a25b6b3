package config

import (
	"strings"
	"testing"
)

func TestShadowSample(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		sample string
		want   float64
		err    string
	}{
		{"", 1, ""},
		{"  shadow_sample: 0.25\n", 0.25, ""},
		{"  shadow_sample: 0\n", 0, "policy.shadow_sample: must be above 0"},
		{"  shadow_sample: 1.5\n", 0, "policy.shadow_sample: must be above 0"},
	} {
		cfg, err := Parse("gateway.yaml", []byte("oidc:\n  issuer: https://idp.example.com\n  audiences: [a]\nroutes:\n  - name: app\n    upstream: http://127.0.0.1:1\npolicy:\n  shadow_dir: "+dir+"\n  require_tests: false\n"+c.sample))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.sample, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.sample, err)
		case cfg.Policy.ShadowFraction() != c.want:
			t.Errorf("%q: fraction %v, want %v", c.sample, cfg.Policy.ShadowFraction(), c.want)
		}
	}
}
