package config

import (
	"strings"
	"testing"
	"time"
)

func TestTracingOffByDefault(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing.On() {
		t.Errorf("tracing on without tracing.endpoint: %+v", cfg.Tracing)
	}
}

func TestTracingDefaultsAndValues(t *testing.T) {
	t.Setenv("PORTERO_TEST_OTLP_TOKEN", "t0ken")
	cases := []struct {
		src           string
		endpoint      string
		service       string
		fraction      float64
		timeout       time.Duration
		trust         bool
		authorization string
	}{
		{src: "tracing:\n  endpoint: http://127.0.0.1:4318\n",
			endpoint: "http://127.0.0.1:4318/v1/traces", service: "portero", fraction: 1, timeout: 10 * time.Second},
		{src: "tracing:\n  endpoint: https://otlp.example.com/\n",
			endpoint: "https://otlp.example.com/v1/traces", service: "portero", fraction: 1, timeout: 10 * time.Second},
		{src: "tracing:\n  endpoint: https://otlp.example.com/api/traces\n  service_name: edge\n  sample: 0.05\n  trust_incoming: true\n  timeout: 3s\n" +
			"  headers:\n    Authorization: Bearer ${PORTERO_TEST_OTLP_TOKEN}\n",
			endpoint: "https://otlp.example.com/api/traces", service: "edge", fraction: 0.05, timeout: 3 * time.Second, trust: true, authorization: "Bearer t0ken"},
		{src: "tracing:\n  endpoint: http://collector:4318\n  sample: 0\n",
			endpoint: "http://collector:4318/v1/traces", service: "portero", fraction: 0, timeout: 10 * time.Second},
	}
	for _, tc := range cases {
		cfg, err := Parse("gateway.yaml", []byte(minimal+tc.src))
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		tr := cfg.Tracing
		if !tr.On() || tr.Endpoint != tc.endpoint || tr.ServiceName != tc.service || tr.Fraction() != tc.fraction ||
			tr.Timeout != tc.timeout || tr.TrustIncoming != tc.trust || tr.Headers["Authorization"] != tc.authorization {
			t.Errorf("%s: %+v (fraction %v)", tc.src, tr, tr.Fraction())
		}
	}
}

func TestTracingErrorsNameTheKey(t *testing.T) {
	bad := map[string]string{
		"tracing:\n  sample: 0.5\n":                                         "gateway.yaml:9:3: tracing: tracing is configured but tracing.endpoint is not",
		"tracing:\n  endpoint: 127.0.0.1:4318\n":                            `gateway.yaml:9:13: tracing.endpoint: "127.0.0.1:4318" is not an http or https URL`,
		"tracing:\n  endpoint: grpc://collector:4317\n":                     `tracing.endpoint: "grpc://collector:4317" is not an http or https URL`,
		"tracing:\n  endpoint: http://user:pw@collector:4318\n":             `is not an http or https URL`,
		"tracing:\n  endpoint: http://collector:4318/v1/traces?x=1\n":       `tracing.endpoint: "http://collector:4318/v1/traces?x=1" has a query or fragment`,
		"tracing:\n  endpoint: http://c:4318\n  sample: 1.5\n":              "gateway.yaml:10:11: tracing.sample: must be between 0 and 1",
		"tracing:\n  endpoint: http://c:4318\n  sample: all\n":              `tracing.sample: expected a number such as 0.25, got "all"`,
		"tracing:\n  endpoint: http://c:4318\n  timeout: -1s\n":             "tracing.timeout: must not be negative",
		"tracing:\n  endpoint: http://c:4318\n  headers:\n    \"a b\": x\n": `gateway.yaml:11:12: tracing.headers.a b: "a b" is not a header name`,
		"tracing:\n  endpoint: http://c:4318\n  headers: [x]\n":             "tracing.headers: expected a mapping of names to values, got a list",
		"tracing:\n  endpoint: http://c:4318\n  protocol: grpc\n":           `tracing.protocol: unknown key "protocol"; expected one of: endpoint, headers, sample, service_name, timeout, trust_incoming`,
		"tracing:\n  endpoint: ${PORTERO_TEST_OTLP_UNSET}\n":                "tracing.endpoint: environment variable PORTERO_TEST_OTLP_UNSET is not set",
	}
	for extra, want := range bad {
		_, err := Parse("gateway.yaml", []byte(minimal+extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
}
