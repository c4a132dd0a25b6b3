package policy

import (
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
}

// NewMetrics registers the engine's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portero_policy_eval_duration_seconds",
			Help:    "Time to evaluate the policy decision for one request.",
			Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_policy_reloads_total",
			Help: "Policy loads by result (success, failure). A failure keeps the last good policy serving.",
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
		Help: "Evaluations of the policy's stages (subject: data.portero.subject.facts, the caller's request-independent facts; operation: data.portero.requests.entry, the request's route mapping entry) answered from the stage's memo (hit) or evaluated (miss).",
	}, []string{"stage", "result"})
	m.stages = map[string][2]prometheus.Counter{}
	for _, spec := range []*stageSpec{&subjectSpec, &operationSpec} {
		m.stages[spec.field] = [2]prometheus.Counter{stages.WithLabelValues(spec.field, "miss"), stages.WithLabelValues(spec.field, "hit")}
	}
	reg.MustRegister(cache, stages)
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	reg.MustRegister(m.evalDuration, m.reloads, m.info)
	return m
}

func (m *Metrics) observeEval(d time.Duration) {
	m.evalDuration.Observe(d.Seconds())
}

func (m *Metrics) stageLookup(stage string, hit bool) {
	c := m.stages[stage]
	if hit {
		c[1].Inc()
	} else {
		c[0].Inc()
	}
}

func (m *Metrics) reloaded(ok bool, revision string) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.info.Reset()
	m.info.WithLabelValues(revision).Set(1)
}
