package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portero-gateway/portero/internal/cache"
)

// assertionSigner signs the JWT that tells the upstream, verifiably, who the
// request is from and for which tenant. Upstreams verify it with the keys
// served at /.well-known/portero/jwks.json.
type assertionSigner struct {
	signer   jose.Signer
	issuer   string
	audience string
	ttl      time.Duration
	jwks     []byte

	// An ECDSA signature costs more than the policy evaluation, so a signed
	// assertion is reused for the same claims during the first half of its
	// lifetime. Its jti then names the assertion, not each request.
	recent *cache.Bounded[string, string]
}

// maxRecentAssertions bounds the reuse cache.
const maxRecentAssertions = 10000

// assertionClaims is the assertion's payload.
type assertionClaims struct {
	Issuer   string   `json:"iss"`
	Audience string   `json:"aud"`
	Subject  string   `json:"sub"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	Tenant   string   `json:"tenant,omitempty"`
	Email    string   `json:"email,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	// Act names the admin acting as Subject under master access (RFC 8693).
	Act *actClaim `json:"act,omitempty"`
}

type actClaim struct {
	Subject string `json:"sub"`
}

func newAssertionSigner(key *ecdsa.PrivateKey, issuer, audience string, ttl time.Duration) (*assertionSigner, error) {
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("assertion key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("assertion signer: %w", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, err
	}
	return &assertionSigner{signer: signer, issuer: issuer, audience: audience, ttl: ttl, jwks: jwks,
		recent: cache.New[string, string](maxRecentAssertions)}, nil
}

// sign returns an assertion for the claims, reusing a recent one with the
// same claims (apart from jti and times) while it is in its first half-life.
func (s *assertionSigner) sign(c assertionClaims, now time.Time) (string, error) {
	key := reuseKey(c)
	if token, ok := s.recent.GetAt(key, now); ok {
		return token, nil
	}
	token, err := s.signNew(c, now)
	if err != nil {
		return "", err
	}
	s.recent.PutUntil(key, token, now.Add(s.ttl/2), now)
	return token, nil
}

// reuseKey is every claim but jti and the times, each length-prefixed so
// that no two claim sets share a key (roles ["a,b"] and ["a", "b"] differ).
func reuseKey(c assertionClaims) string {
	act := ""
	if c.Act != nil {
		act = "act:" + c.Act.Subject
	}
	n := 16 + len(c.Subject) + len(c.Tenant) + len(c.Email) + len(act)
	for _, r := range c.Roles {
		n += 4 + len(r)
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range [4]string{c.Subject, c.Tenant, c.Email, act} {
		writeField(&b, f)
	}
	for _, r := range c.Roles {
		writeField(&b, r)
	}
	return b.String()
}

func writeField(b *strings.Builder, f string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(f)))
	b.Write(n[:])
	b.WriteString(f)
}

func (s *assertionSigner) signNew(c assertionClaims, now time.Time) (string, error) {
	c.Issuer, c.Audience = s.issuer, s.audience
	c.IssuedAt = now.Unix()
	c.Expiry = now.Add(s.ttl).Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := s.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// LoadAssertionKey reads an EC P-256 private key from a PEM file (SEC 1 "EC
// PRIVATE KEY" or PKCS #8 "PRIVATE KEY").
func LoadAssertionKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read assertion key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("assertion key %s: no PEM block found (create one with: portero keygen)", path)
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("assertion key %s: PEM block is %q, want EC PRIVATE KEY or PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("assertion key %s: %w", path, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("assertion key %s: must be an EC P-256 key for ES256", path)
	}
	return ec, nil
}

// GenerateAssertionKey returns a new P-256 key as PKCS #8 PEM.
func GenerateAssertionKey() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
