package gatewaytest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/pgtest"
)

// AccessConfig puts the tenant in the path and parses JSON bodies, so the
// policy sees the app's paths (/locations/l1/profile) and edited fields.
const AccessConfig = `
tenant:
  path: /t/{tenant}/
oidc:
  issuer: %s
  audiences: [portero]
routes:
  - name: app
    upstream: %s
    api: true
    body: {json: true, max_bytes: 4096}
`

// StoreEnv, set to "postgres", puts the stores of these harnesses on the
// test PostgreSQL server (internal/pgtest) instead of SQLite files, so the
// request path's tests run on both (scripts/test.sh runs them twice).
const StoreEnv = "PORTERO_TEST_STORE"

// OpenStore opens an empty access store for t: a SQLite file, or with
// PORTERO_TEST_STORE=postgres a schema of its own on the test PostgreSQL
// server, listening for writes as a gateway's store does. It returns the
// store and its access.store value.
func OpenStore(t testing.TB, opts ...access.Option) (*access.Store, string) {
	t.Helper()
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "portero.db")
	if os.Getenv(StoreEnv) == "postgres" {
		target = pgtest.Schema(t)
	}
	store, err := access.Open(ctx, target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if access.IsPostgres(target) {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); store.WatchWrites(wctx, 10*time.Millisecond) }()
		t.Cleanup(func() { cancel(); <-done })
		for deadline := time.Now().Add(10 * time.Second); store.Health() != nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the PostgreSQL store does not listen: %v", store.Health())
			}
		}
	}
	return store, target
}

// NewAccess is a gateway over a real access store holding acme with
// a location manager, an accountant, a deactivatable member and a partner.
func NewAccess(t testing.TB) (*Harness, *access.Store) {
	t.Helper()
	h, store := NewRecordingAccess(t)
	go func() { // the upstream's record of requests is not needed here
		for range h.Got {
		}
	}()
	return h, store
}

// NewRecordingAccess is NewAccess with the upstream's record
// of requests kept for the test (h.UpstreamSaw).
func NewRecordingAccess(t testing.TB) (*Harness, *access.Store) {
	t.Helper()
	return NewRecordingAccessWith(t, "")
}

// NewRecordingAccessWith is NewRecordingAccess with extra appended to the
// configuration.
func NewRecordingAccessWith(t testing.TB, extra string) (*Harness, *access.Store) {
	t.Helper()
	ctx := context.Background()
	store, _ := OpenStore(t)
	steps := []error{}
	add := func(_ any, err error) { steps = append(steps, err) }
	add(store.CreateTenant(ctx, access.Tenant{ID: "acme", Name: "Acme", Owner: "olivia"}))
	add(store.PutMember(ctx, access.Member{Tenant: "acme", User: "leo", Role: "location_manager", Locations: []string{"l1"},
		Features: map[string]string{"profile_listings": "edit"}, Fields: map[string][]string{"profile_listings": {"phone", "hours"}}}))
	add(store.PutMember(ctx, access.Member{Tenant: "acme", User: "avery", Role: "account_manager", Profile: "accounting"}))
	add(store.PutMember(ctx, access.Member{Tenant: "acme", User: "adam", Role: "administrator"}))
	add(store.CreatePartner(ctx, access.Partner{ID: "partnerco", Name: "Partner Co"}))
	add(store.PutPartnerUser(ctx, access.PartnerUser{Partner: "partnerco", User: "pat"}))
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	h := NewWith(t, nil, Options{Store: store, Extra: extra, Config: func(issuer, upstream string) string {
		return fmt.Sprintf(AccessConfig, issuer, upstream)
	}})
	return h, store
}

// TokenFor is a valid token for sub.
func (h *Harness) TokenFor(t testing.TB, sub string) string {
	return h.Iss.Sign(t, h.Iss.Claims(sub, "portero"))
}

// Expect sends a request as token and fails unless it is answered with
// status (and reason, when not "").
func (h *Harness) Expect(t testing.TB, token, method, path, body string, status int, reason string) {
	t.Helper()
	var hdr http.Header
	if body != "" {
		hdr = http.Header{"Content-Type": {"application/json"}}
	}
	rec := h.Do(t, method, "http://localhost"+path, token, hdr, body)
	if rec.Code != status {
		t.Fatalf("%s %s as token: %d, want %d: %s", method, path, rec.Code, status, rec.Body)
	}
	if reason != "" && !strings.Contains(rec.Body.String(), reason) {
		t.Fatalf("%s %s: %s, want reason %s", method, path, rec.Body, reason)
	}
}
