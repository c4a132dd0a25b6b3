package policy

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the policy engine's Prometheus metrics.
type Metrics struct {
	evalDuration prometheus.Histogram
	reloads      *prometheus.CounterVec
	info         *prometheus.GaugeVec
	cacheHits    prometheus.Counter
	cacheMisses  prometheus.Counter
	stages       map[string][2]prometheus.Counter // stage -> {miss, hit}

	// reg registers the shadow policy's metrics, once, when there is one.
	reg        prometheus.Registerer
	shadowOnce sync.Once
	shadow     *shadowMetrics
}

// Results of a policy load (portero_policy_reloads_total{result}).
const (
	reloadSuccess     = "success"
	reloadFailure     = "failure"      // unreadable or does not compile
	reloadTestFailure = "test_failure" // compiles, but its own tests fail (policy.require_tests)
)

// NewMetrics registers the engine's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portero_policy_eval_duration_seconds",
			Help:    "Time to evaluate the policy decision for one request.",
			Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_policy_reloads_total",
			Help: "Policy loads by result: success, failure (unreadable or does not compile), test_failure (compiles but its own tests fail, with policy.require_tests). A refused load keeps the last good policy serving.",
		}, []string{"result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portero_policy_info",
			Help: "The revision (content hash) of the policy being served; always 1.",
		}, []string{"revision"}),
	}
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_policy_decision_cache_total",
		Help: "Decisions answered from the decision cache (hit) or evaluated and cached (miss). Only deterministic policies whose input reads can be keyed (identity, access facts, tenant, route, method and path; never a body, headers or the time) are cached.",
	}, []string{"result"})
	m.cacheHits, m.cacheMisses = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
	stages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_policy_stage_total",
		Help: "Evaluations of the policy's stages (subject: data.portero.subject.facts, the caller's request-independent facts and grant; grant_facts: data.portero.subject.grant_facts, what a grant gives, shared by the callers with that grant; operation: data.portero.requests.entry, the request's route mapping entry; operation_denial: data.portero.subject.operation_denial, the grant's refusal of that entry) answered from the stage's memo (hit) or evaluated (miss).",
	}, []string{"stage", "result"})
	m.stages = map[string][2]prometheus.Counter{}
	for _, spec := range stageSpecs {
		m.stages[spec.field] = [2]prometheus.Counter{stages.WithLabelValues(spec.field, "miss"), stages.WithLabelValues(spec.field, "hit")}
	}
	reg.MustRegister(cache, stages)
	for _, r := range []string{reloadSuccess, reloadFailure, reloadTestFailure} {
		m.reloads.WithLabelValues(r)
	}
	reg.MustRegister(m.evalDuration, m.reloads, m.info)
	return m
}

func (m *Metrics) observeEval(d time.Duration) {
	m.evalDuration.Observe(d.Seconds())
}

func (m *Metrics) stageLookup(stage string, hit bool) {
	c, ok := m.stages[stage]
	if !ok {
		return // the shadow policy's stages are not counted
	}
	if hit {
		c[1].Inc()
	} else {
		c[0].Inc()
	}
}

// reloaded counts a load by its result; a success names the revision now
// served.
func (m *Metrics) reloaded(result, revision string) {
	m.reloads.WithLabelValues(result).Inc()
	if result != reloadSuccess {
		return
	}
	m.info.Reset()
	m.info.WithLabelValues(revision).Set(1)
}

// shadowMetrics are the shadow policy's (policy.shadow_dir): its own loads,
// revision, evaluation time and decision cache, and how its decisions
// differ from the active policy's.
type shadowMetrics struct {
	engine        *Metrics // what the shadow's engine counts
	disagreements *prometheus.CounterVec
}

// forShadow registers the shadow policy's metrics on the first call and
// returns them. Without a shadow policy none of them is exported.
func (m *Metrics) forShadow() *shadowMetrics {
	m.shadowOnce.Do(func() {
		e := &Metrics{
			evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "portero_policy_shadow_eval_duration_seconds",
				Help:    "Time to evaluate the shadow policy (policy.shadow_dir) for one request, beside the active policy.",
				Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3},
			}),
			reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "portero_policy_shadow_reloads_total",
				Help: "Shadow policy (policy.shadow_dir) loads by result: success, failure, test_failure. A refused load keeps the last good shadow policy.",
			}, []string{"result"}),
			info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "portero_policy_shadow_info",
				Help: "The revision (content hash) of the shadow policy evaluated beside the active one; always 1.",
			}, []string{"revision"}),
		} // no stage metrics: the active policy's are the ones to watch
		cache := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_policy_shadow_decision_cache_total",
			Help: "Shadow policy decisions answered from its own decision cache (hit) or evaluated (miss).",
		}, []string{"result"})
		e.cacheHits, e.cacheMisses = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
		for _, r := range []string{reloadSuccess, reloadFailure, reloadTestFailure} {
			e.reloads.WithLabelValues(r)
		}
		s := &shadowMetrics{engine: e, disagreements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_policy_shadow_disagreements_total",
			Help: "Requests the shadow policy (policy.shadow_dir) decided otherwise than the active policy, which was enforced. kind: allow_to_deny, deny_to_allow, reason (same answer, other reason or status), headers (both allow, other headers or assertion subject for the app).",
		}, []string{"route", "active_reason", "shadow_reason", "kind"})}
		m.reg.MustRegister(e.evalDuration, e.reloads, e.info, cache, s.disagreements)
		m.shadow = s
	})
	return m.shadow
}
