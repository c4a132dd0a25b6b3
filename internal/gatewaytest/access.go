package gatewaytest

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
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

// NewAccess is a gateway over a real SQLite store holding acme with
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
	store, err := access.Open(ctx, filepath.Join(t.TempDir(), "portero.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
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
