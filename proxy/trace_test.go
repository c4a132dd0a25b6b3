package proxy_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/proxy"
)

// A client's trace context: trace id, span id, sampled.
const (
	clientTraceID = "0af7651916cd43dd8448eb211c80319c"
	clientSpanID  = "b7ad6b7169203331"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// tracedGateway is the access-store gateway (every stage runs) exporting
// to an in-process OTLP receiver with more (indented) tracing keys.
func tracedGateway(t *testing.T, more string) (*harness, *gatewaytest.OTLPReceiver) {
	t.Helper()
	rcv := gatewaytest.NewOTLPReceiver(t)
	h, _ := gatewaytest.NewRecordingAccessWith(t, "\ntracing:\n  endpoint: "+rcv.URL+"\n"+more)
	return h, rcv
}

// exported stops the gateway's tracer provider, which exports every span
// still waiting, and returns what the receiver got.
func exported(t *testing.T, h *harness, rcv *gatewaytest.OTLPReceiver) []gatewaytest.ExportedSpan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, h.Tracing.Shutdown(ctx))
	return rcv.Spans()
}

func spanNamed(t *testing.T, spans []gatewaytest.ExportedSpan, name string) gatewaytest.ExportedSpan {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q in %v", name, spanNames(spans))
	return gatewaytest.ExportedSpan{}
}

func spanNames(spans []gatewaytest.ExportedSpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

// traceparentOf splits a W3C traceparent into trace id, parent id and
// flags.
func traceparentOf(t *testing.T, v string) (traceID, parentID, flags string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		t.Fatalf("not a traceparent: %q", v)
	}
	return p[1], p[2], p[3]
}

// decisionLine is the decision log line of the only decision made.
func decisionLine(t *testing.T, h *harness) map[string]any {
	t.Helper()
	for line := range strings.SplitSeq(h.Logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "decision" {
			return m
		}
	}
	t.Fatalf("no decision line in %s", h.Logs)
	return nil
}

// One allowed request: a server span with the decision's attributes, a
// child span per stage, and the upstream continuing the forward span.
func TestTracingOneRequest(t *testing.T) {
	t.Parallel()
	h, rcv := tracedGateway(t, "")
	rec := h.Do(t, "GET", "http://localhost/t/acme/billing", h.TokenFor(t, "avery"), nil, "")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	got := h.UpstreamSaw(t)
	spans := exported(t, h, rcv)
	if len(spans) != 5 {
		t.Fatalf("spans %v, want the request and its four stages", spanNames(spans))
	}

	server := spanNamed(t, spans, "GET app")
	line := decisionLine(t, h)
	for key, want := range map[string]string{
		"portero.decision_id":       line["decision_id"].(string),
		"portero.route":             "app",
		"portero.decision":          "allow",
		"portero.status":            "200",
		"portero.reason":            line["reason"].(string),
		"portero.check":             "false",
		"http.request.method":       "GET",
		"http.response.status_code": "200",
		"url.path":                  "/t/acme/billing",
		"server.address":            "localhost",
	} {
		if v := server.Attr(key); v != want {
			t.Errorf("server span %s = %q, want %q", key, v, want)
		}
	}
	if server.Kind != tracepb.Span_SPAN_KIND_SERVER || len(server.ParentSpanId) != 0 || server.Service != "portero" {
		t.Errorf("server span: kind %v, parent %x, service %q", server.Kind, server.ParentSpanId, server.Service)
	}
	for _, stage := range []string{"authenticate", "resolve access", "evaluate", "forward"} {
		s := spanNamed(t, spans, stage)
		if hex.EncodeToString(s.ParentSpanId) != hex.EncodeToString(server.SpanId) || hex.EncodeToString(s.TraceId) != hex.EncodeToString(server.TraceId) {
			t.Errorf("%s is not a child of the request's span", stage)
		}
		if s.StartTimeUnixNano < server.StartTimeUnixNano || s.EndTimeUnixNano > server.EndTimeUnixNano {
			t.Errorf("%s is not within the request's span", stage)
		}
	}
	if e := spanNamed(t, spans, "evaluate"); e.Attr("portero.policy_revision") == "" {
		t.Error("evaluate span has no policy revision")
	}
	forward := spanNamed(t, spans, "forward")
	if forward.Kind != tracepb.Span_SPAN_KIND_CLIENT || forward.Attr("http.response.status_code") != "200" {
		t.Errorf("forward span: kind %v, status %q", forward.Kind, forward.Attr("http.response.status_code"))
	}

	// The app continues Portero's trace, as a child of the forward span.
	traceID, parentID, flags := traceparentOf(t, got.Header.Get("Traceparent"))
	if traceID != hex.EncodeToString(server.TraceId) || parentID != hex.EncodeToString(forward.SpanId) || flags != "01" {
		t.Errorf("upstream traceparent %s-%s-%s, want trace %x, parent %x, sampled", traceID, parentID, flags, server.TraceId, forward.SpanId)
	}
}

// A client's traceparent: by default a claim Portero does not continue (a
// new trace, linked to the client's; the upstream never gets the client's
// header); with trust_incoming the trace is continued. Either way the
// upstream gets Portero's trace context.
func TestTracingIncomingTraceparent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		more  string
		spans int  // exported
		trust bool // the client's trace is continued
	}{
		{name: "ignored by default", spans: 5},
		{name: "continued with trust_incoming", more: "  trust_incoming: true\n", spans: 5, trust: true},
		// The client cannot have its requests recorded by claiming a
		// sampled parent: sample 0 records nothing...
		{name: "sample 0 records nothing", more: "  sample: 0\n", spans: 0},
		// ...unless its parent is trusted (the parent's sampled flag
		// decides, as OpenTelemetry's parent-based samplers do).
		{name: "a trusted sampled parent overrides sample 0", more: "  sample: 0\n  trust_incoming: true\n", spans: 5, trust: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, rcv := tracedGateway(t, tc.more)
			hdr := http.Header{"Traceparent": {clientParent}, "Tracestate": {"client=1"}}
			if rec := h.Do(t, "GET", "http://localhost/t/acme/billing", h.TokenFor(t, "avery"), hdr, ""); rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			got := h.UpstreamSaw(t)
			spans := exported(t, h, rcv)
			if len(spans) != tc.spans {
				t.Fatalf("exported %v, want %d spans", spanNames(spans), tc.spans)
			}
			upTrace, upParent, upFlags := traceparentOf(t, got.Header.Get("Traceparent"))
			if (upTrace == clientTraceID) != tc.trust || upParent == clientSpanID {
				t.Errorf("upstream traceparent %s: trace %s, client's %s, trusted %v", got.Header.Get("Traceparent"), upTrace, clientTraceID, tc.trust)
			}
			if tc.trust != (got.Header.Get("Tracestate") == "client=1") {
				t.Errorf("upstream tracestate %q, client's continued: %v", got.Header.Get("Tracestate"), tc.trust)
			}
			if tc.spans == 0 {
				if upFlags != "00" {
					t.Errorf("upstream traceparent flags %s, want 00 (not sampled)", upFlags)
				}
				return
			}
			server := spanNamed(t, spans, "GET app")
			forward := spanNamed(t, spans, "forward")
			if upTrace != hex.EncodeToString(server.TraceId) || upParent != hex.EncodeToString(forward.SpanId) {
				t.Errorf("upstream traceparent %s is not the forward span's", got.Header.Get("Traceparent"))
			}
			if tc.trust {
				if hex.EncodeToString(server.ParentSpanId) != clientSpanID {
					t.Errorf("server span's parent %x, want the client's %s", server.ParentSpanId, clientSpanID)
				}
				return
			}
			if len(server.ParentSpanId) != 0 || len(server.Links) != 1 ||
				hex.EncodeToString(server.Links[0].TraceId) != clientTraceID || hex.EncodeToString(server.Links[0].SpanId) != clientSpanID {
				t.Errorf("server span: parent %x, links %v; want a root linked to the client's span", server.ParentSpanId, server.Links)
			}
		})
	}
}

// Tracing off (the default): no span is made and the upstream receives the
// client's trace headers as they came, and none when the client sent none.
func TestTracingOffLeavesTraceHeadersAlone(t *testing.T) {
	t.Parallel()
	h, _ := gatewaytest.NewRecordingAccess(t)
	if h.Tracing != nil {
		t.Fatal("tracing on without tracing.endpoint")
	}
	tok := h.TokenFor(t, "avery")
	for _, hdr := range []http.Header{
		{},
		{"Traceparent": {clientParent}, "Tracestate": {"client=1"}},
		{"Traceparent": {"not a traceparent"}},
	} {
		if rec := h.Do(t, "GET", "http://localhost/t/acme/billing", tok, hdr, ""); rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		got := h.UpstreamSaw(t)
		for _, name := range []string{"Traceparent", "Tracestate"} {
			if g, w := got.Header.Values(name), hdr.Values(name); strings.Join(g, "|") != strings.Join(w, "|") {
				t.Errorf("%s: upstream got %q, client sent %q", name, g, w)
			}
		}
	}
}

// Refusals: the reason on the request's span, and no forward span.
func TestTracingRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, token  string
		status             int
		reason, decision   string
		spanName           string
		stages, notStarted []string
	}{
		{name: "denied by the policy", path: "/t/acme/reviews", token: "avery", status: 403, reason: "feature.not_granted", decision: "deny",
			spanName: "GET app", stages: []string{"authenticate", "resolve access", "evaluate"}},
		{name: "no token on an API route", path: "/t/acme/billing", status: 401, reason: "auth.required",
			spanName: "GET app", stages: []string{"authenticate"}, notStarted: []string{"resolve access", "evaluate"}},
		{name: "a bad token", path: "/t/acme/billing", token: "garbage", status: 401, reason: "auth.invalid",
			spanName: "GET app", stages: []string{"authenticate"}, notStarted: []string{"resolve access", "evaluate"}},
		{name: "refused before routing", path: "/t/acme/%2e%2e/billing", status: 400, reason: "request.bad_path",
			spanName: "GET", notStarted: []string{"authenticate", "resolve access", "evaluate"}},
		{name: "the control plane", path: "/.portero/no-such-page", status: 404, reason: "control.disabled",
			spanName: "GET control", notStarted: []string{"authenticate", "resolve access", "evaluate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, rcv := tracedGateway(t, "")
			token := tc.token
			if token != "" && token != "garbage" {
				token = h.TokenFor(t, token)
			}
			if rec := h.Do(t, "GET", "http://localhost"+tc.path, token, nil, ""); rec.Code != tc.status {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			spans := exported(t, h, rcv)
			server := spanNamed(t, spans, tc.spanName)
			if server.Attr("portero.reason") != tc.reason || server.Attr("portero.decision") != tc.decision ||
				server.Attr("http.response.status_code") != strconv.Itoa(tc.status) {
				t.Errorf("server span: reason %q, decision %q, status %q", server.Attr("portero.reason"), server.Attr("portero.decision"), server.Attr("http.response.status_code"))
			}
			if server.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
				t.Error("a refusal is the client's error, not the server's")
			}
			for _, stage := range tc.stages {
				spanNamed(t, spans, stage)
			}
			for _, name := range append(tc.notStarted, "forward") {
				for _, s := range spans {
					if s.Name == name {
						t.Errorf("span %q for a refused request", name)
					}
				}
			}
		})
	}
}

// Forward-auth checks get a server span too, refused ones included.
func TestTracingChecks(t *testing.T) {
	t.Parallel()
	h, rcv := tracedGateway(t, "")
	allowed := httptest.NewRequest("GET", "http://localhost/t/acme/billing", nil)
	allowed.Header.Set("Authorization", "Bearer "+h.TokenFor(t, "avery"))
	if c := h.Gateway.Check(allowed, proxy.CheckOptions{}); !c.Allowed {
		t.Fatalf("check refused: %d %s", c.Status, c.Body)
	}
	refused := httptest.NewRequest("GET", "http://localhost/t/acme//billing", nil)
	if c := h.Gateway.Check(refused, proxy.CheckOptions{}); c.Allowed {
		t.Fatal("a non-canonical path allowed")
	}
	untrusted := httptest.NewRequest("POST", "http://localhost/.portero/auth", nil)
	h.Gateway.Untrusted(untrusted, "http", "203.0.113.9:1234")
	spans := exported(t, h, rcv)
	check := spanNamed(t, spans, "check GET app")
	if check.Attr("portero.check") != "true" || check.Attr("portero.decision") != "allow" || check.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("check span: check %q, decision %q, kind %v", check.Attr("portero.check"), check.Attr("portero.decision"), check.Kind)
	}
	spanNamed(t, spans, "evaluate")
	r := spanNamed(t, spans, "check GET")
	if r.Attr("portero.reason") != "request.non_canonical_path" || r.Attr("http.response.status_code") != "400" || r.Attr("portero.decision_id") == "" {
		t.Errorf("refused check span: reason %q, status %q", r.Attr("portero.reason"), r.Attr("http.response.status_code"))
	}
	u := spanNamed(t, spans, "check POST")
	if u.Attr("portero.reason") != "forward_auth.untrusted_source" || u.Attr("http.response.status_code") != "403" {
		t.Errorf("untrusted check span: reason %q, status %q", u.Attr("portero.reason"), u.Attr("http.response.status_code"))
	}
	for _, s := range spans {
		if s.Name == "forward" {
			t.Error("a check has no forward stage: the front proxy forwards")
		}
	}
}

// Export headers come from the configuration, secrets from the
// environment; service_name names the resource.
func TestTracingExportHeadersAndServiceName(t *testing.T) {
	t.Setenv("PORTERO_TEST_OTLP_KEY", "s3cret-key")
	h, rcv := tracedGateway(t, "  service_name: edge-gateway\n  headers:\n    X-Api-Key: ${PORTERO_TEST_OTLP_KEY}\n")
	if rec := h.Do(t, "GET", "http://localhost/t/acme/billing", h.TokenFor(t, "avery"), nil, ""); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	h.UpstreamSaw(t)
	spans := exported(t, h, rcv)
	if len(spans) == 0 {
		t.Fatal("nothing exported")
	}
	if spans[0].Service != "edge-gateway" {
		t.Errorf("service.name %q, want edge-gateway", spans[0].Service)
	}
	for _, hdr := range rcv.Headers() {
		if hdr.Get("X-Api-Key") != "s3cret-key" {
			t.Errorf("export without the configured header: %v", hdr)
		}
	}
}

// BenchmarkRequestPathTraced is BenchmarkRequestPath with tracing on: every
// trace recorded and exported to an in-process receiver (the export runs
// in the background and its allocations count too), or none recorded
// (sample 0: spans are made but not recorded, the upstream still gets a
// traceparent).
func BenchmarkRequestPathTraced(b *testing.B) {
	for _, sample := range []string{"1", "0"} {
		b.Run("sample="+sample, func(b *testing.B) {
			rcv := gatewaytest.NewOTLPReceiver(b)
			h := newHarnessWith(b, nil, harnessOpts{Extra: "\ntracing:\n  endpoint: " + rcv.URL + "\n  sample: " + sample + "\n"})
			tok := h.Member(b)
			go func() {
				for range h.Got {
				}
			}()
			req := httptest.NewRequest("GET", "http://acme.apps.example.com/api/orders?page=2", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "bench")
			b.ReportAllocs()
			for b.Loop() {
				r := req.Clone(context.Background())
				rec := httptest.NewRecorder()
				h.Gateway.ServeHTTP(rec, r)
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body)
				}
			}
		})
	}
}
