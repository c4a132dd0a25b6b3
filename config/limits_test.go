package config

import (
	"strings"
	"testing"
)

func TestLimitsDefaultsAndOverrides(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits != DefaultLimits {
		t.Errorf("defaults: %+v", cfg.Limits)
	}
	cfg, err = Parse("gateway.yaml", []byte(minimal+"limits:\n  sign_in: {per_minute: 5}\n  management_writes: {per_minute: 600, burst: 100}\n  max_clients: 50\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Limits
	if l.SignIn != (Rate{PerMinute: 5, Burst: 5}) || l.ManagementWrites != (Rate{PerMinute: 600, Burst: 100}) || l.MaxClients != 50 || l.Callback != DefaultLimits.Callback {
		t.Errorf("overrides: %+v", l)
	}
}

func TestLimitsErrorsNameTheKey(t *testing.T) {
	bad := map[string]string{
		"limits:\n  sign_in: {per_minute: -1}\n":            "gateway.yaml:9:25: limits.sign_in.per_minute: must be between 1 and 1000000",
		"limits:\n  callback:\n    burst: -3\n":             "gateway.yaml:10:12: limits.callback.burst: must be between 1 and 100000",
		"limits:\n  master_access: {per_minute: 2000000}\n": "limits.master_access.per_minute",
		"limits:\n  audited_refusals: {burst: 1000000}\n":   "limits.audited_refusals.burst",
		"limits:\n  max_clients: -1\n":                      "limits.max_clients: must be between 1 and 10000000",
		"limits:\n  management_writes: {per_minute: 1.5}\n": "limits.management_writes.per_minute: expected a whole number",
		"limits:\n  sign_in: {rate: 5}\n":                   `limits.sign_in.rate: unknown key "rate"; expected one of: burst, per_minute`,
	}
	for extra, want := range bad {
		_, err := Parse("gateway.yaml", []byte(minimal+extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
}
