package control

import "github.com/prometheus/client_golang/prometheus"

// metrics are the control plane's Prometheus metrics.
type metrics struct {
	masterActive   prometheus.Gauge
	masterOldest   prometheus.Gauge // start of the oldest session not yet ended
	masterMax      prometheus.Gauge // master_access.max_duration
	masterEvents   *prometheus.CounterVec
	notifyFailures prometheus.Counter
	rateLimited    *prometheus.CounterVec
	auditSuppress  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		masterActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portero_master_access_active",
			Help: "Master-access sessions open and unexpired now.",
		}),
		masterOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portero_master_access_oldest_started_timestamp_seconds",
			Help: "Start (Unix time) of the oldest master-access session not yet ended, an expired one the sweep has not ended yet included; 0 when none is open.",
		}),
		masterMax: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portero_master_access_max_duration_seconds",
			Help: "master_access.max_duration: no session is meant to stay open longer; 0 without master access.",
		}),
		masterEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_master_access_total",
			Help: "Master-access events: start, end, expire, revoke, refused.",
		}, []string{"event"}),
		notifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_notify_failures_total",
			Help: "Master-access webhook notifications that failed after their retries or were dropped (queue full).",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_rate_limited_total",
			Help: "Control-plane requests refused with 429 by endpoint: sign_in, callback (per client IP), master_access, management_write (per user).",
		}, []string{"endpoint"}),
		auditSuppress: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_master_access_refusals_suppressed_total",
			Help: "Refused master-access attempts not written to the audit log because refusals exceeded limits.audited_refusals (they are logged).",
		}),
	}
	for _, e := range []string{"start", "end", "expire", "revoke", "refused"} {
		m.masterEvents.WithLabelValues(e)
	}
	for _, e := range rateLimitedEndpoints {
		m.rateLimited.WithLabelValues(e)
	}
	reg.MustRegister(m.masterActive, m.masterOldest, m.masterMax, m.masterEvents, m.notifyFailures, m.rateLimited, m.auditSuppress)
	return m
}
