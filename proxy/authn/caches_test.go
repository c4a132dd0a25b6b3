package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/cache"
	"github.com/portero-gateway/portero/internal/testissuer"
)

// A verified token is remembered until it expires, and never longer than
// maxCacheAge; an expired token is verified again (and refused), never
// answered from the cache.
func TestTokenCacheLifetime(t *testing.T) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	start := time.Now().Truncate(time.Second)
	clock.Store(&start)
	now := func() time.Time { return *clock.Load() }
	iss := testissuer.New(t)
	iss.Now = now
	b := NewBearer(config.OIDC{Issuer: iss.URL, Audiences: []string{"app"}, Algorithms: []string{"RS256"},
		Claims: config.Claims{Subject: "sub"}, TokenCacheSize: 10}, now)
	if err := b.Discover(context.Background(), http.DefaultClient); err != nil {
		t.Fatal(err)
	}
	long := iss.Claims("long", "app") // expires in an hour
	short := iss.Claims("short", "app")
	short["exp"] = start.Add(2 * time.Minute).Unix()
	cases := []struct {
		name  string
		token string
		until time.Time // the cache answers before this, not at it
	}{
		{"capped at maxCacheAge", iss.Sign(t, long), start.Add(maxCacheAge)},
		{"until the token expires", iss.Sign(t, short), start.Add(2 * time.Minute)},
	}
	for _, tc := range cases {
		first, err := b.Authenticate(context.Background(), tc.token)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if id, ok := b.tokens.GetAt(tc.token, tc.until.Add(-time.Nanosecond)); !ok || id != first {
			t.Fatalf("%s: not cached just before %v", tc.name, tc.until)
		}
		if _, ok := b.tokens.GetAt(tc.token, tc.until); ok {
			t.Fatalf("%s: still cached at %v", tc.name, tc.until)
		}
	}
	later := start.Add(2*time.Minute + time.Second) // the verifier's own rule: expired after exp
	clock.Store(&later)
	var ae *Error
	if _, err := b.Authenticate(context.Background(), cases[1].token); !errors.As(err, &ae) || ae.Reason != "expired" {
		t.Fatalf("expired token: %v", err)
	}
}

// A login state is used once: of concurrent callbacks with it exactly one
// wins, and a replay within loginTTL is refused.
func TestConsumedLoginsAreSingleUse(t *testing.T) {
	t.Parallel()
	c := &consumedLogins{states: cache.New[string, struct{}](maxConsumedLogins)}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.consume("state", now) {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d callbacks consumed one state", won.Load())
	}
	if c.consume("state", now.Add(loginTTL-time.Second)) {
		t.Fatal("a replay within loginTTL was accepted")
	}
	if !c.consume("other", now) {
		t.Fatal("another state was refused")
	}
}

// A revocation lasts until the session would have ended; when the bound is
// reached, ended revocations make room before any live one.
func TestRevokedSessions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Sessions{revoked: cache.New[string, struct{}](maxRevokedSessions), now: func() time.Time { return now },
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	until := now.Add(time.Hour)
	s.Revoke(&Session{data: sessionData{ID: "live", Until: until.Unix()}})
	if !s.isRevoked("live", until.Add(-time.Second)) {
		t.Fatal("revocation forgotten before the session ends")
	}
	if s.isRevoked("live", until) {
		t.Fatal("revocation outlives the session")
	}
	if s.isRevoked("other", now) {
		t.Fatal("a session never revoked is revoked")
	}
	for i := range maxRevokedSessions - 1 {
		s.revoked.PutUntil(fmt.Sprint("ended", i), struct{}{}, now.Add(-time.Second), now)
	}
	s.Revoke(&Session{data: sessionData{ID: "new", Until: until.Unix()}})
	if !s.isRevoked("live", now) || !s.isRevoked("new", now) || s.revoked.Len() != 2 {
		t.Fatalf("after reaching the bound: live %v, new %v, %d held", s.isRevoked("live", now), s.isRevoked("new", now), s.revoked.Len())
	}
}
