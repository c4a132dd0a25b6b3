package control_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/control"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/internal/testissuer"
)

// replicas are two gateways on one access store (a SQLite file, or the
// test PostgreSQL server with PORTERO_TEST_STORE=postgres), each with its
// own Store watching for the other's writes, and the same session keys.
func replicas(t *testing.T) (a, b *harness, storeA, storeB *access.Store) {
	t.Helper()
	storeA, target := gatewaytest.OpenStore(t, access.WithActors(control.ActorOf))
	var err error
	if storeB, err = access.Open(context.Background(), target, access.WithActors(control.ActorOf)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); storeB.WatchWrites(ctx, 5*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done; storeB.Close() })
	if !access.IsPostgres(target) { // OpenStore watches a PostgreSQL store only
		doneA := make(chan struct{})
		go func() { defer close(doneA); storeA.WatchWrites(ctx, 5*time.Millisecond) }()
		t.Cleanup(func() { cancel(); <-doneA })
	}
	for deadline := time.Now().Add(10 * time.Second); !storeB.Live() || storeB.Listening() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replica B's store does not listen: %v", storeB.Listening())
		}
	}
	a = newHarnessWith(t, nil, harnessOpts{Login: true, Store: storeA})
	b = newHarnessWith(t, nil, harnessOpts{Login: true, Store: storeB})
	return a, b, storeA, storeB
}

// signedIn says whether the browser's session is accepted (userinfo
// answers only to a session).
func signedIn(t *testing.T, b *gatewaytest.Browser) bool {
	t.Helper()
	rec := b.Do("GET", "http://localhost/.portero/userinfo", nil, nil)
	switch rec.Code {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("userinfo: %d %s", rec.Code, rec.Body)
	return false
}

// copyTo is another browser on h holding a copy of b's cookies (a stolen
// or replayed session cookie, or the load balancer sending it to another
// replica).
func copyTo(t *testing.T, h *harness, b *gatewaytest.Browser) *gatewaytest.Browser {
	c := gatewaytest.NewBrowser(t, h)
	for k, v := range b.Cookies {
		c.Cookies[k] = v
	}
	return c
}

// eventually waits, up to a bound that is not a timing assertion, for
// cond: another replica learns of a write when its generation moves.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// signOut posts the sign-out form (everywhere or not) from this origin.
func signOut(t *testing.T, b *gatewaytest.Browser, everywhere bool) *httptest.ResponseRecorder {
	t.Helper()
	page := b.Do("GET", "http://localhost/.portero/logout", nil, nil)
	m := csrfField.FindStringSubmatch(page.Body.String())
	if m == nil || !strings.Contains(page.Body.String(), `name="everywhere"`) {
		t.Fatalf("sign-out page without its form: %s", page.Body)
	}
	form := url.Values{"csrf": {m[1]}}
	if everywhere {
		form.Set("everywhere", "1")
	}
	rec := b.Do("POST", "http://localhost/.portero/logout", form, http.Header{"Origin": {"http://localhost"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d %s", rec.Code, rec.Body)
	}
	return rec
}

// A sign-out on replica A ends the session on replica B too, where a copy
// of the cookie was working, and on A for the copy.
func TestSignOutReachesEveryReplica(t *testing.T) {
	a, b, _, _ := replicas(t)
	onA := gatewaytest.NewBrowser(t, a)
	onA.SignIn("http://localhost/t/acme/", aliceClaims())
	copyOnA, copyOnB := copyTo(t, a, onA), copyTo(t, b, onA)
	if !signedIn(t, copyOnA) || !signedIn(t, copyOnB) {
		t.Fatal("the session does not work on both replicas")
	}
	signOut(t, onA, false)
	if signedIn(t, copyOnA) {
		t.Fatal("a copy of the cookie still works on the replica that signed out")
	}
	eventually(t, "replica B still accepts a session signed out on A", func() bool { return !signedIn(t, copyOnB) })
}

// "Sign out everywhere" ends every session of the user signed in until
// then, on every replica, and is recorded; a sign-in afterwards works, and
// other users keep theirs.
func TestSignOutEverywhere(t *testing.T) {
	a, b, storeA, _ := replicas(t)
	laptop := gatewaytest.NewBrowser(t, a)
	laptop.SignIn("http://localhost/t/acme/", aliceClaims())
	phone := gatewaytest.NewBrowser(t, b)
	phone.SignIn("http://localhost/t/acme/", aliceClaims())
	bob := gatewaytest.NewBrowser(t, b)
	bob.SignIn("http://localhost/t/acme/", map[string]any{"sub": "bob", "roles": []string{"acme:administrator"}})
	signOut(t, laptop, true)
	eventually(t, "alice's other session on replica B survived signing out everywhere", func() bool { return !signedIn(t, phone) })
	if !signedIn(t, bob) {
		t.Fatal("another user's session ended")
	}
	again := gatewaytest.NewBrowser(t, b)
	again.SignIn("http://localhost/t/acme/", aliceClaims())
	if !signedIn(t, again) {
		t.Fatal("a sign-in after signing out everywhere is refused")
	}
	recs, err := storeA.AuditRecords(context.Background(), access.AuditFilter{Events: []string{access.EventSessionsEnd}, Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].By != "alice" || recs[0].Object != "user alice" {
		t.Fatalf("audit records: %+v %v", recs, err)
	}
}

// A system admin ends a user's sessions through the management API (the
// policy's sessions.revoke); nobody else may.
func TestAdminEndsAUsersSessions(t *testing.T) {
	a, b, storeA, _ := replicas(t)
	alice := gatewaytest.NewBrowser(t, b)
	alice.SignIn("http://localhost/t/acme/", aliceClaims())
	call := func(claims map[string]any) *httptest.ResponseRecorder {
		tok := a.Iss.Claims(claims["sub"].(string), "portero")
		for k, v := range claims {
			tok[k] = v
		}
		return a.Do(t, "POST", "http://localhost/.portero/api/v1/users/alice/sessions/revoke", a.Iss.Sign(t, tok), nil, "")
	}
	for _, who := range []map[string]any{
		{"sub": "olivia"},
		{"sub": "alice", "roles": []string{"acme:administrator"}},
		{"sub": "eve", "groups": []string{"admins"}},
	} {
		if rec := call(who); rec.Code != http.StatusForbidden {
			t.Fatalf("%v ended alice's sessions: %d %s", who["sub"], rec.Code, rec.Body)
		}
	}
	if !signedIn(t, alice) {
		t.Fatal("a refused call ended the session")
	}
	rec := call(map[string]any{"sub": "sam", "groups": []string{"system-admins"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"user":"alice"`) {
		t.Fatalf("system admin: %d %s", rec.Code, rec.Body)
	}
	eventually(t, "alice's session on replica B survived the admin ending it", func() bool { return !signedIn(t, alice) })
	recs, err := storeA.AuditRecords(context.Background(), access.AuditFilter{Events: []string{access.EventSessionsEnd}, Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].By != "sam" || recs[0].Object != "user alice" {
		t.Fatalf("audit records: %+v %v", recs, err)
	}
}

// logoutClaims are a valid logout token's claims from h's issuer for the
// IdP session sid.
func logoutClaims(h *harness, sid string) map[string]any {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	return map[string]any{
		"iss": h.Iss.URL, "aud": "portero-test", "iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
		"jti": hex.EncodeToString(id), "sid": sid, "sub": "alice",
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
}

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func postLogout(h *harness, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "http://localhost/.portero/backchannel-logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.Gateway.ServeHTTP(rec, req)
	return rec
}

// Back-channel logout: every hostile logout token is refused with 400 and
// ends nothing; a valid one ends the IdP session's sessions on every
// replica, once.
func TestBackchannelLogout(t *testing.T) {
	a, b, _, _ := replicas(t)
	claims := with(aliceClaims(), "sid", "idp-sid-1")
	alice := gatewaytest.NewBrowser(t, b)
	alice.SignIn("http://localhost/t/acme/", claims)
	aliceOnA := copyTo(t, a, alice)
	other := gatewaytest.NewBrowser(t, a) // alice on another device: another IdP session
	other.SignIn("http://localhost/t/acme/", with(aliceClaims(), "sid", "idp-sid-2"))
	good := logoutClaims(a, "idp-sid-1")
	otherIssuer := testissuer.New(t)
	stale := with(good, "iat", time.Now().Add(-time.Hour).Unix())
	// A valid token for another IdP session, posted once: its replay is
	// refused.
	used := logoutClaims(a, "idp-sid-unrelated")
	if rec := postLogout(a, url.Values{"logout_token": {a.Iss.Sign(t, used)}}); rec.Code != http.StatusOK {
		t.Fatalf("a valid token for another IdP session: %d %s", rec.Code, rec.Body)
	}
	hostileTokens := []struct {
		name string
		form url.Values
	}{
		{"no logout_token", url.Values{}},
		{"two logout_tokens", url.Values{"logout_token": {a.Iss.Sign(t, good), a.Iss.Sign(t, good)}}},
		{"not a JWT", url.Values{"logout_token": {"not-a-jwt"}}},
		{"tampered payload", url.Values{"logout_token": {testissuer.Tamper(a.Iss.Sign(t, good))}}},
		{"signed by another issuer's key", url.Values{"logout_token": {otherIssuer.Sign(t, good)}}},
		{"alg none", url.Values{"logout_token": {testissuer.Unsigned(good)}}},
		{"HMAC with the public key", url.Values{"logout_token": {testissuer.SignWith(t, jose.HS256, a.Iss.PublicKeyPEM(t), good)}}},
		{"wrong iss", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "iss", otherIssuer.URL))}}},
		{"wrong aud", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "aud", "another-client"))}}},
		{"no events", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "events", nil))}}},
		{"events without the logout event", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "events", map[string]any{"http://example.com/other": map[string]any{}}))}}},
		{"the logout event not an object", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "events", map[string]any{"http://schemas.openid.net/event/backchannel-logout": "yes"}))}}},
		{"events a list", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "events", []string{"http://schemas.openid.net/event/backchannel-logout"}))}}},
		{"nonce present", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "nonce", "n-1"))}}},
		{"neither sid nor sub", url.Values{"logout_token": {a.Iss.Sign(t, with(with(good, "sid", nil), "sub", nil))}}},
		{"sid not a string", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "sid", 7))}}},
		{"no jti", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "jti", nil))}}},
		{"replayed jti", url.Values{"logout_token": {a.Iss.Sign(t, with(used, "sid", "idp-sid-1"))}}},
		{"expired", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "exp", time.Now().Add(-5*time.Minute).Unix()))}}},
		{"iat in the future", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "iat", time.Now().Add(10*time.Minute).Unix()))}}},
		{"iat too old", url.Values{"logout_token": {a.Iss.Sign(t, with(stale, "exp", nil))}}},
		{"no iat", url.Values{"logout_token": {a.Iss.Sign(t, with(good, "iat", nil))}}},
	}
	for _, tc := range hostileTokens {
		rec := postLogout(a, tc.form)
		var body struct{ Error, ErrorDescription string }
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"error":"invalid_request"`) || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %s", tc.name, rec.Code, rec.Body)
		}
		if !signedIn(t, alice) || !signedIn(t, aliceOnA) || !signedIn(t, other) {
			t.Fatalf("%s: a refused logout token ended a session", tc.name)
		}
	}
	if n := a.Metric(t, "portero_backchannel_logouts_total", "result", "invalid"); n != float64(len(hostileTokens)-1) {
		t.Errorf("invalid logout tokens counted %v, want %d", n, len(hostileTokens)-1)
	}
	if n := a.Metric(t, "portero_backchannel_logouts_total", "result", "replayed"); n != 1 {
		t.Errorf("replayed logout tokens counted %v", n)
	}
	if rec := a.Do(t, "GET", "http://localhost/.portero/backchannel-logout", "", nil, ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}

	// The valid token, posted to replica A: the sessions of IdP session 1
	// end on both replicas; the other device's session stays.
	rec := postLogout(a, url.Values{"logout_token": {a.Iss.Sign(t, good)}})
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("valid logout token: %d %s", rec.Code, rec.Body)
	}
	if signedIn(t, aliceOnA) {
		t.Fatal("the session of the logged-out IdP session still works on the replica that received the logout")
	}
	eventually(t, "replica B still accepts a session whose IdP session logged out", func() bool { return !signedIn(t, alice) })
	if !signedIn(t, other) {
		t.Fatal("a session of another IdP session ended")
	}
	if rec := postLogout(a, url.Values{"logout_token": {a.Iss.Sign(t, good)}}); rec.Code != http.StatusBadRequest {
		t.Fatalf("the same token again: %d", rec.Code)
	}
	// A token naming only the subject ends every session of it.
	if rec := postLogout(b, url.Values{"logout_token": {b.Iss.Sign(t, with(logoutClaims(b, ""), "sid", nil))}}); rec.Code != http.StatusOK {
		t.Fatalf("a subject-only token on replica B: %d %s", rec.Code, rec.Body)
	}
	eventually(t, "alice's other session survived a logout naming her subject", func() bool { return !signedIn(t, other) })
}

// While the store cannot answer, a session is refused (it may have been
// revoked) and signing out answers 503 keeping the cookie, so signing out
// again retries.
func TestSessionsFailClosedWithoutTheStore(t *testing.T) {
	store, _ := gatewaytest.OpenStore(t, access.WithActors(control.ActorOf))
	h := newHarnessWith(t, nil, harnessOpts{Login: true, Store: store})
	b := gatewaytest.NewBrowser(t, h)
	b.SignIn("http://localhost/t/acme/", aliceClaims())
	page := b.Do("GET", "http://localhost/.portero/logout", nil, nil)
	m := csrfField.FindStringSubmatch(page.Body.String())
	if m == nil || !signedIn(t, b) {
		t.Fatal("not signed in")
	}
	store.Close()
	if signedIn(t, b) {
		t.Fatal("a session was accepted while the store cannot say whether it was revoked")
	}
	rec := b.Do("POST", "http://localhost/.portero/logout", url.Values{"csrf": {m[1]}}, http.Header{"Origin": {"http://localhost"}})
	if _, kept := b.Cookies["portero_session"]; rec.Code == http.StatusSeeOther || !kept {
		t.Fatalf("sign-out without the store: %d, cookie kept %v", rec.Code, kept)
	}
}
