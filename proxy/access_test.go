package proxy_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
)

func TestLocationManagerFieldsAndLocations(t *testing.T) {
	h, _ := gatewaytest.NewAccess(t)
	leo := h.TokenFor(t, "leo")
	h.Expect(t, leo, "PATCH", "/t/acme/locations/l1/profile", `{"phone":"+1 555 0100"}`, 200, "")
	h.Expect(t, leo, "PATCH", "/t/acme/locations/l1/profile", `{"phone":"+1","name":"Evil Corp"}`, 403, "field.not_allowed")
	h.Expect(t, leo, "PATCH", "/t/acme/locations/l2/profile", `{"phone":"+1"}`, 403, "scope.location")
	h.Expect(t, leo, "POST", "/t/acme/businesses", "", 403, "role.action_not_allowed")
	h.Expect(t, leo, "GET", "/t/globex/locations", "", 404, "tenant.unknown")
}

func TestAccountantReachesBillingOnly(t *testing.T) {
	h, _ := gatewaytest.NewAccess(t)
	avery := h.TokenFor(t, "avery")
	h.Expect(t, avery, "GET", "/t/acme/billing", "", 200, "")
	h.Expect(t, avery, "POST", "/t/acme/billing/payments", `{"amount":10}`, 200, "")
	for _, p := range []string{"/t/acme/reviews", "/t/acme/ads", "/t/acme/insights", "/t/acme/locations"} {
		h.Expect(t, avery, "GET", p, "", 403, "feature.not_granted")
	}
}

func TestPartnerLosesAccessRightAfterRevocation(t *testing.T) {
	h, store := gatewaytest.NewAccess(t)
	ctx := context.Background()
	pat := h.TokenFor(t, "pat")
	h.Expect(t, pat, "GET", "/t/acme/reviews", "", 403, "member.none")
	d, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	h.Expect(t, pat, "GET", "/t/acme/reviews", "", 403, "delegation.not_accepted")
	if _, err := store.Transition(ctx, d.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	rec := h.Do(t, "GET", "http://localhost/t/acme/reviews", pat, nil, "")
	if rec.Code != 200 {
		t.Fatalf("accepted partner: %d %s", rec.Code, rec.Body)
	}
	h.Expect(t, pat, "GET", "/t/acme/ads", "", 403, "delegation.product_not_granted")
	if _, err := store.Transition(ctx, d.ID, "revoke"); err != nil {
		t.Fatal(err)
	}
	h.Expect(t, pat, "GET", "/t/acme/reviews", "", 403, "delegation.not_accepted")
}

func TestDeactivatedMemberRefusedOnTheNextRequest(t *testing.T) {
	h, store := gatewaytest.NewAccess(t)
	adam := h.TokenFor(t, "adam") // stays valid for an hour
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 200, "")
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 200, "") // now from the caches
	if _, err := store.SetMemberStatus(context.Background(), "acme", "adam", "deactivated"); err != nil {
		t.Fatal(err)
	}
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 403, "member.deactivated")
	if _, err := store.SetMemberStatus(context.Background(), "acme", "adam", "active"); err != nil {
		t.Fatal(err)
	}
	h.Expect(t, adam, "GET", "/t/acme/settings", "", 200, "")
}

func TestUpstreamSeesEffectiveRoleScopeAndFeatures(t *testing.T) {
	h, _ := gatewaytest.NewAccess(t)
	got := make(chan http.Header, 1)
	h.Upstream.Config.Handler = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() })
	h.Expect(t, h.TokenFor(t, "leo"), "GET", "/t/acme/locations/l1", "", 200, "")
	hdr := <-got
	if hdr.Get("X-Portero-Role") != "location_manager" || hdr.Get("X-Portero-Scope") != "locations:l1" ||
		!strings.Contains(hdr.Get("X-Portero-Features"), `"profile_listings":"edit"`) || hdr.Get("X-Portero-Partner") != "" {
		t.Fatalf("headers: %v", hdr)
	}
}

func TestAccessStoreErrorFailsClosed(t *testing.T) {
	h, store := gatewaytest.NewAccess(t)
	store.Close()
	h.Expect(t, h.TokenFor(t, "adam"), "GET", "/t/acme/settings", "", 503, "access.unavailable")
	if n := h.Metric(t, "portero_access_lookups_total", "result", "error"); n != 1 {
		t.Fatalf("error lookups: %v", n)
	}
}
