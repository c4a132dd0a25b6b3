package control_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/gatewaytest"
)

func TestBrowserSignInLandsOnTheRequestedPage(t *testing.T) {
	h, _, b := newLoginHarness(t)
	rec := b.SignIn("http://localhost/t/acme/orders?page=2", aliceClaims())
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/t/acme/orders?page=2" {
		t.Fatalf("callback: %d %q %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	sess := b.Cookies["portero_session"]
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Secure {
		t.Fatalf("session cookie %+v (plain-http localhost: not Secure)", sess)
	}
	if _, left := b.Cookies[loginCookie]; left {
		t.Fatal("login transaction cookie not cleared")
	}
	b.Cookies["app_pref"] = &http.Cookie{Name: "app_pref", Value: "dark"}
	rec = b.Do("GET", "http://localhost/t/acme/orders?page=2", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("signed-in page: %d %s", rec.Code, rec.Body)
	}
	got := h.UpstreamSaw(t)
	if got.Header.Get("X-Portero-User") != "alice" || got.Header.Get("X-Portero-Tenant") != "acme" {
		t.Errorf("identity headers %v", got.Header)
	}
	if c := got.Header.Get("Cookie"); c != "app_pref=dark" {
		t.Errorf("upstream Cookie header %q: the session must not reach the app", c)
	}
	rec = b.Do("GET", "http://localhost/.portero/userinfo", nil, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"sub":"alice"`) {
		t.Errorf("userinfo %d %s", rec.Code, rec.Body)
	}
	// Another tenant's page: the session is valid, the policy says no.
	if rec := b.Do("GET", "http://localhost/t/globex/", nil, nil); rec.Code != 403 {
		t.Errorf("other tenant: %d", rec.Code)
	}
}

func TestLoginCallbackHostileCases(t *testing.T) {
	h, _, b := newLoginHarness(t)
	start := func() (authURL string, txn *http.Cookie) {
		b.Cookies = map[string]*http.Cookie{}
		rec := b.Do("GET", "http://localhost/.portero/login?rd=/t/acme/", nil, nil)
		return rec.Header().Get("Location"), b.Cookies[loginCookie]
	}
	callback := func(code, state string, txn *http.Cookie) *httptest.ResponseRecorder {
		b.Cookies = map[string]*http.Cookie{}
		if txn != nil {
			b.Cookies[txn.Name] = txn
		}
		return b.Do("GET", "http://localhost/.portero/callback?code="+url.QueryEscape(code)+"&state="+url.QueryEscape(state), nil, nil)
	}
	cases := map[string]func() *httptest.ResponseRecorder{
		"no login cookie": func() *httptest.ResponseRecorder {
			authURL, _ := start()
			code, state := h.Iss.Authorize(t, authURL, aliceClaims())
			return callback(code, state, nil)
		},
		"mismatched state": func() *httptest.ResponseRecorder {
			authURL, txn := start()
			code, _ := h.Iss.Authorize(t, authURL, aliceClaims())
			return callback(code, "attacker-state", txn)
		},
		"login cookie of another sign-in": func() *httptest.ResponseRecorder {
			_, other := start()
			authURL, _ := start()
			code, state := h.Iss.Authorize(t, authURL, aliceClaims())
			return callback(code, state, other)
		},
		"tampered login cookie": func() *httptest.ResponseRecorder {
			authURL, txn := start()
			code, state := h.Iss.Authorize(t, authURL, aliceClaims())
			v := []byte(txn.Value)
			v[len(v)-3] ^= 1
			return callback(code, state, &http.Cookie{Name: txn.Name, Value: string(v)})
		},
		"session cookie posing as login cookie": func() *httptest.ResponseRecorder {
			b.Cookies = map[string]*http.Cookie{}
			b.SignIn("http://localhost/t/acme/", aliceClaims())
			sess := b.Cookies["portero_session"]
			authURL, _ := start()
			code, state := h.Iss.Authorize(t, authURL, aliceClaims())
			return callback(code, state, &http.Cookie{Name: loginCookie, Value: sess.Value})
		},
		"mismatched nonce": func() *httptest.ResponseRecorder {
			authURL, txn := start()
			c := aliceClaims()
			c["nonce"] = "attacker-nonce"
			code, state := h.Iss.Authorize(t, authURL, c)
			return callback(code, state, txn)
		},
		"replayed login transaction": func() *httptest.ResponseRecorder {
			authURL, txn := start()
			code, state := h.Iss.Authorize(t, authURL, aliceClaims())
			if rec := callback(code, state, txn); rec.Code != http.StatusFound {
				t.Fatalf("first use: %d %s", rec.Code, rec.Body)
			}
			code2, _ := h.Iss.Authorize(t, authURL, aliceClaims())
			return callback(code2, state, txn)
		},
		"IdP error": func() *httptest.ResponseRecorder {
			authURL, txn := start()
			state, _ := url.Parse(authURL)
			b.Cookies = map[string]*http.Cookie{txn.Name: txn}
			return b.Do("GET", "http://localhost/.portero/callback?error=access_denied&state="+url.QueryEscape(state.Query().Get("state")), nil, nil)
		},
		"unknown code": func() *httptest.ResponseRecorder {
			authURL, txn := start()
			_, state := h.Iss.Authorize(t, authURL, aliceClaims())
			return callback("forged-code", state, txn)
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			rec := run()
			if rec.Code < 400 {
				t.Fatalf("accepted: %d %q", rec.Code, rec.Header().Get("Location"))
			}
			for _, c := range rec.Result().Cookies() {
				if c.Name == "portero_session" && c.MaxAge >= 0 && c.Value != "" {
					t.Fatal("a session cookie was set")
				}
			}
		})
	}
}

func TestLoginRefusesOpenRedirects(t *testing.T) {
	_, _, b := newLoginHarness(t)
	for _, rd := range []string{"//evil.com", "https://evil.com/", "/\\evil.com", "https:evil.com", "%2f%2fevil.com"} {
		rec := b.Do("GET", "http://localhost/.portero/login?rd="+url.QueryEscape(rd), nil, nil)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("rd=%q: %d %q", rd, rec.Code, rec.Header().Get("Location"))
		}
	}
	rec := b.Do("GET", "http://localhost/.portero/login?rd="+url.QueryEscape("http://acme.apps.example.com/api/x"), nil, nil)
	if rec.Code != http.StatusFound {
		t.Errorf("a route's host is a valid return target: %d", rec.Code)
	}
}

// Many requests with an expired session at the same moment: one refresh.
func TestRefreshIsSingleFlight(t *testing.T) {
	h, clk, b := newLoginHarness(t)
	b.SignIn("http://localhost/t/acme/", aliceClaims())
	go func() {
		for range h.Got {
		}
	}()
	clk.Advance(6 * time.Minute) // past the 5-minute tokens
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	sess := b.Cookies["portero_session"]
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("GET", "http://localhost/t/acme/", nil)
			req.AddCookie(&http.Cookie{Name: sess.Name, Value: sess.Value})
			rec := httptest.NewRecorder()
			h.Gateway.ServeHTTP(rec, req)
			codes <- rec.Code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("request during refresh: %d\n%s", c, h.Logs.String())
		}
	}
	if n := h.Iss.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	// The refreshed cookie carries on without another refresh.
	rec := b.Do("GET", "http://localhost/t/acme/", nil, nil)
	if rec.Code != 200 || h.Iss.Refreshes() != 1 {
		t.Fatalf("after refresh: %d, %d refreshes", rec.Code, h.Iss.Refreshes())
	}
}

func TestFailedRefreshSignsOut(t *testing.T) {
	h, clk, b := newLoginHarness(t)
	b.SignIn("http://localhost/t/acme/", aliceClaims())
	h.Iss.FailRefresh = true
	clk.Advance(6 * time.Minute)
	rec := b.Do("GET", "http://localhost/t/acme/", nil, nil)
	if rec.Code != http.StatusFound || !strings.Contains(rec.Header().Get("Location"), "/.portero/login") {
		t.Fatalf("after failed refresh: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if _, ok := b.Cookies["portero_session"]; ok {
		t.Fatal("session cookie kept after a failed refresh")
	}
}

func TestLogoutCSRF(t *testing.T) {
	h, _, b := newLoginHarness(t)
	b.SignIn("http://localhost/t/acme/", aliceClaims())
	page := b.Do("GET", "http://localhost/.portero/logout", nil, nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.Body.String())
	if page.Code != 200 || m == nil {
		t.Fatalf("confirmation page: %d %s", page.Code, page.Body)
	}
	token := m[1]
	if _, ok := b.Cookies["portero_session"]; !ok {
		t.Fatal("GET /.portero/logout signed out")
	}
	// A second user's token, for the "token of another session" case.
	other := gatewaytest.NewBrowser(t, h)
	other.SignIn("http://localhost/t/acme/", map[string]any{"sub": "bob", "roles": []string{"acme:administrator"}})
	otherPage := other.Do("GET", "http://localhost/.portero/logout", nil, nil)
	otherToken := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(otherPage.Body.String())[1]

	hostile := []struct {
		name string
		form url.Values
		hdr  http.Header
	}{
		{"no token", url.Values{}, nil},
		{"empty token", url.Values{"csrf": {""}}, nil},
		{"wrong token", url.Values{"csrf": {"AAAA" + token[4:]}}, nil},
		{"another session's token", url.Values{"csrf": {otherToken}}, nil},
		{"cross-origin post", url.Values{"csrf": {token}}, http.Header{"Origin": {"https://evil.example.com"}}},
		{"null origin", url.Values{"csrf": {token}}, http.Header{"Origin": {"null"}}},
	}
	for _, tc := range hostile {
		rec := b.Do("POST", "http://localhost/.portero/logout", tc.form, tc.hdr)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s: %d", tc.name, rec.Code)
		}
		if _, ok := b.Cookies["portero_session"]; !ok {
			t.Fatalf("%s: signed out", tc.name)
		}
	}
	if rec := b.Do("PUT", "http://localhost/.portero/logout", url.Values{"csrf": {token}}, nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", rec.Code)
	}
	old := b.Cookies["portero_session"]
	rec := b.Do("POST", "http://localhost/.portero/logout", url.Values{"csrf": {token}}, http.Header{"Origin": {"http://localhost"}})
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, h.Iss.URL+"/session/end?") ||
		!strings.Contains(loc, "client_id=portero-test") || !strings.Contains(loc, "post_logout_redirect_uri=http%3A%2F%2Flocalhost%2F") {
		t.Fatalf("logout: %d %q", rec.Code, loc)
	}
	if _, ok := b.Cookies["portero_session"]; ok {
		t.Fatal("session cookie not cleared")
	}
	// A copy of the old cookie no longer works on this replica.
	b.Cookies["portero_session"] = old
	if rec := b.Do("GET", "http://localhost/t/acme/", nil, nil); rec.Code != http.StatusFound {
		t.Fatalf("replayed session after logout: %d", rec.Code)
	}
}

// A new sign-in while the identity provider is down gets a Portero page
// saying so, with a link to try again, not a redirect to a dead address.
func TestSignInWhileTheIdPIsDownShowsAPage(t *testing.T) {
	h, _, b := newLoginHarness(t)
	if rec := b.Do("GET", "http://localhost/.portero/login?rd=/t/acme/orders", nil, nil); rec.Code != http.StatusFound {
		t.Fatalf("with the IdP up: %d", rec.Code)
	}
	h.Iss.Server.Close()
	rec := b.Do("GET", "http://localhost/.portero/login?rd=/t/acme/orders", nil, nil)
	body := rec.Body.String()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Location") != "" || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(body, "identity provider cannot be reached") || !strings.Contains(body, `href="/.portero/login?rd=%2Ft%2Facme%2Forders"`) {
		t.Fatalf("with the IdP down: %d %v %s", rec.Code, rec.Header(), body)
	}
	// A protected page still sends the browser to Portero's login, which
	// then shows the page.
	if rec := b.Do("GET", "http://localhost/t/acme/orders", nil, nil); rec.Code != http.StatusFound || !strings.HasPrefix(rec.Header().Get("Location"), "http://localhost/.portero/login") {
		t.Fatalf("protected page: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}
