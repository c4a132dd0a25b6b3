package control

import (
	"math"
	"net/http"
	"strconv"

	"golang.org/x/time/rate"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/internal/limit"
)

// Rate-limited control endpoints (the endpoint label of
// portero_rate_limited_total).
const (
	limitSignIn          = "sign_in"          // /.portero/login, per client IP
	limitCallback        = "callback"         // /.portero/callback, per client IP
	limitMasterAccess    = "master_access"    // master-access start attempts, per user
	limitManagementWrite = "management_write" // management API writes and console forms, per user
	limitPartnerSearch   = "partner_search"   // partner searches, per user (the management-writes rate, a bucket of its own)
)

var rateLimitedEndpoints = []string{limitSignIn, limitCallback, limitMasterAccess, limitManagementWrite, limitPartnerSearch}

// controlLimits are the control plane's rate limiters.
type controlLimits struct {
	byEndpoint map[string]*limit.PerKey
	// auditedRefusals is shared by everyone: refused master-access attempts
	// written to the audit log.
	auditedRefusals *rate.Limiter
}

func newControlLimits(cfg config.Limits) *controlLimits {
	cfg = cfg.WithDefaults()
	return &controlLimits{
		byEndpoint: map[string]*limit.PerKey{
			limitSignIn:          limit.NewPerKey(cfg.SignIn, cfg.MaxClients),
			limitCallback:        limit.NewPerKey(cfg.Callback, cfg.MaxClients),
			limitMasterAccess:    limit.NewPerKey(cfg.MasterAccess, cfg.MaxClients),
			limitManagementWrite: limit.NewPerKey(cfg.ManagementWrites, cfg.MaxClients),
			limitPartnerSearch:   limit.NewPerKey(cfg.ManagementWrites, cfg.MaxClients),
		},
		auditedRefusals: rate.NewLimiter(rate.Limit(float64(cfg.AuditedRefusals.PerMinute)/60), cfg.AuditedRefusals.Burst),
	}
}

// rateLimit takes a token for key from endpoint's limiter. Over the limit
// it answers 429 with Retry-After itself (JSON for the API, else a page),
// counts it and returns false.
func (p *Plane) rateLimit(w http.ResponseWriter, r *http.Request, endpoint, key string, api bool) bool {
	ok, wait := p.limits.byEndpoint[endpoint].Allow(key, p.now())
	if ok {
		return true
	}
	p.metrics.rateLimited.WithLabelValues(endpoint).Inc()
	p.log.Info("rate limited", "endpoint", endpoint, "key", key, "decision_id", deny.ID(r.Context()))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	deny.Write(w, r, api, deny.Denial{Status: http.StatusTooManyRequests, Reason: "rate.limited", ID: deny.ID(r.Context())})
	return false
}
