package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the request path's Prometheus metrics.
type Metrics struct {
	requests       *prometheus.CounterVec
	denials        *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	droppedHeaders prometheus.Counter
	accessLookups  *prometheus.CounterVec
	checks         *prometheus.CounterVec
}

// NewMetrics registers the request path's metrics, the build info and the Go
// and process collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_requests_total",
			Help: "Requests by route, decision (allow, deny, reject before policy) and response code.",
		}, []string{"route", "decision", "code"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_denials_total",
			Help: "Requests Portero refused itself, by route (none: before routing) and stable reason id (request.*, auth.*, access.*, the policy's reasons, …).",
		}, []string{"route", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portero_request_duration_seconds",
			Help:    "Time from request received until the response is written in full (or refused), upstream included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_upstream_errors_total",
			Help: "Requests that failed because the upstream could not be reached or did not answer in time.",
		}, []string{"route"}),
		droppedHeaders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_policy_dropped_headers_total",
			Help: "Headers a policy decision asked for but Portero refused to set (not a reserved name, or an invalid value).",
		}),
	}
	m.accessLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_access_lookups_total",
		Help: "Per-request access-store lookups by result: hit (cache), miss (store read), error (request denied).",
	}, []string{"result"})
	m.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_forward_auth_checks_total",
		Help: "Forward-auth checks by endpoint (http: nginx, Traefik, Caddy; envoy: ext_authz) and result: allowed, refused, untrusted (from outside forward_auth.trusted_proxies).",
	}, []string{"via", "result"})
	reg.MustRegister(m.accessLookups, m.checks)
	reg.MustRegister(m.requests, m.denials, m.duration, m.upstreamErrors, m.droppedHeaders,
		collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
