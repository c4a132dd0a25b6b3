package policy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
)

// A shadow policy (policy.shadow_dir) is a candidate evaluated beside the
// active policy on live traffic: both decide the same input, only the
// active decision is enforced, and the requests on which they disagree are
// counted by route and reasons and logged with the decision id.
//
// The shadow is evaluated synchronously, on the request's goroutine, right
// after the active decision, by an engine of its own: its own decision
// cache and stage memos, so where the active policy's answers repeat, so do
// the shadow's and a request costs it a cache lookup. Synchronously
// because the shadow must see exactly the input the active policy saw
// (facts, body, clock) while the request still holds it, without copying it
// for a queue, and because a dry run is only worth its counts when none is
// dropped. What it costs is bounded by one more evaluation per request.
// Nothing it does (an error, a panic, a slow rule) changes the active
// decision.
type shadow struct {
	engine  *Engine
	metrics *shadowMetrics
	log     *slog.Logger

	mu sync.Mutex
	// series are the disagreement counters by labels, at most
	// maxShadowSeries (beyond: reasons "other"), so a policy whose reasons
	// vary per request cannot grow the metrics without bound.
	series map[disagreementKey]prometheus.Counter
	// logs limits the disagreement log lines; suppressed counts those
	// left out since the last one written (under mu).
	logs       *rate.Limiter
	suppressed int
}

type disagreementKey struct{ route, active, shadow, kind string }

// Kinds of disagreement (portero_policy_shadow_disagreements_total{kind}).
const (
	// ShadowAllowToDeny: the active policy allows, the shadow denies.
	ShadowAllowToDeny = "allow_to_deny"
	// ShadowDenyToAllow: the active policy denies, the shadow allows.
	ShadowDenyToAllow = "deny_to_allow"
	// ShadowReason: the same answer for another reason or status.
	ShadowReason = "reason"
	// ShadowHeaders: both allow for the same reason, with other headers
	// or another assertion subject for the app.
	ShadowHeaders = "headers"
)

const (
	// maxShadowSeries bounds the label sets of the disagreement counter.
	maxShadowSeries = 1000
	// shadowLogsPerSecond and shadowLogBurst limit the disagreement log.
	shadowLogsPerSecond = 10
	shadowLogBurst      = 20
)

func newShadow(e *Engine, m *shadowMetrics, log *slog.Logger) *shadow {
	return &shadow{engine: e, metrics: m, log: log, series: map[disagreementKey]prometheus.Counter{},
		logs: rate.NewLimiter(shadowLogsPerSecond, shadowLogBurst)}
}

// ShadowOn reports whether a shadow policy is configured (it may not have
// loaded yet).
func (e *Engine) ShadowOn() bool { return e.shadow != nil }

// DecideShadow evaluates in with the shadow policy and compares its
// decision with active, the enforced evaluation of the same input: a
// disagreement is counted and logged with the decision id. It returns the
// kind of disagreement, or "" when they agree, when no shadow policy is
// loaded or when there is none. The caller enforces active whatever it
// returns.
func (e *Engine) DecideShadow(ctx context.Context, decisionID string, in *Input, active Evaluation) string {
	s := e.shadow
	if s == nil || s.engine.current.Load() == nil {
		return ""
	}
	ev := s.decide(ctx, in)
	kind := compareDecisions(active.Decision, ev.Decision)
	if kind != "" {
		s.disagreed(ctx, decisionID, in, kind, active, ev)
	}
	return kind
}

// decide evaluates the shadow policy; a panic in it is its error (a
// denial), never the request's.
func (s *shadow) decide(ctx context.Context, in *Input) (ev Evaluation) {
	defer func() {
		if r := recover(); r != nil {
			ev = Evaluation{Decision: deny(500, ReasonError), Err: fmt.Errorf("shadow policy panicked: %v", r)}
			if p := s.engine.current.Load(); p != nil {
				ev.Revision = p.Revision
			}
		}
	}()
	return s.engine.Decide(ctx, in)
}

// compareDecisions names how the shadow decision differs from the active
// one, or "" when the gateway would act the same on both.
func compareDecisions(active, shadow Decision) string {
	switch {
	case active.Allow && !shadow.Allow:
		return ShadowAllowToDeny
	case !active.Allow && shadow.Allow:
		return ShadowDenyToAllow
	case active.Reason != shadow.Reason || active.Status != shadow.Status:
		return ShadowReason
	case active.Allow && !(maps.EqualFunc(active.Headers, shadow.Headers, slices.Equal[[]string]) &&
		sameAssertion(active.Assertion, shadow.Assertion)):
		// Headers and the assertion go upstream only on allow.
		return ShadowHeaders
	}
	return ""
}

func sameAssertion(a, b *AssertionSubject) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Subject == b.Subject && a.Actor == b.Actor && slices.Equal(a.Roles, b.Roles)
}

// disagreed counts a disagreement and logs it, within the log's limit.
func (s *shadow) disagreed(ctx context.Context, id string, in *Input, kind string, active, shadow Evaluation) {
	k := disagreementKey{route: in.Route.Name, active: active.Decision.Reason, shadow: shadow.Decision.Reason, kind: kind}
	s.mu.Lock()
	c, ok := s.series[k]
	if !ok {
		if len(s.series) >= maxShadowSeries {
			k.active, k.shadow = "other", "other"
		}
		if c, ok = s.series[k]; !ok {
			c = s.metrics.disagreements.WithLabelValues(k.route, k.active, k.shadow, k.kind)
			s.series[k] = c
		}
	}
	logIt := s.logs.AllowN(time.Now(), 1)
	suppressed := 0
	if logIt {
		suppressed, s.suppressed = s.suppressed, 0
	} else {
		s.suppressed++
	}
	s.mu.Unlock()
	c.Inc()
	if !logIt || !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("decision_id", id),
		slog.String("kind", kind),
		slog.String("route", in.Route.Name),
		slog.String("method", in.Request.Method),
		slog.String("host", in.Request.Host),
		slog.String("path", in.Request.Path),
		slog.Bool("active_allow", active.Decision.Allow),
		slog.Int("active_status", active.Decision.Status),
		slog.String("active_reason", active.Decision.Reason),
		slog.String("active_revision", active.Revision),
		slog.Bool("shadow_allow", shadow.Decision.Allow),
		slog.Int("shadow_status", shadow.Decision.Status),
		slog.String("shadow_reason", shadow.Decision.Reason),
		slog.String("shadow_revision", shadow.Revision),
	}
	if in.Tenant != nil {
		attrs = append(attrs, slog.String("tenant", in.Tenant.ID))
	}
	if in.Identity != nil {
		attrs = append(attrs, slog.String("sub", in.Identity.Subject))
	}
	if in.Management != nil {
		attrs = append(attrs, slog.String("action", in.Management.Action))
	}
	if shadow.Err != nil {
		attrs = append(attrs, slog.String("shadow_error", shadow.Err.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "shadow policy disagrees", attrs...)
}

// ShadowDisagreement is how often the shadow policy disagreed with the
// active one for one route, pair of reasons and kind since start.
type ShadowDisagreement struct {
	Route        string `json:"route"`
	ActiveReason string `json:"active_reason"`
	ShadowReason string `json:"shadow_reason"`
	Kind         string `json:"kind"`
	Count        uint64 `json:"count"`
}

// ShadowDisagreements reads the shadow policy's disagreement counters
// (portero_policy_shadow_disagreements_total), most frequent first; nil
// without a shadow policy.
func (e *Engine) ShadowDisagreements() []ShadowDisagreement {
	s := e.shadow
	if s == nil {
		return nil
	}
	s.mu.Lock()
	out := make([]ShadowDisagreement, 0, len(s.series))
	for k, c := range s.series {
		var m dto.Metric
		if c.Write(&m) != nil {
			continue
		}
		out = append(out, ShadowDisagreement{Route: k.route, ActiveReason: k.active, ShadowReason: k.shadow, Kind: k.kind,
			Count: uint64(m.GetCounter().GetValue())})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ShadowDisagreement) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return cmp.Or(cmp.Compare(a.Route, b.Route), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.ActiveReason, b.ActiveReason), cmp.Compare(a.ShadowReason, b.ShadowReason))
	})
	return out
}
