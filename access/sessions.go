package access

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/portero-gateway/portero/audit"
)

// Server-side session state: the store holds the revocations of browser
// sessions (session_revocations) and the tokens that may be used only once
// (consumed_tokens); the sessions themselves stay in their encrypted
// cookies. Every replica answers "is this session revoked?" from an
// in-memory mirror of the revocations, brought up to date when the store's
// generation moves (any replica's write) by reading only the rows written
// since (seq), and read through the database while the store may have
// missed another replica's write (not Live).

// Kinds of revocation.
const (
	// RevokedSession is one sign-in session, by its reference (the hash
	// of its id that authn hands to the policy, never the id itself).
	RevokedSession = "session"
	// RevokedUser is every session of a user issued before since ("sign
	// out everywhere", an admin ending a user's sessions, a back-channel
	// logout naming only the subject).
	RevokedUser = "user"
	// RevokedIdPSession is every session started from one session at the
	// identity provider (its sid claim) before since: back-channel logout.
	RevokedIdPSession = "idp_session"
)

// Event of the audit record of ending all of a user's sessions.
const EventSessionsEnd = "sessions.end"

// RevokeSession revokes one sign-in session (ref: its reference) until
// the session would have ended. A plain sign-out: no audit record.
func (s *Store) RevokeSession(ctx context.Context, ref string, until time.Time) error {
	if ref == "" || len(ref) > 255 || strings.ContainsRune(ref, 0) {
		return &FieldError{"session", "must be 1-255 characters without NUL"}
	}
	now := s.now()
	return s.revoke(ctx, "sessions.revoke", RevokedSession, ref, now, until, nil)
}

// RevokeUserSessions revokes every session of user issued before since;
// until is when the last of them would have ended (since plus the session
// lifetime), after which the revocation may be swept. It is recorded in
// the audit trail, by the context's actor.
func (s *Store) RevokeUserSessions(ctx context.Context, user string, since, until time.Time) error {
	if err := validUser("user", user); err != nil {
		return err
	}
	rec := s.change(ctx, EventSessionsEnd, "", "user "+user, map[string]string{"since": stampOf(since), "until": stampOf(until)})
	rec.Time = since
	return s.revoke(ctx, "sessions.revoke_user", RevokedUser, user, since, until, &rec)
}

// RevokeIdPSession revokes every session started from the identity
// provider's session idpSID (its sid claim) before now, until the last of
// them would have ended.
func (s *Store) RevokeIdPSession(ctx context.Context, idpSID string, until time.Time) error {
	if idpSID == "" || len(idpSID) > 255 || strings.ContainsRune(idpSID, 0) {
		return &FieldError{"sid", "must be 1-255 characters without NUL"}
	}
	// To the millisecond, the precision of sessions' issue times: a
	// session signed in within the same millisecond after the logout
	// stays.
	return s.revoke(ctx, "sessions.revoke_idp", RevokedIdPSession, idpSID, s.now().Truncate(time.Millisecond), until, nil)
}

// revoke writes one revocation (replacing an earlier one of the same kind
// and key) with the next seq, and moves the generation so every replica's
// mirror reads it.
func (s *Store) revoke(ctx context.Context, op, kind, key string, since, until time.Time, rec *audit.Record) error {
	by := s.actorOf(ctx)
	return s.write(ctx, op, func(tx *dbTx) ([]audit.Record, error) {
		// Writers hold the write lock, and the row holding the highest seq
		// is never swept (SweepSessions), so MAX(seq)+1 only grows: a
		// replica that has read up to seq n finds every later write
		// above n.
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM session_revocations`).Scan(&seq); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO session_revocations (kind, key, seq, since, until, created_by) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq, since = excluded.since, until = excluded.until, created_by = excluded.created_by`,
			kind, key, seq, stampOf(since), stampOf(until), by); err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, nil
		}
		return []audit.Record{*rec}, nil
	})
}

// ConsumeOnce marks the token (kind, key) used until until, and reports
// whether this call did (false: it was used before, by any replica). The
// insert is the check: of concurrent calls exactly one gets true. A token
// whose mark has ended may be consumed again.
func (s *Store) ConsumeOnce(ctx context.Context, kind, key string, until time.Time) (bool, error) {
	if kind == "" || key == "" || len(kind) > 64 || len(key) > 512 || strings.ContainsRune(kind+key, 0) {
		return false, &FieldError{"token", "kind and key must be 1-64 and 1-512 bytes without NUL"}
	}
	var won bool
	now := stampOf(s.now())
	_, err := s.commit(ctx, "sessions.consume", false, func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `INSERT INTO consumed_tokens (kind, key, until) VALUES (?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET until = excluded.until WHERE consumed_tokens.until <= ?`, kind, key, stampOf(until), now)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		won = n == 1
		return nil, err
	})
	return won, err
}

// SweepSessions deletes the revocations and consumed tokens that ended
// before now, and returns how many rows went. The revocation with the
// highest seq stays whatever its time, so seq never goes back.
func (s *Store) SweepSessions(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	_, err := s.commit(ctx, "sessions.sweep", false, func(tx *dbTx) ([]audit.Record, error) {
		at := stampOf(now)
		res, err := tx.ExecContext(ctx, `DELETE FROM session_revocations WHERE until < ? AND seq < (SELECT MAX(seq) FROM session_revocations)`, at)
		if err != nil {
			return nil, err
		}
		a, _ := res.RowsAffected()
		if res, err = tx.ExecContext(ctx, `DELETE FROM consumed_tokens WHERE until < ?`, at); err != nil {
			return nil, err
		}
		b, _ := res.RowsAffected()
		n = a + b
		return nil, nil
	})
	return n, err
}

// SessionState answers whether a session is revoked, from a mirror of the
// store's revocations. It is safe for concurrent use; make one per store
// (NewSessionState) and keep it.
type SessionState struct {
	*Store

	mu      sync.RWMutex
	gen     uint64 // the store generation the mirror was brought up to
	current bool   // the mirror holds every revocation up to seq (false: reload all)
	seq     int64  // the highest seq read
	revs    map[revKey]revocation

	refresh sync.Mutex // one refresh at a time
}

type revKey struct{ kind, key string }

type revocation struct {
	since, until time.Time
}

// NewSessionState mirrors the revocations of store.
func NewSessionState(store *Store) *SessionState {
	return &SessionState{Store: store, revs: map[revKey]revocation{}}
}

// SessionRevoked says whether the session ref (the user's, started from
// the identity provider's session idpSID, "" when unknown, at issued) is
// revoked. While the store is Live and nothing was written since the last
// look, it is three map lookups; after a write it first reads the new
// revocations; while the store may have missed another replica's write it
// reads the database. An error means the answer is unknown: the caller
// fails closed.
func (st *SessionState) SessionRevoked(ctx context.Context, ref, user, idpSID string, issued time.Time) (bool, error) {
	if err := st.Health(); err != nil {
		// The mirror may be of a file that is no longer the store.
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	gen := st.Generation()
	if !st.Live() {
		st.mu.Lock()
		st.current = false // a write may be missed from now on: reload all when live again
		st.mu.Unlock()
		return st.readThrough(ctx, ref, user, idpSID, issued)
	}
	st.mu.RLock()
	fresh := st.current && st.gen == gen
	if fresh {
		revoked := st.lookup(ref, user, idpSID, issued)
		st.mu.RUnlock()
		return revoked, nil
	}
	st.mu.RUnlock()
	if err := st.catchUp(ctx, gen); err != nil {
		return false, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.lookup(ref, user, idpSID, issued), nil
}

// lookup answers from the mirror; st.mu is held.
func (st *SessionState) lookup(ref, user, idpSID string, issued time.Time) bool {
	if len(st.revs) == 0 {
		return false
	}
	if _, ok := st.revs[revKey{RevokedSession, ref}]; ok && ref != "" {
		return true
	}
	if r, ok := st.revs[revKey{RevokedUser, user}]; ok && user != "" && issued.Before(r.since) {
		return true
	}
	if idpSID == "" {
		return false
	}
	r, ok := st.revs[revKey{RevokedIdPSession, idpSID}]
	return ok && issued.Before(r.since)
}

// catchUp brings the mirror up to generation gen (or later): the rows
// written since the last look, or all of them when the mirror is not
// current or the store's seq went back (another file, another database).
func (st *SessionState) catchUp(ctx context.Context, gen uint64) error {
	st.refresh.Lock()
	defer st.refresh.Unlock()
	st.mu.RLock()
	done := st.current && st.gen == gen
	after, current := st.seq, st.current
	st.mu.RUnlock()
	if done {
		return nil // another caller caught up meanwhile
	}
	if !current {
		after = 0
	}
	rows, top, err := st.readRevocations(ctx, after)
	if err != nil {
		st.mu.Lock()
		st.current = false
		st.mu.Unlock()
		return err
	}
	if top < after { // the highest seq is never swept: this is another store
		after = 0
		if rows, top, err = st.readRevocations(ctx, 0); err != nil {
			return err
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if after == 0 {
		st.revs = make(map[revKey]revocation, len(rows))
	}
	for k, r := range rows {
		st.revs[k] = r
	}
	st.seq, st.gen, st.current = top, gen, true
	return nil
}

// readRevocations reads the revocations with seq above after, and the
// highest seq in the table (0 when empty).
func (st *SessionState) readRevocations(ctx context.Context, after int64) (map[revKey]revocation, int64, error) {
	rs, err := st.query(ctx, `SELECT kind, key, seq, since, until FROM session_revocations
WHERE seq > ? OR seq = (SELECT MAX(seq) FROM session_revocations)`, after)
	if err != nil {
		return nil, 0, err
	}
	defer rs.Close()
	out := map[revKey]revocation{}
	var top int64
	for rs.Next() {
		var k revKey
		var seq int64
		var since, until string
		if err := rs.Scan(&k.kind, &k.key, &seq, &since, &until); err != nil {
			return nil, 0, err
		}
		top = max(top, seq)
		out[k] = revocation{since: parseTime(since), until: parseTime(until)}
	}
	return out, top, rs.Err()
}

// readThrough answers from the database.
func (st *SessionState) readThrough(ctx context.Context, ref, user, idpSID string, issued time.Time) (bool, error) {
	at := stampOf(issued)
	var n int
	err := st.queryRow(ctx, `SELECT COUNT(*) FROM session_revocations WHERE (kind = 'session' AND key = ?)
OR (kind = 'user' AND key = ? AND since > ?) OR (kind = 'idp_session' AND key = ? AND since > ?)`,
		ref, user, at, idpSID, at).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read session revocations: %w", err)
	}
	return n > 0, nil
}

// Sweep deletes ended revocations and consumed tokens from the store
// (SweepSessions) and from the mirror.
func (st *SessionState) Sweep(ctx context.Context, now time.Time) (int64, error) {
	n, err := st.SweepSessions(ctx, now)
	st.mu.Lock()
	for k, r := range st.revs {
		if r.until.Before(now) {
			delete(st.revs, k)
		}
	}
	st.mu.Unlock()
	return n, err
}

// RunSweeps sweeps every interval until ctx ends; errors are logged by the
// store.
func (st *SessionState) RunSweeps(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = st.Sweep(ctx, st.now())
		}
	}
}
