package authn

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/cache"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn/session"
)

// sessionData is what the encrypted session cookie holds.
type sessionData struct {
	ID      string         `json:"sid"`
	Claims  map[string]any `json:"c"`
	Refresh string         `json:"r,omitempty"`
	Expiry  int64          `json:"e"` // when the tokens expire (unix seconds)
	Until   int64          `json:"u"` // when the session ends, refreshed or not
	// Issued is when the sign-in happened (unix milliseconds; 0 in cookies
	// sealed before it was added, which "sign out everywhere" counts as
	// issued before any sign-out).
	Issued int64 `json:"i,omitempty"`
	// IdPSID is the identity provider's session (the ID token's sid
	// claim), which back-channel logout names.
	IdPSID string `json:"is,omitempty"`
}

// Session is an opened browser session with its identity ready for the
// policy.
type Session struct {
	data     sessionData
	Identity *policy.Identity
}

// ID is the session's id (secret: it keys revocation and the CSRF token).
func (s *Session) ID() string { return s.data.ID }

// Until is when the session ends, refreshed or not.
func (s *Session) Until() time.Time { return time.Unix(s.data.Until, 0) }

// Issued is when the session was signed in (the Unix epoch for cookies
// sealed before the issue time was kept).
func (s *Session) Issued() time.Time { return time.UnixMilli(s.data.Issued) }

// IdPSID is the identity provider's session it was started from (its sid
// claim), "" when the IdP gave none.
func (s *Session) IdPSID() string { return s.data.IdPSID }

// TokensExpire is when the session's tokens expire (they are refreshed
// then, when the IdP gave a refresh token).
func (s *Session) TokensExpire() time.Time { return time.Unix(s.data.Expiry, 0) }

// Sessions reads browser sessions from the encrypted cookie,
// refreshes expired tokens once per session however many requests arrive
// together, and remembers opened cookies so the per-request cost is a map
// lookup. Sign-outs and used login states are kept in a SessionStore: the
// access store's, shared by replicas, when UseStore gave one; else this
// process's memory.
type Sessions struct {
	cfg     *config.Config
	codec   *session.Codec
	idp     *Bearer
	csrfKey []byte
	log     *slog.Logger
	now     func() time.Time

	flight singleflight.Group

	// opened maps a sealed cookie value (or "refreshed\x00" and a spent
	// refresh token) to its opened state, until the session ends.
	opened *cache.Bounded[string, *Session]
	// state holds revocations and used tokens: memoryState, or the access
	// store's (UseStore).
	state  SessionStore
	shared bool // state is the access store's
	// stateErrLogged is when a state error was last logged (unix
	// seconds), so an outage logs a line every few seconds, not one per
	// request.
	stateErrLogged atomic.Int64
}

// maxOpenedSessions bounds the cache of opened cookies.
const maxOpenedSessions = 10000

func NewSessions(cfg *config.Config, idp *Bearer, log *slog.Logger, now func() time.Time) (*Sessions, error) {
	codec, err := session.NewCodec(cfg.Session.KeyBytes, session.Attributes{Domain: cfg.Session.Domain, Secure: cfg.Session.Secure})
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, cfg.Session.KeyBytes[0])
	mac.Write([]byte("portero csrf v1"))
	s := &Sessions{
		cfg: cfg, codec: codec, idp: idp, csrfKey: mac.Sum(nil), log: log, now: now,
		opened: cache.New[string, *Session](maxOpenedSessions),
	}
	s.state = newMemoryState(now, func(what string, bound int) {
		log.Warn(what+" at their bound; one that has not ended yet is forgotten on this replica", "bound", bound)
	})
	return s, nil
}

// UseStore keeps sign-outs and used login states in st (the access
// store's server-side session state) instead of this process's memory, so
// they reach every replica and survive restarts. Call it before serving.
func (s *Sessions) UseStore(st SessionStore) {
	s.state, s.shared = st, true
}

// SharedState says whether sign-outs reach every replica (an access store
// holds them) rather than this process only.
func (s *Sessions) SharedState() bool { return s.shared }

// oauthConfig is the client configuration; nil until discovery completed.
func (s *Sessions) oauthConfig() *oauth2.Config {
	p := s.idp.provider.Load()
	if p == nil {
		return nil
	}
	return &oauth2.Config{
		ClientID:     s.cfg.OIDC.ClientID,
		ClientSecret: s.cfg.OIDC.ClientSecret,
		RedirectURL:  s.cfg.OIDC.RedirectURL,
		Scopes:       s.cfg.OIDC.Scopes,
		Endpoint:     p.Endpoint(),
	}
}

// Current returns the request's session, refreshing its tokens when they
// have expired (setting the new cookie on w), or nil when there is none.
func (s *Sessions) Current(w http.ResponseWriter, r *http.Request) *Session {
	st, _ := s.CurrentOrErr(w, r)
	return st
}

// CurrentOrErr is Current, except that when the session state cannot say
// whether the request's session was revoked it returns the error (the
// caller answers 503: the session may have been revoked, and sending the
// user to sign in again would fail the same way) instead of no session.
func (s *Sessions) CurrentOrErr(w http.ResponseWriter, r *http.Request) (*Session, error) {
	st, raw, err := s.unrevoked(r)
	if err != nil {
		s.stateFailed("session check", err)
		return nil, err // fail closed: the session may have been revoked
	}
	if st == nil {
		return nil, nil
	}
	if s.now().Unix() < st.data.Expiry {
		return st, nil
	}
	return s.refresh(w, r, raw, st), nil
}

// ForSignOut returns the request's session for signing it out: like
// Current without refreshing its tokens, except that when the session
// state cannot answer it returns the session with the error (the caller
// cannot record the sign-out, and says so), instead of nothing.
func (s *Sessions) ForSignOut(r *http.Request) (*Session, error) {
	st, _, err := s.unrevoked(r)
	return st, err
}

// unrevoked opens the request's session cookie (a map lookup when it was
// opened before) and checks it has not ended or been revoked; with an
// error, the session is returned but its revocation is unknown.
func (s *Sessions) unrevoked(r *http.Request) (*Session, string, error) {
	raw, ok := session.Sealed(r, s.cfg.Session.CookieName)
	if !ok {
		return nil, "", nil
	}
	now := s.now()
	st := s.lookup(raw, now)
	if st == nil {
		st = s.open(raw, now)
		if st == nil {
			return nil, "", nil
		}
		s.remember(raw, st, time.Unix(st.data.Until, 0))
	}
	if now.Unix() >= st.data.Until {
		return nil, "", nil
	}
	revoked, err := s.state.SessionRevoked(r.Context(), st.Identity.Session, st.Identity.Subject, st.data.IdPSID, time.UnixMilli(st.data.Issued))
	if err != nil {
		return st, raw, err
	}
	if revoked {
		return nil, "", nil
	}
	return st, raw, nil
}

func (s *Sessions) open(raw string, now time.Time) *Session {
	payload, err := s.codec.OpenSealed(s.cfg.Session.CookieName, raw, now)
	if err != nil {
		return nil
	}
	var data sessionData
	if err := json.Unmarshal(payload, &data); err != nil || data.ID == "" {
		return nil
	}
	if data.IdPSID == "" {
		data.IdPSID = claimString(data.Claims, "sid")
	}
	id, err := mapClaims(s.cfg.OIDC.Claims, data.Claims, "session", sessionRef(data.ID))
	if err != nil {
		return nil
	}
	return &Session{data: data, Identity: id}
}

type refreshed struct {
	state   *Session
	cookies []*http.Cookie
}

// refresh trades the refresh token for new tokens once per session: requests
// that arrive together share one refresh, and later requests still carrying
// the old cookie find the new session in the cache. When refresh fails the
// session ends.
func (s *Sessions) refresh(w http.ResponseWriter, r *http.Request, raw string, st *Session) *Session {
	if st.data.Refresh == "" {
		s.Clear(w)
		return nil
	}
	// The outcome of a refresh is remembered under the refresh token it
	// spent, before its flight ends: a request that read the old state just
	// as another request's refresh finished takes that outcome instead of
	// refreshing again with a token the IdP has already rotated away.
	spent := "refreshed\x00" + st.data.Refresh
	if cur := s.lookup(spent, s.now()); cur != nil {
		return cur
	}
	v, err, _ := s.flight.Do(st.data.ID, func() (any, error) {
		if cur := s.lookup(spent, s.now()); cur != nil {
			return &refreshed{state: cur}, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		res, err := s.doRefresh(ctx, r, st.data)
		if err == nil {
			s.remember(spent, res.state, s.now().Add(time.Minute))
		}
		return res, err
	})
	if err != nil {
		s.log.Info("session refresh failed; the browser signs in again", "sub", st.Identity.Subject, "error", err.Error())
		s.forget(raw)
		s.Clear(w)
		return nil
	}
	res := v.(*refreshed)
	for _, c := range res.cookies {
		http.SetCookie(w, c)
	}
	s.remember(raw, res.state, s.now().Add(time.Minute))
	return res.state
}

func (s *Sessions) doRefresh(ctx context.Context, r *http.Request, old sessionData) (*refreshed, error) {
	conf := s.oauthConfig()
	if conf == nil {
		return nil, errors.New("identity provider discovery has not completed")
	}
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: old.Refresh, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	data := old
	data.Refresh = tok.RefreshToken
	data.Expiry = tok.Expiry.Unix()
	if rawID, ok := tok.Extra("id_token").(string); ok && rawID != "" {
		idt, err := s.verifyIDToken(ctx, rawID)
		if err != nil {
			return nil, err
		}
		if idt.Subject != claimString(old.Claims, "sub") {
			return nil, errors.New("refreshed ID token is for another subject")
		}
		data.Claims = nil // old's map is shared with cached state: never write into it
		if err := idt.Claims(&data.Claims); err != nil {
			return nil, err
		}
		data.Expiry = idt.Expiry.Unix()
		if sid := claimString(data.Claims, "sid"); sid != "" {
			data.IdPSID = sid
		}
	}
	if tok.Expiry.IsZero() && data.Expiry <= 0 {
		data.Expiry = s.now().Add(5 * time.Minute).Unix()
	}
	return s.seal(r, data)
}

func (s *Sessions) verifyIDToken(ctx context.Context, raw string) (*oidc.IDToken, error) {
	v := s.idp.idTokens.Load()
	if v == nil {
		return nil, errors.New("identity provider discovery has not completed")
	}
	return v.Verify(ctx, raw)
}

// seal makes the cookies for a session and its state.
func (s *Sessions) seal(r *http.Request, data sessionData) (*refreshed, error) {
	id, err := mapClaims(s.cfg.OIDC.Claims, data.Claims, "session", sessionRef(data.ID))
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	cookies, err := s.codec.Seal(r, s.cfg.Session.CookieName, payload, time.Unix(data.Until, 0))
	if err != nil {
		return nil, err
	}
	return &refreshed{state: &Session{data: data, Identity: id}, cookies: cookies}, nil
}

func (s *Sessions) Clear(w http.ResponseWriter) {
	for _, c := range s.codec.Clear(s.cfg.Session.CookieName) {
		http.SetCookie(w, c)
	}
}

// sessionRef names a sign-in session to the policy and the store (master
// access is bound to one) without revealing its id.
func sessionRef(sid string) string {
	sum := sha256.Sum256([]byte("portero session ref v1\x00" + sid))
	return hex.EncodeToString(sum[:16])
}

// CSRFToken binds a form (or a management API write) to one session.
func (s *Sessions) CSRFToken(st *Session) string {
	mac := hmac.New(sha256.New, s.csrfKey)
	mac.Write([]byte(st.data.ID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// ValidCSRF says whether token is st's CSRF token.
func (s *Sessions) ValidCSRF(st *Session, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.CSRFToken(st)))
}

// Revoke ends a session even if a copy of its cookie is replayed later:
// on every replica with an access store, on this one without. It is
// remembered until the session would have ended: after that it is
// refused anyway.
func (s *Sessions) Revoke(ctx context.Context, st *Session) error {
	return s.state.RevokeSession(ctx, st.Identity.Session, time.Unix(st.data.Until, 0))
}

// EndUserSessions ends every session of user signed in until now, on
// every replica with an access store ("sign out everywhere", an admin
// ending a user's sessions; recorded in the audit trail by ctx's actor).
func (s *Sessions) EndUserSessions(ctx context.Context, user string) error {
	// Sessions keep their sign-in time to the millisecond: one signed in
	// within the same millisecond after this stays.
	now := s.now().Truncate(time.Millisecond)
	return s.state.RevokeUserSessions(ctx, user, now, s.lastEnd(now))
}

// lastEnd is when every session signed in before now has ended, with a
// margin for other replicas' clocks.
func (s *Sessions) lastEnd(now time.Time) time.Time {
	return now.Add(s.cfg.Session.Lifetime + 5*time.Minute)
}

// stateFailed logs an error of the session state, at most every few
// seconds.
func (s *Sessions) stateFailed(op string, err error) {
	now := s.now().Unix()
	if last := s.stateErrLogged.Load(); now-last >= 5 && s.stateErrLogged.CompareAndSwap(last, now) {
		s.log.Error("session state unavailable: sessions are refused until it answers", "op", op, "error", err.Error())
	}
}

func (s *Sessions) lookup(raw string, now time.Time) *Session {
	st, _ := s.opened.GetAt(raw, now)
	return st
}

func (s *Sessions) remember(raw string, st *Session, expires time.Time) {
	s.opened.PutUntil(raw, st, expires, s.now())
}

func (s *Sessions) forget(raw string) { s.opened.Delete(raw) }
