package mail

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
)

// The messages the store really queues — partner invitation, resend,
// withdrawal, revocation, member invitation, master access started and
// ended — render in every language: the data the access package writes
// meets the templates' contract.
func TestTheStoresMessagesRender(t *testing.T) {
	ctx := context.Background()
	store, err := access.Open(ctx, filepath.Join(t.TempDir(), "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.CreateTenant(ctx, access.Tenant{ID: "acme", Name: "Acme", Owner: "olivia", MasterAccess: true}))
	owner, notify := "olivia@acme.example", true
	must(store.UpdateTenantSettings(ctx, "acme", access.TenantSettings{OwnerEmail: &owner, NotifyMaster: &notify}))
	must(store.CreatePartner(ctx, access.Partner{ID: "partnerco", Name: "Partner Co", Email: "hello@partnerco.example"}))
	end := time.Now().Add(90 * 24 * time.Hour)
	d, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"},
		InvitedBy: "olivia", Lang: "es", Expires: &end})
	if err != nil {
		t.Fatal(err)
	}
	must(store.Transition(ctx, d.ID, "resend"))
	must(store.Transition(ctx, d.ID, "withdraw"))
	d2, err := store.Invite(ctx, access.Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	must(store.Transition(ctx, d2.ID, "accept"))
	must(store.Transition(ctx, d2.ID, "revoke"))
	_, _, err = store.InviteMember(ctx, access.MemberInvitation{Tenant: "acme", Email: "nina@acme.example", Name: "Nina",
		Member: access.Member{Role: "account_manager"}, InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.StartMaster(ctx, access.MasterSession{Admin: "sam", Session: "s1", Tenant: "acme", Reason: "ticket 42", Mode: "full",
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	must(store.EndMaster(ctx, m.ID, "revoked", "olivia"))

	queued, err := store.Mails(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range queued {
		kinds[msg.Kind] = true
		for _, lang := range append([]string{msg.Lang}, Langs...) {
			r, err := tpl.Render(msg.Kind, lang, "https://gw.example.com", msg.To, msg.Data)
			if err != nil {
				t.Errorf("%s in %q (data %v): %v", msg.Kind, lang, msg.Data, err)
				continue
			}
			if strings.Contains(r.Text+r.HTML, "<no value>") {
				t.Errorf("%s in %s: <no value>", msg.Kind, lang)
			}
		}
	}
	if want := slices.Sorted(maps.Keys(Kinds)); !slices.Equal(slices.Sorted(maps.Keys(kinds)), want) {
		t.Fatalf("the store queued %v, want every kind %v", slices.Sorted(maps.Keys(kinds)), want)
	}
}
