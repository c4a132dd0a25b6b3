package proxy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/policy"
)

// PrepareAccess builds input.access as terms; the document must be the one
// the policy is written against, given here as JSON. Keys name documents
// by content (policy.ValueKey), so equal keys are equal documents.
func TestPrepareAccess(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Hour)
	tenant := &access.Tenant{ID: "acme", Name: "Acme", Status: "active", Owner: "olivia", MasterAccess: true,
		Hostnames: []string{"acme.example"}, OwnerEmail: "o@acme.example"}
	const tenantDoc = `"tenant": {"id": "acme", "name": "Acme", "status": "active", "owner": "olivia", "master_access": true}`
	for _, tc := range []struct {
		name  string
		facts *access.Facts
		want  string
	}{
		{"no facts", nil, `{}`},
		{"unknown tenant", &access.Facts{}, `{}`},
		{"stranger", &access.Facts{Tenant: tenant}, `{` + tenantDoc + `}`},
		{"member", &access.Facts{Tenant: tenant, Member: &access.Member{Tenant: "acme", User: "leo", Name: "Leo",
			Role: "location_manager", Businesses: []string{"b1"}, Locations: []string{"l1", "l2"},
			Features: map[string]string{"reviews": "read", "profile_listings": "edit"},
			Fields:   map[string][]string{"profile_listings": {"phone", "hours"}, "reviews": nil},
			Rights:   []string{"licenses"}, Profile: "services", Status: "active"}},
			`{` + tenantDoc + `, "membership": {"role": "location_manager", "businesses": ["b1"], "locations": ["l1", "l2"],
			"features": {"reviews": "read", "profile_listings": "edit"}, "fields": {"profile_listings": ["phone", "hours"], "reviews": []},
			"rights": ["licenses"], "profile": "services", "status": "active"}}`},
		{"member with nothing", &access.Facts{Tenant: tenant, Member: &access.Member{Role: "administrator", Status: "deactivated"}},
			`{` + tenantDoc + `, "membership": {"role": "administrator", "businesses": [], "locations": [], "features": {},
			"fields": {}, "rights": [], "profile": "", "status": "deactivated"}}`},
		{"partner without delegation", &access.Facts{Tenant: tenant, Partner: "partnerco"},
			`{` + tenantDoc + `, "partner": "partnerco"}`},
		{"delegation, no end", &access.Facts{Tenant: tenant, Partner: "partnerco", Delegation: &access.Delegation{ID: "d1",
			Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, Wallet: true, Status: "accepted"}},
			`{` + tenantDoc + `, "partner": "partnerco", "delegation": {"id": "d1", "partner": "partnerco", "scope": "limited",
			"products": ["reviews"], "wallet": true, "status": "accepted", "expired": false}}`},
		{"delegation, ending", &access.Facts{Tenant: tenant, Partner: "partnerco", Delegation: &access.Delegation{ID: "d1",
			Partner: "partnerco", Scope: "full", Status: "accepted", Expires: &later}},
			`{` + tenantDoc + `, "partner": "partnerco", "delegation": {"id": "d1", "partner": "partnerco", "scope": "full",
			"products": [], "wallet": false, "status": "accepted", "expired": false, "expires": "2026-06-01T13:00:00Z"}}`},
		{"delegation, ended", &access.Facts{Tenant: tenant, Partner: "partnerco", Delegation: &access.Delegation{ID: "d1",
			Partner: "partnerco", Scope: "full", Status: "accepted", Expires: &earlier}},
			`{` + tenantDoc + `, "partner": "partnerco", "delegation": {"id": "d1", "partner": "partnerco", "scope": "full",
			"products": [], "wallet": false, "status": "accepted", "expired": true, "expires": "2026-06-01T11:00:00Z"}}`},
		{"master access", &access.Facts{Tenant: tenant, Master: &access.MasterSession{ID: "m1", Admin: "sam", Session: "s1",
			Tenant: "acme", Reason: "ticket", Ticket: "T-1", Mode: "read_only", StartedAt: earlier, ExpiresAt: later}},
			`{` + tenantDoc + `, "master": {"id": "m1", "admin": "sam", "tenant": "acme", "reason": "ticket", "ticket": "T-1",
			"mode": "read_only", "session": "s1", "expires": "2026-06-01T13:00:00Z", "expired": false}}`},
		{"master access, at its end", &access.Facts{Tenant: tenant, Master: &access.MasterSession{ID: "m1", Admin: "sam",
			Tenant: "acme", Mode: "full", ExpiresAt: now}},
			`{` + tenantDoc + `, "master": {"id": "m1", "admin": "sam", "tenant": "acme", "reason": "", "ticket": "",
			"mode": "full", "session": "", "expires": "2026-06-01T12:00:00Z", "expired": true}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal([]byte(tc.want), &doc); err != nil {
				t.Fatal(err)
			}
			want, err := policy.NewAccess(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := PrepareAccess(tc.facts, now); got.Key() != want.Key() {
				t.Errorf("input.access differs from\n%s", tc.want)
			}
		})
	}
}
