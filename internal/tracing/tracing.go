// Package tracing builds the OpenTelemetry tracer provider of tracing: in
// gateway.yaml: the SDK, a batch of spans exported over OTLP/HTTP, and the
// sampler. The request path (package proxy) makes the spans through the
// provider it is given; nothing here is global.
package tracing

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/portero-gateway/portero/config"
)

// Provider is the tracer provider of a configuration with tracing on. A nil
// *Provider is tracing off: TracerProvider is nil and Shutdown does
// nothing.
type Provider struct {
	sdk *sdktrace.TracerProvider
}

// New builds the provider for cfg, nil when tracing is off. Spans are
// batched in memory (at most 2048 waiting; more are dropped, never
// waited for) and exported in the background; version is the resource's
// service.version. Export failures are logged on log.
func New(cfg config.Tracing, version string, log *slog.Logger) (*Provider, error) {
	if !cfg.On() {
		return nil, nil
	}
	// gateway.yaml's keys win over the exporter's OTEL_EXPORTER_OTLP_*
	// variables; those still give what it has no key for, such as a
	// private CA (OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE).
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(cfg.Endpoint),
		otlptracehttp.WithTimeout(cfg.Timeout),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", version),
	)
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		// A parent's sampled flag decides for the trace it belongs to (only
		// a client's when tracing.trust_incoming is on: otherwise the
		// request path starts every trace itself); a new trace is kept with
		// the probability tracing.sample.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Fraction()))),
		sdktrace.WithBatcher(loggedExporter{SpanExporter: exp, log: log, endpoint: cfg.Endpoint}),
	)
	return &Provider{sdk: sdk}, nil
}

// TracerProvider is what the request path makes spans with; nil when
// tracing is off.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.sdk
}

// Shutdown exports the spans still waiting, within ctx's deadline, and
// stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans on shutdown: %w", err)
	}
	return nil
}

// loggedExporter logs a failed export on the gateway's log rather than
// through OpenTelemetry's global error handler; the batch is dropped (the
// exporter has already retried it).
type loggedExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	endpoint string
}

func (e loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.log.Warn("tracing: spans not exported; dropped", "endpoint", e.endpoint, "spans", len(spans), "error", err.Error())
	}
	return nil
}
