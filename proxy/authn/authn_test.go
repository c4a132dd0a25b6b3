package authn

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/proxy/authn/session"
)

// newTestSessions is browser sign-in for an issuer that is never reached.
func newTestSessions(t testing.TB) *Sessions {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(`
oidc:
  issuer: https://idp.example.com
  audiences: [portero]
  client_id: portero-test
  client_secret: s3cret
  redirect_url: http://localhost/.portero/callback
session:
  keys: ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
  lifetime: 8h
routes:
  - name: app
    upstream: http://127.0.0.1:1
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSessions(cfg, NewBearer(cfg.OIDC, time.Now), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func BenchmarkSessionStep(b *testing.B) {
	s := newTestSessions(b)
	now := time.Now()
	res, err := s.seal(httptest.NewRequest("GET", "http://localhost/", nil), sessionData{ID: RandomToken(),
		Claims: map[string]any{"sub": "alice", "email": "alice@example.com"}, Expiry: now.Add(time.Hour).Unix(), Until: now.Add(8 * time.Hour).Unix()})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://localhost/t/acme/", nil)
	for _, c := range res.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	w := httptest.NewRecorder()
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s.Current(w, req) == nil {
				b.Fatal("no session")
			}
		}
	})
	// With an access store, a session also passes its revocation check:
	// the store's in-memory mirror, a few map lookups while nothing is
	// written.
	b.Run("cached, access store", func(b *testing.B) {
		store, err := access.Open(context.Background(), filepath.Join(b.TempDir(), "portero.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		state := access.NewSessionState(store)
		if err := store.RevokeSession(context.Background(), "another", time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
		s.UseStore(state)
		defer func() { s.state, s.shared = newMemoryState(time.Now, nil), false }()
		b.ReportAllocs()
		for b.Loop() {
			if s.Current(w, req) == nil {
				b.Fatal("no session")
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		raw, _ := session.Sealed(req, "portero_session")
		b.ReportAllocs()
		for b.Loop() {
			if s.open(raw, time.Now()) == nil {
				b.Fatal("no session")
			}
		}
	})
}

func TestClaimMapping(t *testing.T) {
	claims := map[string]any{
		"sub":                       "u1",
		"realm_access":              map[string]any{"roles": []any{"acme:administrator", "acme:administrator", "globex:location_manager"}},
		"https://example.com/roles": []any{"initech:account_manager"},
		"tenants":                   "umbrella",
		"groups":                    []any{"g1", 7, "g2"},
	}
	m := config.Claims{Subject: "sub", Roles: "realm_access.roles", Groups: "groups", Tenants: "tenants", Email: "email", Org: "org"}
	id, err := mapClaims(m, claims, "session", "ref")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"acme": {"administrator"}, "globex": {"location_manager"}, "umbrella": {}}
	if fmt.Sprint(id.Memberships) != fmt.Sprint(want) || fmt.Sprint(id.Groups) != "[g1 g2]" {
		t.Errorf("memberships %v groups %v", id.Memberships, id.Groups)
	}
	m.Roles = "https://example.com/roles"
	id, _ = mapClaims(m, claims, "bearer", "")
	if _, ok := id.Memberships["initech"]; !ok {
		t.Errorf("namespaced claim not read: %v", id.Memberships)
	}
	if _, err := mapClaims(m, map[string]any{"email": "x"}, "bearer", ""); err == nil {
		t.Error("identity without a subject")
	}
}
