// Package authn is the request path's authenticate stage: bearer JWTs
// verified against the OIDC issuer (Bearer), browser sessions in encrypted
// cookies with the authorization code flow that starts them (Sessions), and
// the one entry point that tries both (Authenticator). The cookie codec is
// beneath it in authn/session.
package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/cache"
	"github.com/portero-gateway/portero/policy"
)

// Error is an authentication failure with a short reason for metrics.
type Error struct {
	Reason string // "missing", "malformed", "expired", "invalid", "unavailable"
	Err    error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }

// Bearer verifies JWT bearer tokens against the OIDC issuer:
// signature (JWKS from discovery, refetched on an unknown key id), an
// allowlist of asymmetric algorithms, issuer, audience, expiry and not-before.
type Bearer struct {
	cfg      config.OIDC
	verifier atomic.Pointer[oidc.IDTokenVerifier]
	// provider and idTokens serve browser sign-in: the discovered endpoints,
	// and a verifier for ID tokens issued to our client id.
	provider atomic.Pointer[oidc.Provider]
	idTokens atomic.Pointer[oidc.IDTokenVerifier]
	// logoutTokens verifies back-channel logout tokens: the provider's
	// keys, issuer and our client id; their expiry is optional, so it is
	// checked by BackchannelLogout.
	logoutTokens atomic.Pointer[oidc.IDTokenVerifier]
	// tokens remembers verified tokens (the raw token -> its identity)
	// until they expire, at most maxCacheAge, so each token's signature is
	// checked once rather than on every request.
	tokens *cache.Bounded[string, *policy.Identity]
	now    func() time.Time
}

// maxCacheAge bounds how long a token is trusted without re-verification, so
// a key the IdP withdraws stops working within it.
const maxCacheAge = 5 * time.Minute

func NewBearer(cfg config.OIDC, now func() time.Time) *Bearer {
	return &Bearer{cfg: cfg, tokens: cache.New[string, *policy.Identity](cfg.TokenCacheSize), now: now}
}

// discover reads the issuer's discovery document. ctx must outlive the
// authenticator: key sets are refetched with it.
func (b *Bearer) Discover(ctx context.Context, client *http.Client) error {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, client), b.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("oidc discovery at %s: %w", b.cfg.Issuer, err)
	}
	kctx := oidc.ClientContext(ctx, client)
	if b.cfg.ClientID != "" {
		b.idTokens.Store(p.VerifierContext(kctx, &oidc.Config{
			ClientID:             b.cfg.ClientID,
			SupportedSigningAlgs: b.cfg.Algorithms,
			Now:                  b.now,
		}))
		b.logoutTokens.Store(p.VerifierContext(kctx, &oidc.Config{
			ClientID:             b.cfg.ClientID,
			SupportedSigningAlgs: b.cfg.Algorithms,
			SkipExpiryCheck:      true,
			Now:                  b.now,
		}))
	}
	b.provider.Store(p)
	b.verifier.Store(p.VerifierContext(kctx, &oidc.Config{
		SkipClientIDCheck:    true, // audiences are checked below, against a list
		SupportedSigningAlgs: b.cfg.Algorithms,
		Now:                  b.now,
	}))
	return nil
}

// discoverUntilReady retries discovery with backoff until it succeeds or ctx
// ends. The backoff stops growing at 5 s: discovery is one small GET, and the
// gateway is not ready until it succeeds, so a longer pause only delays
// readiness after the IdP comes back.
func (b *Bearer) DiscoverUntilReady(ctx context.Context, client *http.Client, onErr func(error)) {
	delay := 500 * time.Millisecond
	for {
		err := b.Discover(ctx, client)
		if err == nil {
			return
		}
		onErr(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// Ready says whether discovery has completed (tokens can be verified).
func (b *Bearer) Ready() bool { return b.verifier.Load() != nil }

// Issuer is the configured OIDC issuer.
func (b *Bearer) Issuer() string { return b.cfg.Issuer }

// probe fetches the issuer's discovery document and says why it cannot be
// reached, or nil.
func (b *Bearer) probe(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(b.cfg.Issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
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

// bearerToken returns the token of an "Authorization: Bearer" header, "" when
// there is no Authorization header, and an error for any other form.
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errors.New("more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", errors.New("authorization is not a bearer token")
	}
	return token, nil
}

// authenticate verifies a raw token and maps its claims to an identity.
func (b *Bearer) Authenticate(ctx context.Context, raw string) (*policy.Identity, error) {
	now := b.now()
	if id, ok := b.tokens.GetAt(raw, now); ok {
		return id, nil
	}
	v := b.verifier.Load()
	if v == nil {
		return nil, &Error{"unavailable", errors.New("identity provider discovery has not completed")}
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, &Error{"expired", err}
		}
		return nil, &Error{"invalid", err}
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(b.cfg.Audiences, a) }) {
		return nil, &Error{"invalid", fmt.Errorf("audience %q is not one of %q", tok.Audience, b.cfg.Audiences)}
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, &Error{"malformed", err}
	}
	if err := checkTokenTimes(claims, now, b.cfg.ClockSkew); err != nil {
		return nil, &Error{"invalid", err}
	}
	id, err := mapClaims(b.cfg.Claims, claims, "bearer", "")
	if err != nil {
		return nil, &Error{"malformed", err}
	}
	expires := now.Add(maxCacheAge)
	if tok.Expiry.Before(expires) {
		expires = tok.Expiry
	}
	if expires.After(now) { // (a zero time would mean "no expiry" to the cache)
		b.tokens.PutUntil(raw, id, expires, now)
	}
	return id, nil
}

// checkTokenTimes refuses a token that claims to be issued (iat) or to
// become valid (nbf) further in the future than the allowed clock skew:
// such a token was minted for later use, or by a clock that is wrong, and
// would otherwise outlive its intended window. The expiry is checked by
// the verifier. Claims that are present but not numbers are refused.
func checkTokenTimes(claims map[string]any, now time.Time, skew time.Duration) error {
	for _, name := range []string{"iat", "nbf"} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		n, ok := v.(float64)
		if !ok {
			return fmt.Errorf("claim %s is not a number", name)
		}
		at := time.Unix(int64(n), 0)
		if at.After(now.Add(skew)) {
			return fmt.Errorf("claim %s is %s, later than now (%s) plus the allowed clock skew %s", name, at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
		}
	}
	return nil
}

// mapClaims turns verified claims into the policy's identity, per the claim
// mapping in gateway.yaml.
func mapClaims(m config.Claims, claims map[string]any, auth, session string) (*policy.Identity, error) {
	sub := claimString(claims, m.Subject)
	if sub == "" {
		return nil, fmt.Errorf("token has no %q claim", m.Subject)
	}
	roles := claimStrings(claims, m.Roles)
	memberships := map[string][]string{}
	for _, t := range claimStrings(claims, m.Tenants) {
		if access.IsID(t) && memberships[t] == nil {
			memberships[t] = []string{}
		}
	}
	for _, r := range roles {
		t, role, ok := strings.Cut(r, ":")
		if ok && access.IsID(t) && role != "" && !strings.Contains(role, ":") {
			memberships[t] = append(memberships[t], role)
		}
	}
	for t, rs := range memberships {
		sort.Strings(rs)
		memberships[t] = slices.Compact(rs)
	}
	return policy.NewIdentity(policy.Identity{
		Subject:     sub,
		Email:       claimString(claims, m.Email),
		Org:         claimString(claims, m.Org),
		Groups:      claimStrings(claims, m.Groups),
		Roles:       roles,
		Memberships: memberships,
		Claims:      claims,
		Auth:        auth,
		Session:     session,
	}), nil
}

// claimValue returns the claim named path or, failing that, follows path as
// dotted keys into nested claims ("realm_access.roles"). The whole name is
// tried first so namespaced claims ("https://example.com/roles") work.
func claimValue(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

func claimString(claims map[string]any, path string) string {
	s, _ := claimValue(claims, path).(string)
	return s
}

// claimStrings accepts a list of strings or a single string.
func claimStrings(claims map[string]any, path string) []string {
	switch v := claimValue(claims, path).(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
