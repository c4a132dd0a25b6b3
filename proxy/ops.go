package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsHandler serves the ops listener: Prometheus metrics, liveness,
// readiness, the assertion JWKS and pprof profiles. It belongs on a private address.
func OpsHandler(g *Gateway, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		body := map[string]any{"ready": true}
		if cur := g.engine.Current(); cur != nil {
			body["policy_revision"] = cur.Revision
		}
		err := g.Ready()
		if err == nil && g.store != nil {
			// A store that fails closed refuses every request that needs
			// its facts: not ready until it is reopened.
			if serr := g.store.Health(); serr != nil {
				err = fmt.Errorf("access store unusable: %w", serr)
			}
		}
		if err != nil {
			body["ready"], body["reason"] = false, err.Error()
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("GET "+JWKSPath, g.serveJWKS)
	// Profiles for SREs, on the private ops listener only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}
