package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// BackchannelLogoutPath is where the identity provider posts logout
// tokens (OpenID Connect Back-Channel Logout 1.0): register it as the
// client's backchannel_logout_uri.
const BackchannelLogoutPath = "/.portero/backchannel-logout"

// backchannelLogoutEvent is the member of a logout token's events claim
// that makes it one.
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// maxLogoutTokenAge is how old (by iat) a logout token may be: its jti is
// remembered that long (plus the clock skew), so an older replay is
// refused by its age.
const maxLogoutTokenAge = 5 * time.Minute

// LogoutError is a refused back-channel logout: Result is the metric's
// label (invalid, replayed, unavailable), Description says why (to the
// identity provider, never secrets).
type LogoutError struct {
	Result      string
	Description string
	Err         error
}

func (e *LogoutError) Error() string {
	if e.Err != nil {
		return e.Description + ": " + e.Err.Error()
	}
	return e.Description
}

func invalidLogout(format string, args ...any) *LogoutError {
	return &LogoutError{Result: "invalid", Description: fmt.Sprintf(format, args...)}
}

// LoggedOut is what a verified logout token ended: the identity provider
// session (SID) or, when it named none, every session of the subject.
type LoggedOut struct {
	Subject string
	SID     string
}

// BackchannelLogout verifies a logout token from the identity provider
// and ends the sessions it names, on every replica with an access store:
// the signature with the provider's keys (asymmetric algorithms of
// oidc.algorithms only), iss, aud (our client id), typ (logout+jwt or
// JWT), iat (not later than now plus the clock skew, not older than
// maxLogoutTokenAge), exp when present, the back-channel logout event,
// sid or sub, no nonce, and jti used once. With a sid it ends the sessions
// started from that provider session; with only a sub, every session of
// the subject (which needs oidc.claims.subject to be sub).
func (s *Sessions) BackchannelLogout(ctx context.Context, raw string) (*LoggedOut, *LogoutError) {
	if raw == "" || len(raw) > 16<<10 {
		return nil, invalidLogout("logout_token is missing or too long")
	}
	if err := checkLogoutHeader(raw); err != nil {
		return nil, err
	}
	v := s.idp.logoutTokens.Load()
	if v == nil {
		return nil, &LogoutError{Result: "unavailable", Description: "identity provider discovery has not completed"}
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, &LogoutError{Result: "invalid", Description: "logout token not verified (signature, issuer or audience)", Err: err}
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, invalidLogout("logout token claims are not a JSON object")
	}
	now := s.now()
	skew := s.cfg.OIDC.ClockSkew
	iat, ok := numericClaim(claims, "iat")
	switch {
	case !ok:
		return nil, invalidLogout("iat is missing or not a number")
	case iat.After(now.Add(skew)):
		return nil, invalidLogout("iat is in the future")
	case iat.Before(now.Add(-maxLogoutTokenAge - skew)):
		return nil, invalidLogout("iat is older than %s", maxLogoutTokenAge)
	}
	remember := iat.Add(maxLogoutTokenAge + 2*skew)
	if _, present := claims["exp"]; present {
		exp, ok := numericClaim(claims, "exp")
		if !ok {
			return nil, invalidLogout("exp is not a number")
		}
		if !now.Before(exp.Add(skew)) {
			return nil, invalidLogout("the logout token has expired")
		}
		remember = later(remember, exp.Add(skew))
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(claims["events"], &events); err != nil || events == nil {
		return nil, invalidLogout("events is missing or not an object")
	}
	if ev := strings.TrimSpace(string(events[backchannelLogoutEvent])); !strings.HasPrefix(ev, "{") {
		return nil, invalidLogout("events has no %s object", backchannelLogoutEvent)
	}
	if _, present := claims["nonce"]; present {
		return nil, invalidLogout("a logout token must not carry a nonce")
	}
	sid, sidOK := stringClaim(claims, "sid")
	sub, subOK := stringClaim(claims, "sub")
	if !sidOK || !subOK {
		return nil, invalidLogout("sid and sub must be strings when present")
	}
	if sid == "" && sub == "" {
		return nil, invalidLogout("a logout token names sid or sub")
	}
	if len(sid) > 255 || len(sub) > 255 || strings.ContainsFunc(sid+sub, unicode.IsControl) {
		return nil, invalidLogout("sid and sub must be at most 255 printable characters")
	}
	if sid == "" && s.cfg.OIDC.Claims.Subject != "sub" {
		return nil, invalidLogout("a logout token naming only sub cannot be matched: oidc.claims.subject is %q", s.cfg.OIDC.Claims.Subject)
	}
	jti, _ := stringClaim(claims, "jti")
	if jti == "" {
		return nil, invalidLogout("jti is missing")
	}
	key := sha256.Sum256([]byte(tok.Issuer + "\x00" + jti))
	fresh, err := s.state.ConsumeOnce(ctx, consumedLogoutJTI, hex.EncodeToString(key[:]), remember)
	if err != nil {
		return nil, &LogoutError{Result: "unavailable", Description: "the session store cannot be reached", Err: err}
	}
	if !fresh {
		return nil, &LogoutError{Result: "replayed", Description: "this logout token (jti) was used before"}
	}
	out := &LoggedOut{Subject: sub, SID: sid}
	if sid != "" {
		err = s.state.RevokeIdPSession(ctx, sid, s.lastEnd(now))
	} else {
		err = s.state.RevokeUserSessions(ctx, sub, now.Truncate(time.Millisecond), s.lastEnd(now))
	}
	if err != nil {
		return nil, &LogoutError{Result: "unavailable", Description: "the session store cannot be reached", Err: err}
	}
	return out, nil
}

// checkLogoutHeader refuses a JWS header whose typ is neither a logout
// token's (logout+jwt) nor a plain JWT's, or whose alg is none (the
// verifier refuses it too, and every algorithm outside oidc.algorithms).
func checkLogoutHeader(raw string) *LogoutError {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return invalidLogout("logout_token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return invalidLogout("logout_token is not a JWT")
	}
	var h struct {
		Alg string  `json:"alg"`
		Typ *string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return invalidLogout("logout_token header is not JSON")
	}
	if h.Alg == "" || strings.EqualFold(h.Alg, "none") {
		return invalidLogout("logout_token is not signed")
	}
	if h.Typ != nil {
		switch strings.ToLower(*h.Typ) {
		case "jwt", "logout+jwt", "application/logout+jwt":
		default:
			return invalidLogout("logout_token typ %q is not logout+jwt", *h.Typ)
		}
	}
	return nil
}

// numericClaim reads a NumericDate claim.
func numericClaim(claims map[string]json.RawMessage, name string) (time.Time, bool) {
	var n float64
	if raw, ok := claims[name]; !ok || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(n), 0), true
}

// stringClaim reads a string claim: "" and true when absent, false when
// present but not a string.
func stringClaim(claims map[string]json.RawMessage, name string) (string, bool) {
	raw, present := claims[name]
	if !present {
		return "", true
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false
	}
	return v, true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
