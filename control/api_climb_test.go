package control_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
)

// climbFixture adds to the access harness's acme the managers and targets
// the climbing tables use:
//
//	ada   administrator (a second one, beside adam)
//	mia   multi_account_manager, user_management, businesses b1 b2, location l1
//	ann   account_manager, user_management, business b1, location l1,
//	      reviews edit, insights read, profile_listings edit limited to phone
//	lia   location_manager with user_management (which means nothing there)
//	lou   location_manager of l1 (a target)
//	rich  location_manager of l1 with catalog_admin (holds what ann lacks)
//	dora  like rich, deactivated
func climbFixture(t *testing.T) (*harness, *access.Store) {
	t.Helper()
	h, store := gatewaytest.NewAccess(t)
	ctx := context.Background()
	for _, m := range []access.Member{
		{User: "ada", Role: "administrator"},
		{User: "mia", Role: "multi_account_manager", Rights: []string{"user_management"}, Businesses: []string{"b1", "b2"}, Locations: []string{"l1"}},
		{User: "ann", Role: "account_manager", Rights: []string{"user_management"}, Businesses: []string{"b1"}, Locations: []string{"l1"},
			Features: map[string]string{"reviews": "edit", "insights": "read", "profile_listings": "edit"}, Fields: map[string][]string{"profile_listings": {"phone"}}},
		{User: "lia", Role: "location_manager", Rights: []string{"user_management"}, Locations: []string{"l1"}},
		{User: "lou", Role: "location_manager", Locations: []string{"l1"}},
		{User: "rich", Role: "location_manager", Locations: []string{"l1"}, Rights: []string{"catalog_admin"}},
		{User: "dora", Role: "location_manager", Locations: []string{"l1"}, Rights: []string{"catalog_admin"}, Status: "deactivated"},
	} {
		m.Tenant = "acme"
		if _, err := store.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	return h, store
}

// snapshot is everything the management API could change, as JSON.
func snapshot(t *testing.T, store *access.Store) string {
	t.Helper()
	ctx := context.Background()
	members, err := store.Members(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	delegations, err := store.Delegations(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := store.Tenants(ctx, "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]any{members, delegations, tenants})
	return string(b)
}

type apiCase struct {
	name, caller, method, path, body string
	status                           int
	reason, field                    string // the answer's reason or field, when set
}

// runRefusals calls each case through the gateway and checks the answer
// and that the store did not change.
func runRefusals(t *testing.T, h *harness, store *access.Store, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, store)
			status, body := apiCall(h, t, h.TokenFor(t, tc.caller), tc.method, tc.path, tc.body)
			if status != tc.status || (tc.reason != "" && body["reason"] != tc.reason) || (tc.field != "" && body["field"] != tc.field) {
				t.Errorf("%s %s as %s: %d %v, want %d %s%s", tc.method, tc.path, tc.caller, status, body, tc.status, tc.reason, tc.field)
			}
			if after := snapshot(t, store); after != before {
				t.Errorf("the store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

const lm = `"role":"location_manager","locations":["l1"]`

// A manager changes only members ranked below it, before and after the
// change, and grants only what it holds; the store is left as it was.
func TestManagementAPIRefusesClimbing(t *testing.T) {
	h, store := climbFixture(t)
	m := "/tenants/acme/members/"
	runRefusals(t, h, store, []apiCase{
		// The finding: an account manager with user_management demoted an
		// administrator, deleted them, and granted what it lacks.
		{"demote an administrator", "ann", "PUT", m + "adam", `{` + lm + `}`, 403, "admin.rank", ""},
		{"delete an administrator", "ann", "DELETE", m + "adam", "", 403, "admin.rank", ""},
		{"deactivate an administrator", "ann", "POST", m + "adam/deactivate", "", 403, "admin.rank", ""},
		{"reactivate someone of equal rank", "ann", "POST", m + "avery/reactivate", "", 403, "admin.rank", ""},
		{"change a peer", "ann", "PUT", m + "avery", `{` + lm + `}`, 403, "admin.rank", ""},
		{"delete a peer", "ann", "DELETE", m + "avery", "", 403, "admin.rank", ""},
		{"change oneself down", "ann", "PUT", m + "ann", `{` + lm + `}`, 403, "admin.rank", ""},
		{"promote oneself", "ann", "PUT", m + "ann", `{"role":"administrator"}`, 403, "admin.rank", ""},
		{"promote a member to a peer", "ann", "PUT", m + "lou", `{"role":"account_manager"}`, 403, "admin.rank", ""},
		{"promote a member above", "ann", "PUT", m + "lou", `{"role":"administrator"}`, 403, "admin.rank", ""},
		{"create a peer", "ann", "PUT", m + "newbie", `{"role":"account_manager"}`, 403, "admin.rank", ""},
		{"create a superior", "ann", "PUT", m + "newbie", `{"role":"multi_account_manager","businesses":["b1"]}`, 403, "admin.rank", ""},
		{"administrator creates an administrator", "adam", "PUT", m + "newbie", `{"role":"administrator"}`, 403, "admin.rank", ""},
		{"administrator promotes to administrator", "adam", "PUT", m + "mia", `{"role":"administrator"}`, 403, "admin.rank", ""},
		{"administrator deletes an administrator", "adam", "DELETE", m + "ada", "", 403, "admin.rank", ""},
		{"administrator demotes an administrator", "adam", "PUT", m + "ada", `{` + lm + `}`, 403, "admin.rank", ""},
		{"multi-account manager deletes a peer-ranked newcomer", "mia", "PUT", m + "newbie", `{"role":"multi_account_manager"}`, 403, "admin.rank", ""},
		{"multi-account manager demotes an administrator", "mia", "PUT", m + "adam", `{` + lm + `}`, 403, "admin.rank", ""},
		{"the owner's own record", "ann", "PUT", m + "olivia", `{` + lm + `}`, 403, "admin.target_is_owner", ""},
		// Granting what one does not hold.
		{"grant catalog_admin", "ann", "PUT", m + "lou", `{` + lm + `,"rights":["catalog_admin"]}`, 403, "admin.grant_right", ""},
		{"grant licenses", "ann", "PUT", m + "lou", `{` + lm + `,"rights":["licenses"]}`, 403, "admin.grant_right", ""},
		{"grant a business", "ann", "PUT", m + "lou", `{"role":"location_manager","businesses":["b2"]}`, 403, "admin.grant_business", ""},
		{"grant a location", "ann", "PUT", m + "lou", `{"role":"location_manager","locations":["l1","l9"]}`, 403, "admin.grant_location", ""},
		{"grant a feature", "ann", "PUT", m + "lou", `{` + lm + `,"features":{"ads":"read"}}`, 403, "admin.grant_feature", ""},
		{"grant edit over read", "ann", "PUT", m + "lou", `{` + lm + `,"features":{"insights":"edit"}}`, 403, "admin.grant_level", ""},
		{"grant a profile", "ann", "PUT", m + "lou", `{` + lm + `,"profile":"services"}`, 403, "admin.grant_feature", ""},
		{"grant every field", "ann", "PUT", m + "lou", `{` + lm + `,"features":{"profile_listings":"edit"}}`, 403, "admin.grant_field", ""},
		{"grant another field", "ann", "PUT", m + "lou", `{` + lm + `,"features":{"profile_listings":"edit"},"fields":{"profile_listings":["phone","name"]}}`, 403, "admin.grant_field", ""},
		{"keep a right one lacks", "ann", "PUT", m + "rich", `{` + lm + `,"rights":["catalog_admin"]}`, 403, "admin.grant_right", ""},
		{"reactivate a member holding more", "ann", "POST", m + "dora/reactivate", "", 403, "admin.grant_right", ""},
		{"multi-account manager grants a business it lacks", "mia", "PUT", m + "lou", `{"role":"account_manager","businesses":["b3"]}`, 403, "admin.grant_business", ""},
		// Not a member manager at all: refused before anything is read.
		{"account manager without user_management", "avery", "PUT", m + "lou", `{` + lm + `}`, 403, "admin.not_allowed", ""},
		{"location manager with user_management", "lia", "DELETE", m + "lou", "", 403, "admin.not_allowed", ""},
		{"deactivated member", "dora", "DELETE", m + "lou", "", 403, "admin.not_allowed", ""},
		{"stranger", "eve", "PUT", m + "lou", `{` + lm + `}`, 403, "admin.not_allowed", ""},
		{"partner user", "pat", "DELETE", m + "lou", "", 403, "admin.not_allowed", ""},
		{"administrator of acme in another tenant", "adam", "PUT", "/tenants/globex/members/x", `{` + lm + `}`, 403, "admin.not_allowed", ""},
		// Names the policy does not define are 400s naming the field.
		{"unknown role", "olivia", "PUT", m + "x", `{"role":"boss"}`, 400, "", "role"},
		{"unknown profile", "olivia", "PUT", m + "x", `{` + lm + `,"profile":"servces"}`, 400, "", "profile"},
		{"unknown feature", "olivia", "PUT", m + "x", `{` + lm + `,"features":{"reveiws":"read"}}`, 400, "", "features"},
		{"unknown level", "olivia", "PUT", m + "x", `{` + lm + `,"features":{"reviews":"write"}}`, 400, "", "features.reviews"},
		{"unknown right", "olivia", "PUT", m + "x", `{` + lm + `,"rights":["licences"]}`, 400, "", "rights"},
		{"fields of an unknown feature", "olivia", "PUT", m + "x", `{` + lm + `,"features":{"nope":"edit"},"fields":{"nope":["phone"]}}`, 400, "", "features"},
		{"fields of a feature without edit", "olivia", "PUT", m + "x", `{` + lm + `,"features":{"reviews":"read"},"fields":{"reviews":["text"]}}`, 400, "", "fields.reviews"},
		{"a field name that is no name", "olivia", "PUT", m + "x", `{` + lm + `,"features":{"reviews":"edit"},"fields":{"reviews":["Text Body"]}}`, 400, "", "fields.reviews"},
		{"unknown product", "olivia", "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"limited","products":["reveiws"]}`, 400, "", "products"},
		{"two JSON values", "olivia", "PUT", m + "x", `{` + lm + `} {"role":"administrator"}`, 400, "", "body"},
		// Invitations grant only what the inviter holds.
		{"administrator grants full access", "adam", "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"full"}`, 403, "admin.grant_full", ""},
		{"user manager invites", "ann", "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"limited","products":["reviews"]}`, 403, "admin.not_allowed", ""},
	})
}

// What a manager may do, it does: the store changes as asked.
func TestManagementAPIManagersWithinTheirRights(t *testing.T) {
	h, store := climbFixture(t)
	m := "/tenants/acme/members/"
	cases := []struct {
		caller, method, path, body string
		status                     int
	}{
		{"ann", "PUT", m + "newbie", `{` + lm + `,"features":{"reviews":"edit","insights":"read","profile_listings":"edit"},"fields":{"profile_listings":["phone"]},"businesses":["b1"]}`, 200},
		{"ann", "PUT", m + "lou", `{` + lm + `,"rights":["user_management"]}`, 200},
		{"ann", "POST", m + "lou/deactivate", "", 200},
		{"ann", "POST", m + "lou/reactivate", "", 200},
		{"ann", "POST", m + "dora/deactivate", "", 200},
		{"ann", "DELETE", m + "rich", "", 204},
		{"mia", "PUT", m + "ann", `{"role":"location_manager","businesses":["b2"]}`, 200},
		{"adam", "PUT", m + "mia", `{"role":"account_manager","businesses":["b7"],"rights":["catalog_admin"],"profile":"full"}`, 200},
		{"adam", "PUT", "/tenants/acme/members/leo", `{"role":"location_manager","locations":["l1"],"features":{"profile_listings":"edit"},"fields":{"profile_listings":["phone","hours"]}}`, 200},
		{"olivia", "PUT", m + "ada", `{"role":"location_manager"}`, 200},
		{"olivia", "POST", "/tenants/acme/delegations", `{"partner":"partnerco","scope":"full","wallet":true}`, 201},
	}
	for _, tc := range cases {
		before := snapshot(t, store)
		if status, body := apiCall(h, t, h.TokenFor(t, tc.caller), tc.method, tc.path, tc.body); status != tc.status {
			t.Errorf("%s %s as %s: %d %v", tc.method, tc.path, tc.caller, status, body)
		}
		if snapshot(t, store) == before {
			t.Errorf("%s %s as %s: nothing changed", tc.method, tc.path, tc.caller)
		}
	}
	lou, _ := store.Member(context.Background(), "acme", "lou")
	if strings.Join(lou.Rights, ",") != "user_management" {
		t.Errorf("lou: %+v", lou)
	}
}

// A caller the policy refuses gets the same answer whether or not the
// record it names exists, and a body it sends is not even read.
func TestManagementAPISameAnswerForExistingAndMissing(t *testing.T) {
	h, store := climbFixture(t)
	ctx := context.Background()
	d, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := store.StartMaster(ctx, access.MasterSession{Admin: "sam", Session: "s1", Tenant: "acme", Reason: "Ticket 1: look at it", Mode: "full",
		StartedAt: h.Now(), ExpiresAt: h.Now().Add(1 << 40)})
	if err != nil {
		t.Fatal(err)
	}
	pairs := []struct{ caller, method, existing, missing, body string }{
		{"eve", "PUT", "/tenants/acme/members/lou", "/tenants/acme/members/ghost", `{"role":"location_manager"}`},
		{"eve", "PUT", "/tenants/acme/members/lou", "/tenants/nope/members/lou", `{"role":"location_manager"}`},
		{"eve", "PUT", "/tenants/acme/members/lou", "/tenants/acme/members/ghost", `{"role":`},
		{"eve", "PUT", "/tenants/acme/members/lou", "/tenants/acme/members/ghost", `{"colour":"red"}`},
		{"avery", "DELETE", "/tenants/acme/members/lou", "/tenants/acme/members/ghost", ""},
		{"avery", "POST", "/tenants/acme/members/lou/deactivate", "/tenants/acme/members/ghost/deactivate", ""},
		{"lia", "POST", "/tenants/acme/members/lou/reactivate", "/tenants/acme/members/ghost/reactivate", ""},
		{"eve", "GET", "/tenants/acme", "/tenants/nope", ""},
		{"eve", "GET", "/tenants/acme/members", "/tenants/nope/members", ""},
		{"eve", "GET", "/tenants/acme/delegations", "/tenants/nope/delegations", ""},
		{"ann", "POST", "/tenants/acme/delegations", "/tenants/nope/delegations", `{"partner":"partnerco","scope":"full"}`},
		{"eve", "POST", "/delegations/" + d.ID + "/revoke", "/delegations/dlg_0000000000000000/revoke", ""},
		{"eve", "POST", "/delegations/" + d.ID + "/accept", "/delegations/dlg_0000000000000000/accept", ""},
		{"olivia", "POST", "/delegations/" + d.ID + "/accept", "/delegations/dlg_0000000000000000/accept", ""},
		{"pat", "POST", "/delegations/" + d.ID + "/revoke", "/delegations/dlg_0000000000000000/revoke", ""},
		{"ann", "POST", "/tenants/acme/delegations/" + d.ID + "/revoke", "/tenants/acme/delegations/dlg_0000000000000000/revoke", ""},
		{"eve", "POST", "/partners/partnerco/delegations/" + d.ID + "/accept", "/partners/partnerco/delegations/dlg_0000000000000000/accept", ""},
		{"eve", "GET", "/partners/partnerco/delegations", "/partners/nope/delegations", ""},
		{"olivia", "POST", "/master-access/" + ms.ID + "/revoke", "/master-access/ma_0000000000000000/revoke", ""},
	}
	for _, p := range pairs {
		before := snapshot(t, store)
		token := h.TokenFor(t, p.caller)
		s1, b1 := apiCall(h, t, token, p.method, p.existing, p.body)
		s2, b2 := apiCall(h, t, token, p.method, p.missing, p.body)
		j1, _ := json.Marshal(b1)
		j2, _ := json.Marshal(b2)
		if s1 != http.StatusForbidden || s1 != s2 || string(j1) != string(j2) {
			t.Errorf("%s %s as %s: %d %s; missing %s: %d %s", p.method, p.existing, p.caller, s1, j1, p.missing, s2, j2)
		}
		if snapshot(t, store) != before {
			t.Errorf("%s %s as %s changed the store", p.method, p.existing, p.caller)
		}
	}
	// A caller who may act on the tenant's delegations sees a delegation
	// of another tenant as missing.
	if _, err := store.CreateTenant(ctx, access.Tenant{ID: "globex", Name: "Globex", Owner: "gina"}); err != nil {
		t.Fatal(err)
	}
	if s, b := apiCall(h, t, h.TokenFor(t, "gina"), "POST", "/tenants/globex/delegations/"+d.ID+"/revoke", ""); s != http.StatusNotFound {
		t.Errorf("another tenant's owner revokes acme's delegation: %d %v", s, b)
	}
	if s, b := apiCall(h, t, h.TokenFor(t, "gina"), "POST", "/delegations/"+d.ID+"/revoke", ""); s != http.StatusNotFound {
		t.Errorf("another tenant's owner revokes acme's delegation (unscoped): %d %v", s, b)
	}
	if got, _ := store.Delegation(ctx, d.ID); got.Status != "invited" {
		t.Errorf("delegation is %s", got.Status)
	}
	// The scoped partner route works for the partner's user.
	if s, b := apiCall(h, t, h.TokenFor(t, "pat"), "POST", "/partners/partnerco/delegations/"+d.ID+"/accept", ""); s != http.StatusOK || b["status"] != "accepted" {
		t.Errorf("partner accepts through the scoped route: %d %v", s, b)
	}
	if s, b := apiCall(h, t, h.TokenFor(t, "olivia"), "POST", "/tenants/acme/delegations/"+d.ID+"/revoke", ""); s != http.StatusOK || b["status"] != "revoked" {
		t.Errorf("owner revokes through the scoped route: %d %v", s, b)
	}
}

// A change decided on a member as read is refused (409) if the member
// changed meanwhile.
func TestMemberWritesOnlyIfUnchanged(t *testing.T) {
	_, store := climbFixture(t)
	ctx := context.Background()
	seen, err := store.Member(ctx, "acme", "lou")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutMember(ctx, access.Member{Tenant: "acme", User: "lou", Role: "administrator"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutMemberAsSeen(ctx, access.Member{Tenant: "acme", User: "lou", Role: "location_manager"}, seen); err == nil {
		t.Error("put over a changed member")
	}
	if _, err := store.SetMemberStatusAsSeen(ctx, "acme", "lou", "deactivated", seen); err == nil {
		t.Error("deactivated a changed member")
	}
	if err := store.RemoveMemberAsSeen(ctx, "acme", "lou", seen); err == nil {
		t.Error("removed a changed member")
	}
	if _, err := store.PutMemberAsSeen(ctx, access.Member{Tenant: "acme", User: "lou", Role: "location_manager"}, nil); err == nil {
		t.Error("created over an existing member")
	}
	if got, _ := store.Member(ctx, "acme", "lou"); got.Role != "administrator" || got.Status != "active" {
		t.Errorf("lou: %+v", got)
	}
	now, _ := store.Member(ctx, "acme", "lou")
	if err := store.RemoveMemberAsSeen(ctx, "acme", "lou", now); err != nil {
		t.Errorf("remove as seen: %v", err)
	}
}
