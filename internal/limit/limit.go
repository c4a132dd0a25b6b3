// Package limit is Portero's per-key rate limiter (a token bucket per
// client address or user, in bounded memory) and the one rule for which
// key a client address counts under. The control plane limits sign-in and
// writes with it; the public listener limits new connections per client.
package limit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/portero-gateway/portero/config"
)

// PerKey keeps a token bucket per key (a client address or a user) for
// one endpoint, in bounded memory: when it holds max buckets, the ones that
// have filled up again are dropped (a full bucket is the same as a new one,
// so dropping it forgives nothing); if none has, new keys share one
// overflow bucket until room is made, so a flood of new keys neither grows
// the map nor resets anyone's bucket.
type PerKey struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

// NewPerKey allows r per key, keeping buckets for up to max keys.
func NewPerKey(r config.Rate, max int) *PerKey {
	limit := rate.Limit(float64(r.PerMinute) / 60)
	return &PerKey{limit: limit, burst: r.Burst, max: max,
		buckets: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(limit, r.Burst)}
}

// sweepEvery bounds how often a full table is scanned for idle buckets.
const sweepEvery = time.Second

// Allow takes a token from key's bucket at now. When there is none it
// returns false and how long until there is one.
func (l *PerKey) Allow(key string, now time.Time) (bool, time.Duration) {
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

func (l *PerKey) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// ClientKey is the rate-limit key of an unauthenticated client: its
// address, or for IPv6 its /64 (one subscriber's usual allocation).
func ClientKey(r *http.Request) string { return AddrKey(r.RemoteAddr) }

// AddrKey is clientKey for a connection's remote address (host:port).
func AddrKey(remote string) string {
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

// UserKey is the rate-limit key of a signed-in caller.
func UserKey(sub string) string { return "user:" + sub }
