package opamgmt

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"

	"github.com/portero-gateway/portero/policy"
)

// LogsOptions configure decision logs to a collector
// (policy.decision_logs), in OPA's decision_logs format: batches of events
// as a gzipped JSON array POSTed to Resource.
type LogsOptions struct {
	Service Service
	// Resource is the path decisions are POSTed to (default /logs).
	Resource string
	// MinDelay and MaxDelay bound the wait between two uploads (whole
	// seconds; default 5s to 10s). A failed upload is retried with
	// exponential backoff up to MaxDelay, the batch kept.
	MinDelay, MaxDelay time.Duration
	// BufferEvents bounds the decisions waiting to be sent; beyond it the
	// oldest are dropped and counted (default 10,000).
	BufferEvents int64
	// UploadBytes bounds one gzipped batch (default 32 KiB, OPA's).
	UploadBytes int64
}

// decisionPath is the decision's path as OPA names it in its events: the
// entry point without "data.".
var decisionPath = strings.ReplaceAll(strings.TrimPrefix(policy.Query, "data."), ".", "/")

func newLogsPlugin(m *plugins.Manager, o LogsOptions, trigger *plugins.TriggerMode) (*logs.Plugin, error) {
	if o.Resource == "" {
		o.Resource = "/logs"
	}
	if o.MinDelay == 0 && o.MaxDelay == 0 {
		o.MinDelay, o.MaxDelay = 5*time.Second, 10*time.Second
	}
	if o.BufferEvents == 0 {
		o.BufferEvents = 10000
	}
	reporting := map[string]any{
		"buffer_type":              "event",
		"buffer_size_limit_events": o.BufferEvents,
		"min_delay_seconds":        max(int64(o.MinDelay/time.Second), 1),
		"max_delay_seconds":        max(int64(o.MaxDelay/time.Second), int64(o.MinDelay/time.Second), 1),
		"trigger":                  *trigger,
	}
	if o.UploadBytes > 0 {
		reporting["upload_size_limit_bytes"] = o.UploadBytes
	}
	cfg, err := logs.NewConfigBuilder().
		WithBytes(mustJSON(map[string]any{"service": logsService, "resource": o.Resource, "reporting": reporting})).
		WithServices(m.Services()).
		WithTriggerMode(trigger).
		Parse()
	if err != nil {
		return nil, fmt.Errorf("policy.decision_logs: %w", err)
	}
	return logs.New(cfg, m), nil
}

// recordQueue is how many decisions may wait for the decision-log
// plugin. OPA's plugin turns each event into an AST for its mask and drop
// policies (about 100 µs of CPU for a typical input), so that work is done
// off the request, by one goroutine; the queue only fills when that
// goroutine cannot keep up, and what does not fit is dropped and counted.
const recordQueue = 1024

// queued is a decision waiting for the plugin, or (rec nil) a marker whose
// done is closed when everything queued before it has been handed over.
type queued struct {
	rec  *policy.DecisionRecord
	done chan struct{}
}

// Record queues a decision for the collector (policy.DecisionRecorder).
// It never blocks: a full queue drops the decision, a full plugin buffer
// (the collector down or slow) the oldest one, each counted in
// portero_decision_logs_dropped_total.
func (c *Client) Record(_ context.Context, d *policy.DecisionRecord) {
	if c.logs == nil {
		return
	}
	select {
	case c.queue <- queued{rec: d}:
	default:
		c.queueDrops.Add(1)
	}
}

// handOver feeds queued decisions to OPA's plugin until ctx ends (Stop).
// The queue is never closed: a request still finishing after the shutdown
// grace records into it, without a panic, and is dropped.
func (c *Client) handOver(ctx context.Context) {
	defer c.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-c.queue:
			if q.rec == nil {
				close(q.done)
				continue
			}
			c.log1(q.rec)
		}
	}
}

// handedOver returns once every decision queued so far is in the
// plugin's buffer.
func (c *Client) handedOver(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case c.queue <- queued{done: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// log1 hands one decision to OPA's decision_logs plugin as OPA's server
// would.
func (c *Client) log1(d *policy.DecisionRecord) {
	ctx := context.Background()
	input, result := any(d.Input), any(d.Result)
	info := &server.Info{
		DecisionID: d.ID,
		Path:       decisionPath,
		Timestamp:  d.At.UTC(),
		Input:      &input,
		Results:    &result,
		Error:      d.Err,
		Metrics:    evalMetrics{Metrics: metrics.NoOp(), d: d.Duration, cached: d.Cached},
	}
	// As OPA: the bundle's revision under bundles. A policy from a
	// directory (or the embedded one, or a decision by a policy the bundle
	// has replaced since) is named by Portero's content revision in the
	// top-level revision field.
	if rev, ok := c.bundleRevision(d.Revision); ok {
		info.Bundles = map[string]server.BundleInfo{c.bundle.o.Name: {Revision: rev}}
	} else {
		info.Revision = d.Revision
	}
	if err := c.logs.Log(ctx, info); err != nil {
		c.log.Warn("decision log: event not queued", "decision_id", d.ID, "error", err.Error())
	}
}

// evalMetrics are an event's metrics, as OPA names them: the evaluation
// time, and whether the decision came from Portero's decision cache.
type evalMetrics struct {
	metrics.Metrics
	d      time.Duration
	cached bool
}

func (m evalMetrics) All() map[string]any {
	out := map[string]any{"timer_rego_query_eval_ns": m.d.Nanoseconds()}
	if m.cached {
		out["counter_portero_decision_cache_hit"] = 1
	}
	return out
}

func (c *Client) bundleRevision(policyRevision string) (string, bool) {
	if c.bundle == nil {
		return "", false
	}
	return c.bundle.activeRevision(policyRevision)
}

// Counters of OPA's decision_logs plugin that mean a decision was lost.
var dropCounters = []string{
	"decision_logs_dropped_buffer_size_limit_exceeded",
	"decision_logs_dropped_rate_limit_exceeded",
}

// dropped is how many decisions were dropped: by the queue, and by the
// decision-log plugin.
func (c *Client) dropped() float64 {
	all := c.metrics.All()
	n := float64(c.queueDrops.Load())
	for _, name := range dropCounters {
		if v, ok := all["counter_"+name].(uint64); ok {
			n += float64(v)
		}
	}
	return n
}

// flushDecisionLogs uploads the decisions recorded so far now (tests).
func (c *Client) flushDecisionLogs(ctx context.Context) error {
	if err := c.handedOver(ctx); err != nil {
		return err
	}
	return c.logs.Trigger(ctx)
}
