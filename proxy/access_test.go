package proxy

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/access"
)

// accessConfig puts the tenant in the path and parses JSON bodies, so the
// policy sees the app's paths (/locations/l1/profile) and edited fields.
const accessConfig = `
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

// newAccessHarness is a gateway over a real SQLite store holding acme with
// a location manager, an accountant, a deactivatable member and a partner.
func newAccessHarness(t *testing.T) (*harness, *access.Store) {
	t.Helper()
	h, store := newRecordingAccessHarness(t)
	go func() { // the upstream's record of requests is not needed here
		for range h.got {
		}
	}()
	return h, store
}

// newRecordingAccessHarness is newAccessHarness with the upstream's record
// of requests kept for the test (h.upstreamSaw).
func newRecordingAccessHarness(t *testing.T) (*harness, *access.Store) {
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
	h := newHarnessWith(t, nil, harnessOpts{store: store, config: func(issuer, upstream string) string {
		return fmt.Sprintf(accessConfig, issuer, upstream)
	}})
	return h, store
}

func (h *harness) tokenFor(t *testing.T, sub string) string {
	return h.iss.Sign(t, h.iss.Claims(sub, "portero"))
}

func (h *harness) expect(t *testing.T, token, method, path, body string, status int, reason string) {
	t.Helper()
	var hdr http.Header
	if body != "" {
		hdr = http.Header{"Content-Type": {"application/json"}}
	}
	rec := h.do(t, method, "http://localhost"+path, token, hdr, body)
	if rec.Code != status {
		t.Fatalf("%s %s as token: %d, want %d: %s", method, path, rec.Code, status, rec.Body)
	}
	if reason != "" && !strings.Contains(rec.Body.String(), reason) {
		t.Fatalf("%s %s: %s, want reason %s", method, path, rec.Body, reason)
	}
}

func TestLocationManagerFieldsAndLocations(t *testing.T) {
	h, _ := newAccessHarness(t)
	leo := h.tokenFor(t, "leo")
	h.expect(t, leo, "PATCH", "/t/acme/locations/l1/profile", `{"phone":"+1 555 0100"}`, 200, "")
	h.expect(t, leo, "PATCH", "/t/acme/locations/l1/profile", `{"phone":"+1","name":"Evil Corp"}`, 403, "field.not_allowed")
	h.expect(t, leo, "PATCH", "/t/acme/locations/l2/profile", `{"phone":"+1"}`, 403, "scope.location")
	h.expect(t, leo, "POST", "/t/acme/businesses", "", 403, "role.action_not_allowed")
	h.expect(t, leo, "GET", "/t/globex/locations", "", 404, "tenant.unknown")
}

func TestAccountantReachesBillingOnly(t *testing.T) {
	h, _ := newAccessHarness(t)
	avery := h.tokenFor(t, "avery")
	h.expect(t, avery, "GET", "/t/acme/billing", "", 200, "")
	h.expect(t, avery, "POST", "/t/acme/billing/payments", `{"amount":10}`, 200, "")
	for _, p := range []string{"/t/acme/reviews", "/t/acme/ads", "/t/acme/insights", "/t/acme/locations"} {
		h.expect(t, avery, "GET", p, "", 403, "feature.not_granted")
	}
}

func TestPartnerLosesAccessRightAfterRevocation(t *testing.T) {
	h, store := newAccessHarness(t)
	ctx := context.Background()
	pat := h.tokenFor(t, "pat")
	h.expect(t, pat, "GET", "/t/acme/reviews", "", 403, "member.none")
	d, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	h.expect(t, pat, "GET", "/t/acme/reviews", "", 403, "delegation.not_accepted")
	if _, err := store.Transition(ctx, d.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	rec := h.do(t, "GET", "http://localhost/t/acme/reviews", pat, nil, "")
	if rec.Code != 200 {
		t.Fatalf("accepted partner: %d %s", rec.Code, rec.Body)
	}
	h.expect(t, pat, "GET", "/t/acme/ads", "", 403, "delegation.product_not_granted")
	if _, err := store.Transition(ctx, d.ID, "revoke"); err != nil {
		t.Fatal(err)
	}
	h.expect(t, pat, "GET", "/t/acme/reviews", "", 403, "delegation.not_accepted")
}

func TestDeactivatedMemberRefusedOnTheNextRequest(t *testing.T) {
	h, store := newAccessHarness(t)
	adam := h.tokenFor(t, "adam") // stays valid for an hour
	h.expect(t, adam, "GET", "/t/acme/settings", "", 200, "")
	h.expect(t, adam, "GET", "/t/acme/settings", "", 200, "") // now from the caches
	if _, err := store.SetMemberStatus(context.Background(), "acme", "adam", "deactivated"); err != nil {
		t.Fatal(err)
	}
	h.expect(t, adam, "GET", "/t/acme/settings", "", 403, "member.deactivated")
	if _, err := store.SetMemberStatus(context.Background(), "acme", "adam", "active"); err != nil {
		t.Fatal(err)
	}
	h.expect(t, adam, "GET", "/t/acme/settings", "", 200, "")
}

func TestUpstreamSeesEffectiveRoleScopeAndFeatures(t *testing.T) {
	h, _ := newAccessHarness(t)
	got := make(chan http.Header, 1)
	h.upstream.Config.Handler = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() })
	h.expect(t, h.tokenFor(t, "leo"), "GET", "/t/acme/locations/l1", "", 200, "")
	hdr := <-got
	if hdr.Get("X-Portero-Role") != "location_manager" || hdr.Get("X-Portero-Scope") != "locations:l1" ||
		!strings.Contains(hdr.Get("X-Portero-Features"), `"profile_listings":"edit"`) || hdr.Get("X-Portero-Partner") != "" {
		t.Fatalf("headers: %v", hdr)
	}
}

func TestAccessStoreErrorFailsClosed(t *testing.T) {
	h, store := newAccessHarness(t)
	store.Close()
	h.expect(t, h.tokenFor(t, "adam"), "GET", "/t/acme/settings", "", 503, "access.unavailable")
	if n := testutil.ToFloat64(h.gw.metrics.accessLookups.WithLabelValues("error")); n != 1 {
		t.Fatalf("error lookups: %v", n)
	}
}
