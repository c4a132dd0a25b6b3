// Package testissuer is an in-process OpenID issuer for unit tests: a
// discovery document and a JWKS served over HTTP by httptest, and helpers to
// mint tokens, well-formed or hostile. It never runs in production code.
package testissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer serves discovery and JWKS and signs tokens.
type Issuer struct {
	Server *httptest.Server
	URL    string

	// Now is the issuer's clock (default time.Now); TokenTTL the lifetime of
	// the tokens its token endpoint issues (default one hour).
	Now      func() time.Time
	TokenTTL time.Duration
	// FailRefresh makes every refresh_token grant fail.
	FailRefresh bool

	mu        sync.Mutex
	keys      []*rsa.PrivateKey // published in the JWKS
	kids      []string
	jwksFetch int
	codes     map[string]pendingCode
	refreshes map[string]map[string]any // refresh token -> claims
	refreshN  int
}

type pendingCode struct {
	claims    map[string]any
	challenge string
	clientID  string
}

// New starts an issuer with one signing key; it stops with the test.
func New(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Now: time.Now, TokenTTL: time.Hour, codes: map[string]pendingCode{}, refreshes: map[string]map[string]any{}}
	iss.Rotate(t)
	mux := http.NewServeMux()
	iss.Server = httptest.NewServer(mux)
	iss.URL = iss.Server.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"authorization_endpoint":                iss.URL + "/auth",
			"token_endpoint":                        iss.URL + "/token",
			"jwks_uri":                              iss.URL + "/jwks",
			"end_session_endpoint":                  iss.URL + "/session/end",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		iss.mu.Lock()
		defer iss.mu.Unlock()
		iss.jwksFetch++
		set := jose.JSONWebKeySet{}
		for i, k := range iss.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: iss.kids[i], Algorithm: "RS256", Use: "sig"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("POST /token", iss.token)
	t.Cleanup(iss.Server.Close)
	return iss
}

// Authorize plays the user signing in at the authorization endpoint: it reads
// the client's authorization URL and returns the code and state the browser
// would bring back. claims go into the ID token, with the request's nonce
// unless claims set their own.
func (iss *Issuer) Authorize(t testing.TB, authURL string, claims map[string]any) (code, state string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("response_type") != "code" {
		t.Fatalf("authorization request without PKCE S256: %s", authURL)
	}
	c := map[string]any{"nonce": q.Get("nonce")}
	for k, v := range claims {
		c[k] = v
	}
	code = "code-" + strconv.Itoa(len(iss.codes)) + "-" + q.Get("state")[:8]
	iss.mu.Lock()
	iss.codes[code] = pendingCode{claims: c, challenge: q.Get("code_challenge"), clientID: q.Get("client_id")}
	iss.mu.Unlock()
	return code, q.Get("state")
}

// Refreshes counts refresh_token grants.
func (iss *Issuer) Refreshes() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.refreshN
}

func (iss *Issuer) token(w http.ResponseWriter, r *http.Request) {
	clientID, _, _ := r.BasicAuth()
	if clientID == "" {
		clientID = r.PostFormValue("client_id")
	}
	iss.mu.Lock()
	var claims map[string]any
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		pc, ok := iss.codes[r.PostFormValue("code")]
		delete(iss.codes, r.PostFormValue("code")) // single use
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || pc.clientID != clientID || base64.RawURLEncoding.EncodeToString(sum[:]) != pc.challenge {
			iss.mu.Unlock()
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		claims = pc.claims
	case "refresh_token":
		c, ok := iss.refreshes[r.PostFormValue("refresh_token")]
		delete(iss.refreshes, r.PostFormValue("refresh_token")) // rotated
		iss.refreshN++
		if !ok || iss.FailRefresh {
			iss.mu.Unlock()
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		claims = map[string]any{}
		for k, v := range c {
			if k != "nonce" {
				claims[k] = v
			}
		}
	default:
		iss.mu.Unlock()
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	refresh := "rt-" + strconv.Itoa(len(iss.refreshes)) + "-" + strconv.FormatInt(iss.Now().UnixNano(), 36)
	iss.refreshes[refresh] = claims
	key, kid := iss.keys[len(iss.keys)-1], iss.kids[len(iss.kids)-1]
	iss.mu.Unlock()

	now := iss.Now()
	idc := map[string]any{"iss": iss.URL, "aud": clientID, "iat": now.Unix(), "exp": now.Add(iss.TokenTTL).Unix()}
	for k, v := range claims {
		idc[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": "at-" + refresh, "token_type": "Bearer", "expires_in": int(iss.TokenTTL.Seconds()),
		"id_token": SignWith(nopT{}, jose.RS256, jose.JSONWebKey{Key: key, KeyID: kid}, idc), "refresh_token": refresh,
	})
}

// nopT lets the token endpoint reuse SignWith outside a test's goroutine.
type nopT struct{ testing.TB }

func (nopT) Helper()           {}
func (nopT) Fatal(args ...any) { panic(args) }

// Rotate adds a new signing key; tokens are signed with the newest key.
func (iss *Issuer) Rotate(t testing.TB) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, k)
	iss.kids = append(iss.kids, "k"+string(rune('0'+len(iss.keys))))
}

// JWKSFetches counts how often the JWKS was fetched.
func (iss *Issuer) JWKSFetches() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.jwksFetch
}

// Claims returns valid claims for subject and audience, expiring in an hour.
func (iss *Issuer) Claims(sub, aud string) map[string]any {
	now := iss.Now()
	return map[string]any{
		"iss": iss.URL, "sub": sub, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// Sign signs claims with the newest key (RS256).
func (iss *Issuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	iss.mu.Lock()
	key, kid := iss.keys[len(iss.keys)-1], iss.kids[len(iss.kids)-1]
	iss.mu.Unlock()
	return SignWith(t, jose.RS256, jose.JSONWebKey{Key: key, KeyID: kid}, claims)
}

// SignWith signs claims with any algorithm and key, for hostile tokens.
func SignWith(t testing.TB, alg jose.SignatureAlgorithm, key any, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Unsigned returns an "alg": "none" token.
func Unsigned(claims map[string]any) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "."
}

// PublicKeyPEM returns the newest key's public half as PEM, the secret an
// algorithm-confusion attacker would use for HS256.
func (iss *Issuer) PublicKeyPEM(t testing.TB) []byte {
	t.Helper()
	iss.mu.Lock()
	key := iss.keys[len(iss.keys)-1]
	iss.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Tamper flips a character in the token's payload, keeping its signature.
func Tamper(token string) string {
	parts := strings.Split(token, ".")
	p := []byte(parts[1])
	if p[5] == 'A' {
		p[5] = 'B'
	} else {
		p[5] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}
