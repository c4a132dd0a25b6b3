package config

import (
	"net/url"
	"regexp"
	"time"
)

// Tracing exports OpenTelemetry traces of the request path over OTLP/HTTP.
// It is off unless Endpoint is set.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP URL: a base URL such as
	// http://otel-collector:4318 (/v1/traces is added) or the full traces
	// URL. https sends over TLS with the system's roots.
	Endpoint string `yaml:"endpoint"`
	// ServiceName is the resource's service.name (default portero).
	ServiceName string `yaml:"service_name"`
	// Sample is the fraction of new traces recorded, 0 to 1 (absent: 1).
	Sample *float64 `yaml:"sample"`
	// TrustIncoming continues the trace of a client's traceparent (and
	// follows its sampled flag). Off, every request starts a trace of its
	// own, linked to the client's; the upstream always gets Portero's.
	TrustIncoming bool `yaml:"trust_incoming"`
	// Headers are sent with every export, e.g. an API key; write secrets as
	// ${VAR} so they come from the environment.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one export (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// On says whether tracing is configured.
func (t Tracing) On() bool { return t.Endpoint != "" }

// Fraction is the share of new traces sampled: Sample, 1 when absent.
func (t Tracing) Fraction() float64 {
	if t.Sample == nil {
		return 1
	}
	return *t.Sample
}

// tracesPath is where OTLP/HTTP receivers take traces.
const tracesPath = "/v1/traces"

// exportHeaderName is an HTTP field name (RFC 9110 token).
var exportHeaderName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func (v validator) tracing(t *Tracing) {
	if !t.On() {
		if t.Sample != nil || t.ServiceName != "" || t.TrustIncoming || len(t.Headers) > 0 || t.Timeout != 0 {
			v.at("tracing", "tracing is configured but tracing.endpoint is not: add the collector's OTLP/HTTP URL, e.g. endpoint: http://127.0.0.1:4318")
		}
		return
	}
	u, err := url.Parse(t.Endpoint)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		v.at("tracing.endpoint", "%q is not an http or https URL; give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318", t.Endpoint)
	case u.RawQuery != "" || u.Fragment != "":
		v.at("tracing.endpoint", "%q has a query or fragment; give the collector's OTLP/HTTP URL without one", t.Endpoint)
	case u.Path == "" || u.Path == "/":
		u.Path = tracesPath // OTEL_EXPORTER_OTLP_ENDPOINT's rule: a base URL gets the signal's path
		t.Endpoint = u.String()
	}
	if t.ServiceName == "" {
		t.ServiceName = "portero"
	}
	if s := t.Sample; s != nil && !(*s >= 0 && *s <= 1) {
		v.at("tracing.sample", "must be between 0 and 1 (the fraction of new traces recorded), got %v", *s)
	}
	for name, val := range t.Headers {
		if !exportHeaderName.MatchString(name) {
			v.at("tracing.headers."+name, "%q is not a header name", name)
		} else if !validFieldValue(val) {
			v.at("tracing.headers."+name, "the value has control characters; give the header's value on one line")
		}
	}
	if t.Timeout == 0 {
		t.Timeout = 10 * time.Second
	}
}

func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
