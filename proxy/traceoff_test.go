package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/policy"
)

// Tracing off, the tracer's zero value is all the request path touches:
// it allocates nothing, returns the request and context it was given, and
// leaves the client's trace headers alone.
func TestTracingOffCostsNothing(t *testing.T) {
	var tr requestTracer
	r := httptest.NewRequest("GET", "http://localhost/x", nil)
	r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	out := http.Header{"Traceparent": {"client"}}
	ev := policy.Evaluation{Decision: policy.Decision{Allow: true, Status: 200}}
	failed := errors.New("store down")
	allocs := testing.AllocsPerRun(100, func() {
		ctx, span := tr.start(r, "id", false)
		span.routed("app", "localhost", "/x")
		_, s := tr.stage(ctx, "evaluate")
		s.fail(failed)
		s.evaluated(ev)
		s.end()
		span.decided(ev.Decision)
		fr, fwd := tr.forwarding(r)
		tr.inject(fr.Context(), out)
		fwd.responded(200)
		fwd.end()
		span.end(200, "")
		tr.refusedCheck(r, deny.Denial{Status: 400, Reason: "request.bad_path"})
		if ctx != r.Context() || fr != r {
			t.Fatal("tracing off changed the request or its context")
		}
	})
	if allocs != 0 {
		t.Errorf("tracing off: %v allocations per request, want 0", allocs)
	}
	if out.Get("Traceparent") != "client" {
		t.Errorf("tracing off changed the upstream's traceparent: %q", out.Get("Traceparent"))
	}
}

// BenchmarkTracingOff is what the request path spends on tracing when it
// is off: the calls serve and the forwarder make on the zero tracer.
func BenchmarkTracingOff(b *testing.B) {
	var tr requestTracer
	r := httptest.NewRequest("GET", "http://localhost/x", nil)
	out := http.Header{}
	d := policy.Decision{Allow: true, Status: 200}
	b.ReportAllocs()
	for b.Loop() {
		ctx, span := tr.start(r, "id", false)
		span.routed("app", "localhost", "/x")
		_, s := tr.stage(ctx, "authenticate")
		s.end()
		_, s = tr.stage(ctx, "resolve access")
		s.end()
		_, s = tr.stage(ctx, "evaluate")
		s.end()
		span.decided(d)
		fr, fwd := tr.forwarding(r)
		tr.inject(fr.Context(), out)
		fwd.responded(200)
		fwd.end()
		span.end(200, "")
	}
}
