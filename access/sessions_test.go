package access

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watched opens another Store on target (another replica, or portero
// admin) that watches for writes as a gateway's store does, and waits until
// it listens (PostgreSQL) or has taken its first reading (SQLite).
func watched(t *testing.T, target string) *Store {
	t.Helper()
	s, err := Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.WatchWrites(ctx, 5*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	for deadline := time.Now().Add(10 * time.Second); !s.Live() || s.Listening() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store does not listen: %v", s.Listening())
		}
	}
	time.Sleep(20 * time.Millisecond) // SQLite: the watcher's first reading
	return s
}

// waitForWrite waits until s's generation has moved past gen.
func waitForWrite(t *testing.T, s *Store, gen uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Generation() == gen; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other store's write was not noticed")
		}
	}
}

func revoked(t *testing.T, st *SessionState, ref, user, idp string, issued time.Time) bool {
	t.Helper()
	ok, err := st.SessionRevoked(context.Background(), ref, user, idp, issued)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// Each kind of revocation ends exactly the sessions it names: one session
// by its reference; a user's, or an IdP session's, issued before since.
// Ending a user's sessions is recorded with who did it; a plain sign-out
// is not.
func TestSessionRevocations(t *testing.T) { eachStore(t, testSessionRevocations) }

func testSessionRevocations(t *testing.T) {
	s, _ := openStore(t)
	st := NewSessionState(s)
	ctx := WithActor(context.Background(), "sam")
	t0 := time.Now().Truncate(time.Millisecond)
	if revoked(t, st, "ref-a", "alice", "idp-1", t0) {
		t.Fatal("revoked before anything was revoked")
	}
	if err := s.RevokeSession(ctx, "ref-a", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	since := t0.Add(time.Minute)
	if err := s.RevokeUserSessions(ctx, "bob", since, since.Add(8*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeIdPSession(ctx, "idp-9", t0.Add(8*time.Hour)); err != nil {
		t.Fatal(err)
	}
	idpSince := time.Now()
	cases := []struct {
		name           string
		ref, user, idp string
		issued         time.Time
		want           bool
	}{
		{"the revoked session", "ref-a", "alice", "idp-1", t0, true},
		{"another session of the same user", "ref-b", "alice", "idp-1", t0, false},
		{"bob's session issued before since", "ref-c", "bob", "", t0, true},
		{"bob's session issued at since", "ref-d", "bob", "", since, false},
		{"bob's session issued after since", "ref-e", "bob", "", since.Add(time.Second), false},
		{"an old cookie without an issue time", "ref-f", "bob", "", time.Unix(0, 0), true},
		{"a session of the ended IdP session", "ref-g", "carol", "idp-9", t0, true},
		{"a later session with that IdP sid", "ref-h", "carol", "idp-9", idpSince.Add(time.Second), false},
		{"a session without an IdP sid", "ref-i", "carol", "", t0, false},
		{"nothing known", "", "", "", t0, false},
	}
	check := func(st *SessionState, how string) {
		for _, c := range cases {
			if got := revoked(t, st, c.ref, c.user, c.idp, c.issued); got != c.want {
				t.Errorf("%s, %s: revoked %v, want %v", how, c.name, got, c.want)
			}
			got, err := st.readThrough(context.Background(), c.ref, c.user, c.idp, c.issued)
			if err != nil || got != c.want {
				t.Errorf("%s, %s, read through: revoked %v %v, want %v", how, c.name, got, err, c.want)
			}
		}
	}
	check(st, "mirror")
	check(NewSessionState(s), "a fresh mirror")
	// Signing out everywhere again moves since on.
	if err := s.RevokeUserSessions(ctx, "bob", since.Add(time.Hour), since.Add(9*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, st, "ref-e", "bob", "", since.Add(time.Second)) {
		t.Fatal("a second sign-out everywhere did not reach a session issued between the two")
	}
	recs, err := s.AuditRecords(context.Background(), AuditFilter{Events: []string{EventSessionsEnd}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].By != "sam" || recs[0].Object != "user bob" || !strings.Contains(string(recs[0].Data), `"since"`) {
		t.Fatalf("records of ending bob's sessions: %+v", recs)
	}
	if got := strings.Join(events(t, s), " "); got != EventSessionsEnd+" "+EventSessionsEnd {
		t.Fatalf("only ending a user's sessions is recorded: %s", got)
	}
	for _, err := range []error{
		s.RevokeSession(ctx, "", t0),
		s.RevokeUserSessions(ctx, "", t0, t0),
		s.RevokeIdPSession(ctx, "", t0),
	} {
		if err == nil {
			t.Error("a revocation without a key was accepted")
		}
	}
}

// Two replicas on one database: a revocation written by one is refused by
// the other once its generation has moved (LISTEN/NOTIFY or the file's
// generation), after the other had mirrored the revocations already.
func TestSessionRevocationsReachOtherReplicas(t *testing.T) {
	eachStore(t, testSessionRevocationsReachOtherReplicas)
}

func testSessionRevocationsReachOtherReplicas(t *testing.T) {
	a, target := openStore(t)
	b := watched(t, target)
	ctx := context.Background()
	onA, onB := NewSessionState(a), NewSessionState(b)
	issued := time.Now()
	for _, st := range []*SessionState{onA, onB} {
		if revoked(t, st, "ref-1", "dave", "idp-1", issued) {
			t.Fatal("revoked before any revocation")
		}
	}
	steps := []struct {
		name   string
		revoke func() error
		ref    string
		user   string
		idp    string
	}{
		{"one session", func() error { return a.RevokeSession(ctx, "ref-1", issued.Add(time.Hour)) }, "ref-1", "dave", ""},
		{"a user's sessions", func() error { return a.RevokeUserSessions(ctx, "erin", time.Now(), time.Now().Add(time.Hour)) }, "ref-2", "erin", ""},
		{"an IdP session", func() error { return a.RevokeIdPSession(ctx, "idp-7", time.Now().Add(time.Hour)) }, "ref-3", "frank", "idp-7"},
	}
	for _, step := range steps {
		if revoked(t, onB, step.ref, step.user, step.idp, issued) {
			t.Fatalf("%s: revoked on B before A wrote", step.name)
		}
		gen := b.Generation()
		if err := step.revoke(); err != nil {
			t.Fatal(err)
		}
		waitForWrite(t, b, gen)
		if !revoked(t, onB, step.ref, step.user, step.idp, issued) {
			t.Fatalf("%s: B's generation moved but B still accepts the session", step.name)
		}
		if !revoked(t, onA, step.ref, step.user, step.idp, issued) {
			t.Fatalf("%s: A does not refuse its own revocation", step.name)
		}
	}
}

// A token is consumed once across replicas, however many try at once; its
// mark lasts until its time, after which it may be used again.
func TestConsumeOnce(t *testing.T) { eachStore(t, testConsumeOnce) }

func testConsumeOnce(t *testing.T) {
	a, target := openStore(t)
	b := watched(t, target)
	ctx := context.Background()
	until := time.Now().Add(10 * time.Minute)
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			ok, err := s.ConsumeOnce(ctx, "login_state", "state-1", until)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d callers consumed one token", won.Load())
	}
	if ok, err := b.ConsumeOnce(ctx, "bcl_jti", "state-1", until); !ok || err != nil {
		t.Fatalf("the same key of another kind: %v %v", ok, err)
	}
	past := time.Now().Add(-time.Second)
	if ok, _ := a.ConsumeOnce(ctx, "login_state", "old", past); !ok {
		t.Fatal("first use refused")
	}
	if ok, err := b.ConsumeOnce(ctx, "login_state", "old", until); !ok || err != nil {
		t.Fatalf("a token whose mark has ended was refused: %v %v", ok, err)
	}
	if ok, _ := a.ConsumeOnce(ctx, "login_state", "old", until); ok {
		t.Fatal("consumed twice after being consumed again")
	}
	if _, err := a.ConsumeOnce(ctx, "", "x", until); err == nil {
		t.Fatal("a token without a kind was accepted")
	}
}

// The sweep removes what has ended, keeps the highest seq so seq never
// goes back, and a replica that mirrored before the sweep still sees the
// revocations written after it.
func TestSessionSweep(t *testing.T) { eachStore(t, testSessionSweep) }

func testSessionSweep(t *testing.T) {
	a, target := openStore(t)
	b := watched(t, target)
	ctx := context.Background()
	onB := NewSessionState(b)
	now := time.Now()
	for _, ref := range []string{"ended-1", "ended-2"} {
		if err := a.RevokeSession(ctx, ref, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.RevokeSession(ctx, "live", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeSession(ctx, "ended-last", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConsumeOnce(ctx, "login_state", "gone", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConsumeOnce(ctx, "login_state", "kept", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	gen := b.Generation()
	if !revoked(t, onB, "live", "", "", now) {
		t.Fatal("not mirrored")
	}
	n, err := NewSessionState(a).Sweep(ctx, now)
	if err != nil || n != 3 {
		t.Fatalf("swept %d %v, want 2 revocations and 1 token", n, err)
	}
	var seqs []int64
	rows, err := a.query(ctx, `SELECT seq FROM session_revocations ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		_ = rows.Scan(&s)
		seqs = append(seqs, s)
	}
	rows.Close()
	if len(seqs) != 2 || seqs[1] != 4 {
		t.Fatalf("seqs after the sweep %v, want the live one and the highest (4)", seqs)
	}
	if ok, _ := a.ConsumeOnce(ctx, "login_state", "kept", now.Add(time.Hour)); ok {
		t.Fatal("a live consumed token was swept")
	}
	if err := a.RevokeSession(ctx, "after-sweep", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitForWrite(t, b, gen)
	if !revoked(t, onB, "after-sweep", "", "", now) || !revoked(t, onB, "live", "", "", now) {
		t.Fatal("B missed a revocation written after the sweep")
	}
}

// A mirror ahead of the table (the file replaced, the database restored)
// reads every revocation again instead of waiting for seqs it has seen.
func TestSessionMirrorReloadsWhenSeqGoesBack(t *testing.T) {
	eachStore(t, testSessionMirrorReloadsWhenSeqGoesBack)
}

func testSessionMirrorReloadsWhenSeqGoesBack(t *testing.T) {
	s, _ := openStore(t)
	st := NewSessionState(s)
	st.seq, st.current = 1000, true // as if it had mirrored another table
	if err := s.RevokeSession(context.Background(), "ref-x", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, st, "ref-x", "", "", time.Now()) {
		t.Fatal("a revocation below the mirror's seq was missed")
	}
	if st.seq != 1 {
		t.Fatalf("seq %d after the reload, want 1", st.seq)
	}
}

// A closed (unusable) store is an error, never "not revoked".
func TestSessionRevokedFailsClosed(t *testing.T) { eachStore(t, testSessionRevokedFailsClosed) }

func testSessionRevokedFailsClosed(t *testing.T) {
	s, _ := openStore(t)
	st := NewSessionState(s)
	if revoked(t, st, "ref", "u", "", time.Now()) {
		t.Fatal("revoked")
	}
	s.Close()
	if err := s.RevokeSession(context.Background(), "ref", time.Now().Add(time.Hour)); err == nil {
		t.Fatal("a closed store took a revocation")
	}
	if _, err := st.SessionRevoked(context.Background(), "ref", "u", "", time.Now()); err == nil {
		t.Fatal("a closed store answered from its mirror")
	}
	if _, err := st.readThrough(context.Background(), "ref", "u", "", time.Now()); err == nil {
		t.Fatal("a closed store answered a read-through")
	}
}
