package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the request path's Prometheus metrics.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	droppedHeaders prometheus.Counter
	accessLookups  *prometheus.CounterVec
	masterActive   prometheus.Gauge
	masterEvents   *prometheus.CounterVec
	notifyFailures prometheus.Counter
	rateLimited    *prometheus.CounterVec
	auditSuppress  prometheus.Counter
}

// NewMetrics registers the request path's metrics, the build info and the Go
// and process collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_requests_total",
			Help: "Requests by route, decision (allow, deny, reject before policy) and response code.",
		}, []string{"route", "decision", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portero_request_duration_seconds",
			Help:    "Time from request received to response headers written, upstream included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_upstream_errors_total",
			Help: "Requests that failed because the upstream could not be reached or did not answer in time.",
		}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_auth_failures_total",
			Help: "Rejected credentials by reason (missing, malformed, expired, invalid, unavailable).",
		}, []string{"reason"}),
		droppedHeaders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_policy_dropped_headers_total",
			Help: "Headers a policy decision asked for but Portero refused to set (not a reserved name, or an invalid value).",
		}),
	}
	m.accessLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_access_lookups_total",
		Help: "Per-request access-store lookups by result: hit (cache), miss (store read), error (request denied).",
	}, []string{"result"})
	reg.MustRegister(m.accessLookups)
	m.masterActive = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portero_master_access_active",
		Help: "Master-access sessions open and unexpired now.",
	})
	m.masterEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_master_access_total",
		Help: "Master-access events: start, end, expire, revoke, refused.",
	}, []string{"event"})
	for _, e := range []string{"start", "end", "expire", "revoke", "refused"} {
		m.masterEvents.WithLabelValues(e)
	}
	m.notifyFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portero_notify_failures_total",
		Help: "Master-access webhook notifications that failed after their retries or were dropped (queue full).",
	})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_rate_limited_total",
		Help: "Control-plane requests refused with 429 by endpoint: sign_in, callback (per client IP), master_access, management_write (per user).",
	}, []string{"endpoint"})
	for _, e := range rateLimitedEndpoints {
		m.rateLimited.WithLabelValues(e)
	}
	m.auditSuppress = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portero_master_access_refusals_suppressed_total",
		Help: "Refused master-access attempts not written to the audit log because refusals exceeded limits.audited_refusals (they are logged).",
	})
	reg.MustRegister(m.masterActive, m.masterEvents, m.notifyFailures, m.rateLimited, m.auditSuppress)
	reg.MustRegister(m.requests, m.duration, m.upstreamErrors, m.authFailures, m.droppedHeaders,
		collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
