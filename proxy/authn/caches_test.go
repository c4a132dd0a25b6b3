package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portero-gateway/portero/config"
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

// A token is used once: of concurrent consumers exactly one wins, and a
// replay before its time is refused (memoryState, without an access store).
func TestConsumedTokensAreSingleUse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	m := newMemoryState(func() time.Time { return clock }, nil)
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := m.ConsumeOnce(context.Background(), consumedLoginState, "state", now.Add(loginTTL)); ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d callbacks consumed one state", won.Load())
	}
	clock = now.Add(loginTTL - time.Second)
	if ok, _ := m.ConsumeOnce(context.Background(), consumedLoginState, "state", now.Add(loginTTL)); ok {
		t.Fatal("a replay within loginTTL was accepted")
	}
	if ok, _ := m.ConsumeOnce(context.Background(), consumedLogoutJTI, "state", now.Add(loginTTL)); !ok {
		t.Fatal("the same key of another kind was refused")
	}
	if ok, _ := m.ConsumeOnce(context.Background(), consumedLoginState, "other", now.Add(loginTTL)); !ok {
		t.Fatal("another state was refused")
	}
}

// A revocation lasts until the session would have ended; when the bound is
// reached, ended revocations make room before any live one. A user's and
// an IdP session's revocations reach the sessions issued before them.
func TestRevokedSessionsInMemory(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	m := newMemoryState(func() time.Time { return clock }, nil)
	ctx := context.Background()
	revoked := func(ref, user, idp string, issued time.Time) bool {
		ok, err := m.SessionRevoked(ctx, ref, user, idp, issued)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	until := now.Add(time.Hour)
	_ = m.RevokeSession(ctx, "live", until)
	clock = until.Add(-time.Second)
	if !revoked("live", "u", "", now) {
		t.Fatal("revocation forgotten before the session ends")
	}
	clock = until
	if revoked("live", "u", "", now) {
		t.Fatal("revocation outlives the session")
	}
	clock = now
	if revoked("other", "u", "", now) {
		t.Fatal("a session never revoked is revoked")
	}
	for i := range maxRevokedSessions - 1 {
		m.sessions.PutUntil(fmt.Sprint("ended", i), struct{}{}, now.Add(-time.Second), now)
	}
	_ = m.RevokeSession(ctx, "live", until)
	_ = m.RevokeSession(ctx, "new", until)
	if !revoked("live", "u", "", now) || !revoked("new", "u", "", now) || m.sessions.Len() != 2 {
		t.Fatalf("after reaching the bound: %d held", m.sessions.Len())
	}
	_ = m.RevokeUserSessions(ctx, "bob", now, until)
	_ = m.RevokeIdPSession(ctx, "idp-1", until)
	for _, c := range []struct {
		user, idp string
		issued    time.Time
		want      bool
	}{
		{"bob", "", now.Add(-time.Millisecond), true},
		{"bob", "", now, false},
		{"alice", "idp-1", now.Add(-time.Millisecond), true},
		{"alice", "idp-1", now.Add(time.Millisecond), false},
		{"alice", "", now.Add(-time.Millisecond), false},
	} {
		if got := revoked("ref", c.user, c.idp, c.issued); got != c.want {
			t.Errorf("%s %s issued %v: revoked %v, want %v", c.user, c.idp, c.issued, got, c.want)
		}
	}
}
