package proxy

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/portero-gateway/portero/config"
)

// Rate-limited control endpoints (the endpoint label of
// portero_rate_limited_total).
const (
	limitSignIn          = "sign_in"          // /.portero/login, per client IP
	limitCallback        = "callback"         // /.portero/callback, per client IP
	limitMasterAccess    = "master_access"    // master-access start attempts, per user
	limitManagementWrite = "management_write" // management API writes and console forms, per user
)

var rateLimitedEndpoints = []string{limitSignIn, limitCallback, limitMasterAccess, limitManagementWrite}

// rateLimiter keeps a token bucket per key (a client address or a user) for
// one endpoint, in bounded memory: when it holds max buckets, the ones that
// have filled up again are dropped (a full bucket is the same as a new one,
// so dropping it forgives nothing); if none has, new keys share one
// overflow bucket until room is made, so a flood of new keys neither grows
// the map nor resets anyone's bucket.
type rateLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newRateLimiter(r config.Rate, max int) *rateLimiter {
	limit := rate.Limit(float64(r.PerMinute) / 60)
	return &rateLimiter{limit: limit, burst: r.Burst, max: max,
		buckets: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(limit, r.Burst)}
}

// sweepEvery bounds how often a full table is scanned for idle buckets.
const sweepEvery = time.Second

// allow takes a token from key's bucket at now. When there is none it
// returns false and how long until there is one.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max && now.Sub(l.lastSweep) >= sweepEvery {
			l.lastSweep = now
			for k, other := range l.buckets {
				if other.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k)
				}
			}
		}
		if len(l.buckets) < l.max {
			b = rate.NewLimiter(l.limit, l.burst)
			l.buckets[key] = b
		} else {
			b = l.overflow
		}
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	wait := time.Duration((1 - b.TokensAt(now)) / float64(l.limit) * float64(time.Second))
	return false, wait
}

func (l *rateLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// controlLimits are the control plane's rate limiters.
type controlLimits struct {
	byEndpoint map[string]*rateLimiter
	// auditedRefusals is shared by everyone: refused master-access attempts
	// written to the audit log.
	auditedRefusals *rate.Limiter
}

func newControlLimits(cfg config.Limits) *controlLimits {
	cfg = cfg.WithDefaults()
	return &controlLimits{
		byEndpoint: map[string]*rateLimiter{
			limitSignIn:          newRateLimiter(cfg.SignIn, cfg.MaxClients),
			limitCallback:        newRateLimiter(cfg.Callback, cfg.MaxClients),
			limitMasterAccess:    newRateLimiter(cfg.MasterAccess, cfg.MaxClients),
			limitManagementWrite: newRateLimiter(cfg.ManagementWrites, cfg.MaxClients),
		},
		auditedRefusals: rate.NewLimiter(rate.Limit(float64(cfg.AuditedRefusals.PerMinute)/60), cfg.AuditedRefusals.Burst),
	}
}

// rateLimit takes a token for key from endpoint's limiter. Over the limit
// it answers 429 with Retry-After itself (JSON for the API, else a page),
// counts it and returns false.
func (g *Gateway) rateLimit(w http.ResponseWriter, r *http.Request, endpoint, key string, api bool) bool {
	ok, wait := g.control().limits.byEndpoint[endpoint].allow(key, g.now())
	if ok {
		return true
	}
	g.metrics.rateLimited.WithLabelValues(endpoint).Inc()
	g.log.Info("rate limited", "endpoint", endpoint, "key", key, "decision_id", decisionID(r.Context()))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeDenial(w, r, api, denial{status: http.StatusTooManyRequests, reason: "rate.limited", id: decisionID(r.Context())})
	return false
}

// clientKey is the rate-limit key of an unauthenticated client: its
// address, or for IPv6 its /64 (one subscriber's usual allocation).
func clientKey(r *http.Request) string { return addrKey(r.RemoteAddr) }

// addrKey is clientKey for a connection's remote address (host:port).
func addrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "ip:" + host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + addr.String()
}

// userKey is the rate-limit key of a signed-in caller.
func userKey(sub string) string { return "user:" + sub }
