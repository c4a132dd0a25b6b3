package proxy

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/policy"
)

// requestTracer makes the request path's spans (tracing: in gateway.yaml):
// a server span per request or check, a child span per stage
// (authenticate, resolve access, evaluate, forward), and the W3C trace
// context on the request to the upstream. Its zero value is tracing off:
// every method returns at once, allocates nothing and changes no header.
type requestTracer struct {
	tracer trace.Tracer // nil: tracing off
	// trustIncoming continues a client's traceparent; otherwise each
	// request starts a trace of its own, linked to the client's.
	trustIncoming bool
}

// tracerName is the instrumentation scope of Portero's spans.
const tracerName = "github.com/portero-gateway/portero/proxy"

func newRequestTracer(tp trace.TracerProvider, trustIncoming bool) requestTracer {
	if tp == nil {
		return requestTracer{}
	}
	return requestTracer{tracer: tp.Tracer(tracerName), trustIncoming: trustIncoming}
}

// start begins the server span of a request (of a check when check is set:
// another proxy asks about a request it forwards itself) and returns the
// context that carries it.
//
// A client's traceparent is only a claim: on the public edge believing it
// would let any client choose the trace id and, through its sampled flag,
// have every one of its requests recorded. So unless tracing.trust_incoming
// is on (the client is a proxy that traces, and overwrites what its clients
// send), the span starts a trace of its own with a link to the client's.
func (t requestTracer) start(r *http.Request, id string, check bool) (context.Context, requestSpan) {
	if t.tracer == nil {
		return r.Context(), requestSpan{}
	}
	name := r.Method
	if check {
		name = "check " + r.Method
	}
	parent, opts := r.Context(), []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	if incoming := incomingSpanContext(r.Header); incoming.IsValid() {
		if t.trustIncoming {
			parent = trace.ContextWithRemoteSpanContext(parent, incoming)
		} else {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: incoming}))
		}
	}
	ctx, span := t.tracer.Start(parent, name, opts...)
	s := requestSpan{span: span, name: name}
	if s.recording() { // attributes only for spans that are kept: an unsampled request builds none
		span.SetAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("portero.decision_id", id),
			attribute.Bool("portero.check", check),
		)
	}
	return ctx, s
}

// incomingSpanContext is the client's W3C trace context, invalid when it
// sent none (or a malformed one).
func incomingSpanContext(h http.Header) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
}

// refusedCheck records a check refused before its stages run (an
// untrusted source, a request the front proxy could not forward as
// decided; see Check and refuse): a server span with the refusal.
func (t requestTracer) refusedCheck(r *http.Request, d deny.Denial) {
	if t.tracer == nil {
		return
	}
	_, s := t.start(r, d.ID, true)
	s.end(d.Status, d.Reason)
}

// stage begins the child span of one stage of the request in ctx.
//
// A stage of a request whose span is not recorded (tracing off, or the
// trace not sampled) gets no span: it would not be recorded either.
func (t requestTracer) stage(ctx context.Context, name string) (context.Context, stageSpan) {
	if t.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, stageSpan{}
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal))
	return ctx, stageSpan{span: span}
}

// forwarding begins the forward stage's client span: the request to the
// upstream carries it (see inject). Tracing off or the trace not sampled,
// r is returned as it is (an unsampled request's upstream gets the request
// span's context).
func (t requestTracer) forwarding(r *http.Request) (*http.Request, stageSpan) {
	if t.tracer == nil || !trace.SpanFromContext(r.Context()).IsRecording() {
		return r, stageSpan{}
	}
	ctx, span := t.tracer.Start(r.Context(), "forward", trace.WithSpanKind(trace.SpanKindClient))
	return r.WithContext(ctx), stageSpan{span: span}
}

// inject writes the trace context of the forward span on the request to
// the upstream, replacing whatever traceparent and tracestate the client
// sent: the app continues Portero's trace, never one a client claimed.
// Tracing off, the headers pass as they came.
func (t requestTracer) inject(ctx context.Context, out http.Header) {
	if t.tracer == nil {
		return
	}
	out.Del("Traceparent")
	out.Del("Tracestate")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(out))
}

// requestSpan is a request's server span; its zero value (tracing off)
// does nothing.
type requestSpan struct {
	span trace.Span
	name string
}

// recording says whether the span is kept (tracing on, the trace sampled).
func (s requestSpan) recording() bool { return s.span != nil && s.span.IsRecording() }

// routed names the span after the route (low cardinality, unlike the path)
// and records the canonical host and path.
func (s requestSpan) routed(route, host, path string) {
	if !s.recording() {
		return
	}
	s.span.SetName(s.name + " " + route)
	s.span.SetAttributes(
		attribute.String("portero.route", route),
		attribute.String("server.address", host),
		attribute.String("url.path", path),
	)
}

// decided records the policy's decision.
func (s requestSpan) decided(d policy.Decision) {
	if !s.recording() {
		return
	}
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	s.span.SetAttributes(
		attribute.String("portero.decision", decision),
		attribute.Int("portero.status", d.Status),
		attribute.String("portero.reason", d.Reason),
	)
}

// end records the response's status and the reason id of Portero's
// refusal, if it answered with one, and ends the span. A 5xx is an error;
// a 4xx is the client's, not the server's (OpenTelemetry's HTTP
// conventions).
func (s requestSpan) end(status int, refusal string) {
	if s.span == nil {
		return
	}
	defer s.span.End()
	if !s.span.IsRecording() {
		return
	}
	s.span.SetAttributes(attribute.Int("http.response.status_code", status))
	if refusal != "" {
		s.span.SetAttributes(attribute.String("portero.reason", refusal))
	}
	if status >= 500 {
		s.span.SetStatus(codes.Error, strconv.Itoa(status))
	}
}

// stageSpan is one stage's span; its zero value does nothing.
type stageSpan struct{ span trace.Span }

func (s stageSpan) recording() bool { return s.span != nil && s.span.IsRecording() }

// fail marks the stage failed (the store unreadable, the policy in error).
func (s stageSpan) fail(err error) {
	if err == nil || !s.recording() {
		return
	}
	s.span.SetStatus(codes.Error, err.Error())
}

// evaluated records what the evaluate stage used.
func (s stageSpan) evaluated(ev policy.Evaluation) {
	if !s.recording() {
		return
	}
	s.span.SetAttributes(
		attribute.String("portero.policy_revision", ev.Revision),
		attribute.Bool("portero.cached", ev.Cached),
	)
	s.fail(ev.Err)
}

// responded records the upstream's status (or Portero's 502/504) on the
// forward span.
func (s stageSpan) responded(status int) {
	if !s.recording() {
		return
	}
	s.span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		s.span.SetStatus(codes.Error, strconv.Itoa(status))
	}
}

func (s stageSpan) end() {
	if s.span != nil {
		s.span.End()
	}
}
