package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsHandler serves the ops listener: Prometheus metrics, liveness,
// readiness, the assertion JWKS and, with listen.pprof, pprof profiles. It
// belongs on a private address.
func OpsHandler(g *Gateway, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReadyz)
	mux.HandleFunc("GET "+JWKSPath, g.serveJWKS)
	if g.cfg.Listen.Pprof {
		// Profiles cost CPU and show the heap: only when asked for, and
		// then on the private ops listener only.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	return mux
}

// ReadyCheck is one thing the gateway needs before it can serve: Err says
// why it is not there, nil when it is.
type ReadyCheck struct {
	Name string // policy, idp, store
	Err  error
}

// Readiness runs every readiness check, in a fixed order: the policy is
// loaded, the identity provider's discovery document was fetched, and (with
// access.store) the access store is usable.
func (g *Gateway) Readiness() []ReadyCheck {
	checks := []ReadyCheck{{Name: "policy"}, {Name: "idp"}}
	if g.engine.Current() == nil {
		checks[0].Err = errors.New("policy not loaded")
	}
	if !g.authn.Bearer.Ready() {
		checks[1].Err = errors.New("oidc discovery not completed for " + g.cfg.OIDC.Issuer)
	}
	if g.store != nil {
		// A store that fails closed refuses every request that needs its
		// facts: not ready until it is reopened (SQLite) or listens for
		// other replicas' writes again (PostgreSQL).
		c := ReadyCheck{Name: "store"}
		if err := g.store.Health(); err != nil {
			c.Err = fmt.Errorf("access store unusable: %w", err)
		}
		checks = append(checks, c)
	}
	return checks
}

// serveReadyz answers 200 when every check passes and 503 otherwise, with
// every check's result so an operator sees all that is missing at once:
//
//	{"ready": false, "reason": "policy not loaded; access store unusable: …",
//	 "checks": {"policy": "policy not loaded", "idp": "ok", "store": "access store unusable: …"},
//	 "policy_revision": "…"}
//
// reason joins the failing checks in order; it is absent when ready.
func (g *Gateway) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	body := struct {
		Ready          bool              `json:"ready"`
		Reason         string            `json:"reason,omitempty"`
		Checks         map[string]string `json:"checks"`
		PolicyRevision string            `json:"policy_revision,omitempty"`
	}{Ready: true, Checks: map[string]string{}}
	if cur := g.engine.Current(); cur != nil {
		body.PolicyRevision = cur.Revision
	}
	var failing []string
	for _, c := range g.Readiness() {
		body.Checks[c.Name] = "ok"
		if c.Err != nil {
			body.Checks[c.Name] = c.Err.Error()
			failing = append(failing, c.Err.Error())
		}
	}
	if len(failing) > 0 {
		body.Ready, body.Reason = false, strings.Join(failing, "; ")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}
