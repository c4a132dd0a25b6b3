package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestAssertionReuseIsBoundedByHalfItsLifetime(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := newAssertionSigner(key, "portero", "app", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	alice := assertionClaims{ID: "1", Subject: "alice", Tenant: "acme", Roles: []string{"administrator"}}
	a1, _ := s.sign(alice, now)
	a2, _ := s.sign(assertionClaims{ID: "2", Subject: "alice", Tenant: "acme", Roles: []string{"administrator"}}, now.Add(29*time.Second))
	if a1 != a2 {
		t.Error("identical claims within half the TTL were signed again")
	}
	a3, _ := s.sign(alice, now.Add(30*time.Second))
	if a3 == a1 {
		t.Error("assertion reused past half its lifetime")
	}
	// Claim sets that a careless key would confuse with alice's or with
	// each other: each gets an assertion of its own.
	seen := map[string]string{a3: "alice"}
	for _, c := range []assertionClaims{
		{Subject: "alice", Tenant: "acme", Roles: []string{"administrator", "auditor"}},
		{Subject: "alice", Tenant: "acme", Roles: []string{"administrator,auditor"}},
		{Subject: "alice", Tenant: "acme\x00administrator"},
		{Subject: "alice\x00acme", Roles: []string{"administrator"}},
		{Subject: "alice", Tenant: "acme", Roles: []string{"administrator"}, Act: &actClaim{Subject: "sam"}},
		{Subject: "alice", Tenant: "acme", Roles: []string{"administrator"}, Act: &actClaim{}},
	} {
		b, _ := s.sign(c, now.Add(30*time.Second))
		if prev, dup := seen[b]; dup {
			t.Errorf("assertion for %+v reused %s's", c, prev)
		}
		seen[b] = fmt.Sprintf("%+v", c)
	}
	for _, other := range []assertionClaims{
		{Subject: "alice", Tenant: "globex", Roles: []string{"administrator"}},
		{Subject: "alice", Tenant: "acme", Roles: []string{"location_manager"}},
		{Subject: "bob", Tenant: "acme", Roles: []string{"administrator"}},
	} {
		if b, _ := s.sign(other, now.Add(30*time.Second)); b == a3 {
			t.Errorf("assertion for %+v reused alice's", other)
		}
	}
	tok, err := jwt.ParseSigned(a3, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.Claims(&key.PublicKey, &c); err != nil {
		t.Fatal(err)
	}
	if c.Expiry.Time().Sub(now.Add(30*time.Second)) != time.Minute {
		t.Errorf("exp %v", c.Expiry.Time())
	}
}

func BenchmarkAssertionSignFresh(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := newAssertionSigner(key, "portero", "app", time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.signNew(assertionClaims{Subject: "alice", Tenant: "acme"}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
