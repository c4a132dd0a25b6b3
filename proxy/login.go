package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portero-gateway/portero/proxy/login"
)

// Control endpoints, under a prefix no route can claim.
const (
	controlPrefix = "/.portero/"
	loginPath     = "/.portero/login"
	callbackPath  = "/.portero/callback"
	logoutPath    = "/.portero/logout"
	userinfoPath  = "/.portero/userinfo"
)

// loginCookie holds the login transaction between /.portero/login and the
// callback; loginTTL bounds how long a sign-in may take.
const (
	loginCookie = "portero_login"
	loginTTL    = 10 * time.Minute
)

// loginTxn is one sign-in in progress.
type loginTxn struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"rd"`
}

// consumedLogins makes each login transaction single-use on this replica,
// even if its cookie is replayed.
type consumedLogins struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (c *consumedLogins) consume(state string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, t := range c.until {
		if now.After(t) {
			delete(c.until, s)
		}
	}
	if _, used := c.until[state]; used {
		return false
	}
	c.until[state] = now.Add(loginTTL)
	return true
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// serveControl answers the /.portero/ endpoints.
func (g *Gateway) serveControl(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, apiPrefix) {
		g.serveAPI(w, r)
		return
	}
	if !g.cfg.BrowserLogin() {
		writeDenial(w, r, false, denial{status: http.StatusNotFound, reason: "control.disabled", id: decisionID(r.Context())})
		return
	}
	if r.URL.Path == strings.TrimSuffix(consolePrefix, "/") {
		http.Redirect(w, r, consolePrefix, http.StatusMovedPermanently)
		return
	}
	if strings.HasPrefix(r.URL.Path, consolePrefix) {
		g.serveConsole(w, r)
		return
	}
	switch r.URL.Path {
	case loginPath:
		if g.rateLimit(w, r, limitSignIn, clientKey(r), false) {
			g.startLogin(w, r, r.URL.Query().Get("rd"))
		}
	case callbackPath:
		if g.rateLimit(w, r, limitCallback, clientKey(r), false) {
			g.finishLogin(w, r)
		}
	case logoutPath:
		g.logout(w, r)
	case userinfoPath:
		g.userinfo(w, r)
	case masterPath, masterEndPath:
		g.serveMaster(w, r)
	default:
		writeDenial(w, r, false, denial{status: http.StatusNotFound, reason: "control.unknown", id: decisionID(r.Context())})
	}
}

func (g *Gateway) loginError(w http.ResponseWriter, r *http.Request, status int, reason string) {
	g.metrics.authFailures.WithLabelValues("login").Inc()
	g.log.Info("sign-in refused", "decision_id", decisionID(r.Context()), "reason", reason)
	writeDenial(w, r, false, denial{status: status, reason: reason, id: decisionID(r.Context())})
}

// startLogin begins the authorization code flow with PKCE, state and nonce.
func (g *Gateway) startLogin(w http.ResponseWriter, r *http.Request, rd string) {
	returnTo, ok := login.SafeReturnTarget(rd, g.returnHosts)
	if !ok {
		g.loginError(w, r, http.StatusBadRequest, "login.bad_return_target")
		return
	}
	// Send the browser to the identity provider only while it answers:
	// otherwise it would land on a dead address, with nothing to say why.
	conf := g.sessions.oauthConfig()
	if conf == nil || g.idpUnreachable(r.Context()) != nil {
		g.idpDownPage(w, r, returnTo)
		return
	}
	txn := loginTxn{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), ReturnTo: returnTo}
	payload, _ := json.Marshal(txn)
	cookies, err := g.sessions.codec.Seal(nil, loginCookie, payload, g.now().Add(loginTTL))
	if err != nil {
		g.loginError(w, r, http.StatusInternalServerError, "login.error")
		return
	}
	for _, c := range cookies {
		http.SetCookie(w, c)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, conf.AuthCodeURL(txn.State, oauth2.S256ChallengeOption(txn.Verifier), oidc.Nonce(txn.Nonce)), http.StatusFound)
}

// idpProbeTimeout bounds the look at the identity provider before a
// sign-in is sent there.
const idpProbeTimeout = 2 * time.Second

// idpUnreachable says why the identity provider cannot be reached now, or
// nil: it fetches the discovery document, small and what the browser's
// next stop is served beside.
func (g *Gateway) idpUnreachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, idpProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(g.cfg.OIDC.Issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: idpProbeTimeout}).Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("the identity provider answered %s", resp.Status)
	}
	return nil
}

// idpDownPage tells the browser that sign-in cannot start because the
// identity provider cannot be reached, with a link to try again.
func (g *Gateway) idpDownPage(w http.ResponseWriter, r *http.Request, returnTo string) {
	g.metrics.authFailures.WithLabelValues("login").Inc()
	g.log.Warn("sign-in not started: the identity provider cannot be reached", "issuer", g.cfg.OIDC.Issuer, "decision_id", decisionID(r.Context()))
	w.Header().Set("Retry-After", "5")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeDenial(w, r, false, denial{status: http.StatusServiceUnavailable, reason: "auth.idp_unreachable", id: decisionID(r.Context())})
		return
	}
	retry := loginPath + "?" + url.Values{"rd": {returnTo}}.Encode()
	writePage(w, http.StatusServiceUnavailable, idpDownTemplate, struct{ Retry, ID string }{retry, decisionID(r.Context())})
}

var idpDownTemplate = template.Must(template.New("idp-down").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign-in unavailable — Portero</title>` + pageStyle + `</head><body>
<h1>Sign-in is unavailable</h1>
<p id="idp-down">The identity provider cannot be reached right now, so you cannot sign in. Nothing is wrong with your account.</p>
<p><a href="{{.Retry}}" id="retry">Try again</a></p>
<p class="hint">Reason: auth.idp_unreachable{{if .ID}} · decision {{.ID}}{{end}}</p>
</body></html>`))

// finishLogin is the redirect back from the IdP: check the transaction,
// exchange the code, verify the ID token and its nonce, start the session.
func (g *Gateway) finishLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	payload, err := g.sessions.codec.Open(r, loginCookie, g.now())
	for _, c := range g.sessions.codec.Clear(loginCookie) {
		http.SetCookie(w, c) // single use, whatever happens next
	}
	if err != nil {
		g.loginError(w, r, http.StatusBadRequest, "login.expired")
		return
	}
	var txn loginTxn
	if err := json.Unmarshal(payload, &txn); err != nil || txn.State == "" {
		g.loginError(w, r, http.StatusBadRequest, "login.expired")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(txn.State)) != 1 {
		g.loginError(w, r, http.StatusBadRequest, "login.state_mismatch")
		return
	}
	if !g.consumed.consume(txn.State, g.now()) {
		g.loginError(w, r, http.StatusBadRequest, "login.replayed")
		return
	}
	if e := q.Get("error"); e != "" {
		g.loginError(w, r, http.StatusForbidden, "login.idp_refused")
		return
	}
	conf := g.sessions.oauthConfig()
	if conf == nil {
		g.loginError(w, r, http.StatusServiceUnavailable, "auth.unavailable")
		return
	}
	tok, err := conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(txn.Verifier))
	if err != nil {
		g.log.Info("code exchange failed", "error", err.Error())
		g.loginError(w, r, http.StatusBadGateway, "login.exchange_failed")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := g.sessions.verifyIDToken(r.Context(), rawID)
	if err != nil {
		g.log.Info("ID token refused", "error", err.Error())
		g.loginError(w, r, http.StatusBadRequest, "login.bad_id_token")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(txn.Nonce)) != 1 {
		g.loginError(w, r, http.StatusBadRequest, "login.nonce_mismatch")
		return
	}
	data := sessionData{
		ID:      randomToken(),
		Refresh: tok.RefreshToken,
		Expiry:  idt.Expiry.Unix(),
		Until:   g.now().Add(g.cfg.Session.Lifetime).Unix(),
	}
	if err := idt.Claims(&data.Claims); err != nil {
		g.loginError(w, r, http.StatusBadRequest, "login.bad_id_token")
		return
	}
	res, err := g.sessions.seal(r, data)
	if err != nil {
		g.log.Info("session refused", "error", err.Error())
		g.loginError(w, r, http.StatusBadRequest, "login.bad_id_token")
		return
	}
	for _, c := range res.cookies {
		http.SetCookie(w, c)
	}
	g.log.Info("signed in", "sub", res.state.identity.Subject, "decision_id", decisionID(r.Context()))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, txn.ReturnTo, http.StatusFound)
}

var logoutPage = template.Must(template.New("logout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign out</title>
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1.2rem}</style>
</head><body><h1>Sign out?</h1>
{{if .Subject}}<p>You are signed in as <strong>{{.Subject}}</strong>.</p>{{end}}
<form method="post" action="/.portero/logout">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" id="portero-signout" autofocus>Sign out</button>
</form></body></html>
`))

// logout shows a confirmation page on GET; a POST that passes the
// cross-site rule (formChecks) ends the session here and, where the IdP
// supports it, at the IdP.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	st := g.sessions.current(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'") // no form-action: the POST redirects to the IdP
		w.Header().Set("X-Frame-Options", "DENY")
		data := struct{ Subject, CSRF string }{}
		if st != nil {
			data.Subject = st.identity.Email
			if data.Subject == "" {
				data.Subject = st.identity.Subject
			}
			data.CSRF = g.sessions.csrfToken(st.data.ID)
		}
		_ = logoutPage.Execute(w, data)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeDenial(w, r, false, denial{status: http.StatusMethodNotAllowed, reason: "logout.method", id: decisionID(r.Context())})
		return
	}
	if !g.formChecks(w, r, st) {
		return
	}
	if st != nil {
		g.sessions.revoke(st)
		g.endMastersOfSession(r.Context(), st.identity)
		g.log.Info("signed out", "sub", st.identity.Subject)
	}
	g.sessions.clear(w)
	w.Header().Set("Cache-Control", "no-store")
	target := g.cfg.OIDC.PostLogoutRedirectURL
	if end := g.endSessionEndpoint(); end != "" {
		q := url.Values{"client_id": {g.cfg.OIDC.ClientID}, "post_logout_redirect_uri": {g.cfg.OIDC.PostLogoutRedirectURL}}
		sep := "?"
		if strings.Contains(end, "?") {
			sep = "&"
		}
		target = end + sep + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// browserSession returns the signed-in browser session for a control page
// (master access, the console). Without one it answers itself and returns
// nil: a GET goes to sign-in and comes back, anything else is a 401.
func (g *Gateway) browserSession(w http.ResponseWriter, r *http.Request) *sessionState {
	st := g.sessions.current(w, r)
	if st == nil {
		if r.Method == http.MethodGet {
			g.redirectToLogin(w, r, r.Host)
		} else {
			writeDenial(w, r, false, denial{status: http.StatusUnauthorized, reason: "deny.unauthenticated", id: decisionID(r.Context())})
		}
	}
	return st
}

// formChecks applies the control plane's cross-site rule
// (crossSiteRefusal) to a browser form Portero serves (sign-out, master
// access, the console): from this origin, with the session's token in the
// "csrf" field when there is a session. It answers a refusal itself.
func (g *Gateway) formChecks(w http.ResponseWriter, r *http.Request, st *sessionState) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if reason := g.crossSiteRefusal(r, st, r.PostFormValue("csrf")); reason != "" {
		g.loginError(w, r, http.StatusForbidden, reason)
		return false
	}
	return true
}

func (g *Gateway) endSessionEndpoint() string {
	p := g.bearer.provider.Load()
	if p == nil {
		return ""
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return ""
	}
	return meta.EndSession
}

// userinfo tells the browser's own scripts who is signed in.
func (g *Gateway) userinfo(w http.ResponseWriter, r *http.Request) {
	st := g.sessions.current(w, r)
	if st == nil {
		writeDenial(w, r, true, denial{status: http.StatusUnauthorized, reason: "auth.required", id: decisionID(r.Context())})
		return
	}
	id := st.identity
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sub": id.Subject, "email": id.Email, "org": id.Org, "groups": id.Groups, "roles": id.Roles,
		"memberships": id.Memberships, "session_expires": time.Unix(st.data.Until, 0).UTC(),
		"csrf":          g.sessions.csrfToken(st.data.ID), // for X-CSRF-Token on management API writes
		"tokens_expire": time.Unix(st.data.Expiry, 0).UTC(),
	})
}

// redirectToLogin sends a browser that must sign in through the login
// endpoint on the callback's host (where the login cookie must live), with
// the page it asked for as the return target.
func (g *Gateway) redirectToLogin(w http.ResponseWriter, r *http.Request, host string) {
	cb, _ := url.Parse(g.cfg.OIDC.RedirectURL)
	rd := r.URL.RequestURI()
	if !strings.EqualFold(host, cb.Hostname()) || r.Host != cb.Host {
		rd = cb.Scheme + "://" + r.Host + rd
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, cb.Scheme+"://"+cb.Host+loginPath+"?rd="+url.QueryEscape(rd), http.StatusFound)
}
