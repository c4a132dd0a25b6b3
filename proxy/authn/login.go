package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Paths of the browser sign-in endpoints. The control plane serves them;
// the request path sends browsers to LoginPath.
const (
	LoginPath    = "/.portero/login"
	CallbackPath = "/.portero/callback"
)

// loginCookie holds the login transaction between LoginPath and the
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

// RandomToken is 32 random bytes, URL-safe.
func RandomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ErrIdPNotReady means discovery has not completed: sign-in cannot start.
var ErrIdPNotReady = errors.New("identity provider discovery has not completed")

// CookieNames are Portero's own cookies (each may be split into chunks
// named name_1, name_2, …): the app behind never receives them.
func (s *Sessions) CookieNames() []string { return []string{s.cfg.Session.CookieName, loginCookie} }

// IdPReady says whether sign-in can start (discovery has completed).
func (s *Sessions) IdPReady() bool { return s.oauthConfig() != nil }

// BeginLogin starts the authorization code flow with PKCE, state and nonce:
// it sets the login transaction's cookie on w and returns the identity
// provider's URL to send the browser to. returnTo must already have passed
// SafeReturnTarget.
func (s *Sessions) BeginLogin(w http.ResponseWriter, returnTo string) (string, error) {
	conf := s.oauthConfig()
	if conf == nil {
		return "", ErrIdPNotReady
	}
	txn := loginTxn{State: RandomToken(), Nonce: RandomToken(), Verifier: oauth2.GenerateVerifier(), ReturnTo: returnTo}
	payload, _ := json.Marshal(txn)
	cookies, err := s.codec.Seal(nil, loginCookie, payload, s.now().Add(loginTTL))
	if err != nil {
		return "", err
	}
	for _, c := range cookies {
		http.SetCookie(w, c)
	}
	return conf.AuthCodeURL(txn.State, oauth2.S256ChallengeOption(txn.Verifier), oidc.Nonce(txn.Nonce)), nil
}

// LoginError is a refused callback: the status to answer and a stable
// reason id; Err, when set, is the cause for the log (never shown).
type LoginError struct {
	Status int
	Reason string
	Err    error
}

func (e *LoginError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

// FinishLogin is the redirect back from the identity provider: it checks
// the transaction (single use, state), exchanges the code, verifies the ID
// token and its nonce, and starts the session, setting its cookies on w.
// It returns the session and where the browser goes next.
func (s *Sessions) FinishLogin(w http.ResponseWriter, r *http.Request) (*Session, string, *LoginError) {
	q := r.URL.Query()
	payload, err := s.codec.Open(r, loginCookie, s.now())
	for _, c := range s.codec.Clear(loginCookie) {
		http.SetCookie(w, c) // single use, whatever happens next
	}
	if err != nil {
		return nil, "", &LoginError{http.StatusBadRequest, "login.expired", nil}
	}
	var txn loginTxn
	if err := json.Unmarshal(payload, &txn); err != nil || txn.State == "" {
		return nil, "", &LoginError{http.StatusBadRequest, "login.expired", nil}
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(txn.State)) != 1 {
		return nil, "", &LoginError{http.StatusBadRequest, "login.state_mismatch", nil}
	}
	// Each login transaction is used once, even if its cookie is
	// replayed, on every replica with an access store: a used state is
	// remembered for loginTTL, by when its cookie has expired (it was
	// sealed for loginTTL from the start of the sign-in). Only its hash is
	// kept.
	sum := sha256.Sum256([]byte(txn.State))
	fresh, err := s.state.ConsumeOnce(r.Context(), consumedLoginState, hex.EncodeToString(sum[:]), s.now().Add(loginTTL))
	if err != nil {
		s.stateFailed("login state", err)
		return nil, "", &LoginError{http.StatusServiceUnavailable, "auth.unavailable", err}
	}
	if !fresh {
		return nil, "", &LoginError{http.StatusBadRequest, "login.replayed", nil}
	}
	if e := q.Get("error"); e != "" {
		return nil, "", &LoginError{http.StatusForbidden, "login.idp_refused", nil}
	}
	conf := s.oauthConfig()
	if conf == nil {
		return nil, "", &LoginError{http.StatusServiceUnavailable, "auth.unavailable", ErrIdPNotReady}
	}
	tok, err := conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(txn.Verifier))
	if err != nil {
		return nil, "", &LoginError{http.StatusBadGateway, "login.exchange_failed", err}
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := s.verifyIDToken(r.Context(), rawID)
	if err != nil {
		return nil, "", &LoginError{http.StatusBadRequest, "login.bad_id_token", err}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(txn.Nonce)) != 1 {
		return nil, "", &LoginError{http.StatusBadRequest, "login.nonce_mismatch", nil}
	}
	now := s.now()
	data := sessionData{
		ID:      RandomToken(),
		Refresh: tok.RefreshToken,
		Expiry:  idt.Expiry.Unix(),
		Until:   now.Add(s.cfg.Session.Lifetime).Unix(),
		Issued:  now.UnixMilli(),
	}
	if err := idt.Claims(&data.Claims); err != nil {
		return nil, "", &LoginError{http.StatusBadRequest, "login.bad_id_token", err}
	}
	data.IdPSID = claimString(data.Claims, "sid")
	res, err := s.seal(r, data)
	if err != nil {
		return nil, "", &LoginError{http.StatusBadRequest, "login.bad_id_token", err}
	}
	for _, c := range res.cookies {
		http.SetCookie(w, c)
	}
	return res.state, txn.ReturnTo, nil
}

// EndSessionEndpoint is the identity provider's RP-initiated logout
// endpoint, "" when it has none (or discovery has not completed).
func (s *Sessions) EndSessionEndpoint() string {
	p := s.idp.provider.Load()
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

// LogoutTarget is where the browser goes after signing out: the identity
// provider's end-session endpoint (which comes back to the configured
// post-logout address) when it has one, else that address.
func (s *Sessions) LogoutTarget() string {
	target := s.cfg.OIDC.PostLogoutRedirectURL
	if end := s.EndSessionEndpoint(); end != "" {
		q := url.Values{"client_id": {s.cfg.OIDC.ClientID}, "post_logout_redirect_uri": {s.cfg.OIDC.PostLogoutRedirectURL}}
		sep := "?"
		if strings.Contains(end, "?") {
			sep = "&"
		}
		target = end + sep + q.Encode()
	}
	return target
}

// RedirectToLogin sends a browser that must sign in through the login
// endpoint on the callback's host (where the login cookie must live), with
// the page it asked for as the return target.
func (s *Sessions) RedirectToLogin(w http.ResponseWriter, r *http.Request, host string) {
	cb, _ := url.Parse(s.cfg.OIDC.RedirectURL)
	rd := r.URL.RequestURI()
	if !strings.EqualFold(host, cb.Hostname()) || r.Host != cb.Host {
		rd = cb.Scheme + "://" + r.Host + rd
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, cb.Scheme+"://"+cb.Host+LoginPath+"?rd="+url.QueryEscape(rd), http.StatusFound)
}

// ReturnHosts are the hosts a return target may name besides the routes'
// own: the callback's host and login.allowed_redirect_hosts.
func (s *Sessions) ReturnHosts() []string {
	cb, _ := url.Parse(s.cfg.OIDC.RedirectURL)
	return append([]string{cb.Hostname()}, s.cfg.Login.AllowedRedirectHosts...)
}

// IdPUnreachable says why the identity provider cannot be reached now, or
// nil: it fetches the discovery document, small and what the browser's
// next stop is served beside.
func (s *Sessions) IdPUnreachable(ctx context.Context, timeout time.Duration) error {
	return s.idp.probe(ctx, timeout)
}
