package authn

import (
	"context"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/cache"
)

// SessionStore is where sign-outs and single-use tokens are kept. With an
// access store it is the store's server-side session state
// (*access.SessionState: shared by every replica, surviving restarts);
// without one, memoryState: this process's memory only, so a sign-out
// does not reach another replica and is forgotten on restart.
type SessionStore interface {
	// SessionRevoked says whether the session ref (of user, started from
	// the identity provider's session idpSID, issued at issued) has been
	// revoked. An error means the answer is unknown: the session is
	// refused.
	SessionRevoked(ctx context.Context, ref, user, idpSID string, issued time.Time) (bool, error)
	// RevokeSession revokes one session until it would have ended.
	RevokeSession(ctx context.Context, ref string, until time.Time) error
	// RevokeUserSessions revokes every session of user issued before
	// since; until is when the last of them ends.
	RevokeUserSessions(ctx context.Context, user string, since, until time.Time) error
	// RevokeIdPSession revokes every session started from idpSID before
	// now, until the last of them ends.
	RevokeIdPSession(ctx context.Context, idpSID string, until time.Time) error
	// ConsumeOnce marks (kind, key) used until until and reports whether
	// this call did; of concurrent calls exactly one does.
	ConsumeOnce(ctx context.Context, kind, key string, until time.Time) (bool, error)
}

var _ SessionStore = (*access.SessionState)(nil)

// Kinds of single-use tokens.
const (
	consumedLoginState = "login_state"
	consumedLogoutJTI  = "bcl_jti"
)

// memoryState is the SessionStore of a gateway without an access store:
// bounded caches in this process.
type memoryState struct {
	now func() time.Time
	// warn is called when a live revocation is dropped to make room.
	warn func(what string, bound int)

	sessions *cache.Bounded[string, struct{}]  // revoked session refs, until the session ends
	users    *cache.Bounded[string, time.Time] // user -> since, until the last session ends
	idp      *cache.Bounded[string, time.Time] // IdP sid -> since
	consumed *cache.Bounded[string, struct{}]  // kind + "\x00" + key
}

// maxRevokedSessions bounds each kind of revocation this process
// remembers (about a hundred bytes each). Before a revocation that has not
// ended yet may make room, every ended one is swept, and the drop is
// logged.
const maxRevokedSessions = 100000

// maxConsumed bounds the used tokens remembered. Before one that has not
// expired may make room, every expired one is swept.
const maxConsumed = 100000

func newMemoryState(now func() time.Time, warn func(string, int)) *memoryState {
	return &memoryState{now: now, warn: warn,
		sessions: cache.New[string, struct{}](maxRevokedSessions),
		users:    cache.New[string, time.Time](maxRevokedSessions),
		idp:      cache.New[string, time.Time](maxRevokedSessions),
		consumed: cache.New[string, struct{}](maxConsumed),
	}
}

func (m *memoryState) SessionRevoked(_ context.Context, ref, user, idpSID string, issued time.Time) (bool, error) {
	now := m.now()
	if _, ok := m.sessions.GetAt(ref, now); ok {
		return true, nil
	}
	if since, ok := m.users.GetAt(user, now); ok && issued.Before(since) {
		return true, nil
	}
	if idpSID != "" {
		if since, ok := m.idp.GetAt(idpSID, now); ok && issued.Before(since) {
			return true, nil
		}
	}
	return false, nil
}

// room sweeps c when it is full, and says so when nothing had ended.
func room[V any](m *memoryState, c *cache.Bounded[string, V], what string, now time.Time) {
	if c.Len() >= maxRevokedSessions && c.DeleteExpired(now) == 0 && m.warn != nil {
		m.warn(what, maxRevokedSessions)
	}
}

func (m *memoryState) RevokeSession(_ context.Context, ref string, until time.Time) error {
	now := m.now()
	room(m, m.sessions, "revoked sessions", now)
	m.sessions.PutUntil(ref, struct{}{}, until, now)
	return nil
}

func (m *memoryState) RevokeUserSessions(_ context.Context, user string, since, until time.Time) error {
	now := m.now()
	room(m, m.users, "users signed out everywhere", now)
	m.users.PutUntil(user, since, until, now)
	return nil
}

func (m *memoryState) RevokeIdPSession(_ context.Context, idpSID string, until time.Time) error {
	now := m.now()
	room(m, m.idp, "identity provider sessions ended", now)
	m.idp.PutUntil(idpSID, now.Truncate(time.Millisecond), until, now)
	return nil
}

func (m *memoryState) ConsumeOnce(_ context.Context, kind, key string, until time.Time) (bool, error) {
	now := m.now()
	if m.consumed.Len() >= maxConsumed {
		m.consumed.DeleteExpired(now)
	}
	return m.consumed.Add(kind+"\x00"+key, struct{}{}, until, now), nil
}
