package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// settableClock is a store clock a test moves on.
type settableClock struct{ ns atomic.Int64 }

func newSettableClock(s *Store) *settableClock {
	c := &settableClock{}
	c.ns.Store(time.Now().UnixNano())
	s.now = func() time.Time { return time.Unix(0, c.ns.Load()) }
	return c
}

func (c *settableClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestMemberInvitations(t *testing.T) { eachStore(t, testMemberInvitations) }

func testMemberInvitations(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	clock := newSettableClock(s)
	ctx := context.Background()
	inv, token, err := s.InviteMember(ctx, MemberInvitation{Tenant: "acme", Email: " Nora@Example.COM ", Name: "Nora Díaz", Lang: "es", InvitedBy: "olivia",
		Member: Member{Role: "location_manager", Locations: []string{"l1"}, Profile: "services"}})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Email != "nora@example.com" || inv.Status != "pending" || inv.Member.Role != "location_manager" || token == "" || strings.Contains(toJSON(inv), token) {
		t.Fatalf("invitation %+v, token %q", inv, token)
	}
	// Only the token's hash is stored.
	var stored string
	if err := s.queryRow(ctx, `SELECT token_hash FROM member_invitations WHERE id = ?`, inv.ID).Scan(&stored); err != nil || stored == token || stored != tokenHash(token) {
		t.Fatalf("stored %q (%v)", stored, err)
	}
	// Its e-mail is in the outbox, with the link.
	mails, err := s.Mails(ctx, "", "acme", 10)
	if err != nil || len(mails) != 1 || mails[0].Kind != "member_invitation" || mails[0].To != "nora@example.com" ||
		mails[0].Data["accept_path"] != MemberInvitationPath(token) || mails[0].Lang != "es" || mails[0].Data["tenant_name"] != "Acme" {
		t.Fatalf("outbox %v %v", mails, err)
	}
	// One pending invitation per address.
	if _, _, err := s.InviteMember(ctx, MemberInvitation{Tenant: "acme", Email: "nora@example.com", InvitedBy: "olivia", Member: Member{Role: "location_manager"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second invitation: %v", err)
	}
	// Refused: an unverified address, another address.
	if _, err := s.AcceptInvitation(ctx, token, Invitee{Subject: "nora-sub", Email: "nora@example.com"}); !errors.Is(err, ErrEmailNotVerified) {
		t.Fatalf("unverified: %v", err)
	}
	if _, err := s.AcceptInvitation(ctx, token, Invitee{Subject: "eve", Email: "eve@example.com", EmailVerified: true}); !errors.Is(err, ErrEmailMismatch) {
		t.Fatalf("other address: %v", err)
	}
	if _, err := s.AcceptInvitation(ctx, "not-a-token", Invitee{Subject: "nora-sub", Email: "nora@example.com", EmailVerified: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	// Accepted with the verified address, in any case: the member is created
	// under the invitee's sub, with the invitation's name and address.
	m, err := s.AcceptInvitation(ctx, token, Invitee{Subject: "nora-sub", Email: "NORA@example.com", EmailVerified: true})
	if err != nil || m.User != "nora-sub" || m.Role != "location_manager" || m.Profile != "services" || m.Name != "Nora Díaz" || m.Email != "nora@example.com" || m.Status != "active" {
		t.Fatalf("accept: %+v %v", m, err)
	}
	// The token works once.
	if _, err := s.AcceptInvitation(ctx, token, Invitee{Subject: "nora-sub", Email: "nora@example.com", EmailVerified: true}); !errors.Is(err, ErrInvitationUsed) {
		t.Fatalf("replayed: %v", err)
	}
	// An invitation never overwrites an existing membership.
	_, again, err := s.InviteMember(ctx, MemberInvitation{Tenant: "acme", Email: "leo@example.com", InvitedBy: "olivia", Member: Member{Role: "account_manager"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, again, Invitee{Subject: "leo", Email: "leo@example.com", EmailVerified: true}); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("an existing member accepts: %v", err)
	}
	if m, _ := s.Member(ctx, "acme", "leo"); m.Role != "location_manager" {
		t.Fatalf("the membership changed: %+v", m)
	}
	got, _, err := s.InvitationByToken(ctx, token)
	if err != nil || got.Status != "accepted" || got.AcceptedBy != "nora-sub" {
		t.Fatalf("after acceptance: %+v %v", got, err)
	}
	// The trail has the invitation and the member, never the token.
	recs, err := s.AuditRecords(ctx, AuditFilter{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]bool{}
	for _, r := range recs {
		events[r.Event] = true
		if strings.Contains(string(r.Data), token) || strings.Contains(string(r.Data), tokenHash(token)) {
			t.Fatalf("the trail holds the token: %s", r.Data)
		}
	}
	if !events["member_invitation.create"] || !events["member_invitation.accept"] || !events["member.put"] {
		t.Fatalf("trail events %v", events)
	}

	// Resend: a new token; the old one stops working. Withdraw: none works.
	inv2, old, err := s.InviteMember(ctx, MemberInvitation{Tenant: "acme", Email: "uma@example.com", InvitedBy: "olivia", Member: Member{Role: "account_manager"}})
	if err != nil {
		t.Fatal(err)
	}
	_, fresh, err := s.ResendInvitation(ctx, "acme", inv2.ID)
	if err != nil || fresh == old {
		t.Fatalf("resend: %v", err)
	}
	if _, _, err := s.InvitationByToken(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old token after resend: %v", err)
	}
	if _, err := s.WithdrawInvitation(ctx, "acme", inv2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, fresh, Invitee{Subject: "uma", Email: "uma@example.com", EmailVerified: true}); !errors.Is(err, ErrInvitationWithdrawn) {
		t.Fatalf("withdrawn: %v", err)
	}
	if _, err := s.WithdrawInvitation(ctx, "other", inv2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another tenant's invitation: %v", err)
	}

	// Expiry: refused after it, shown as expired, and the address can be
	// invited again (the expired one is marked so).
	inv3, tok3, err := s.InviteMember(ctx, MemberInvitation{Tenant: "acme", Email: "vic@example.com", InvitedBy: "olivia", Member: Member{Role: "location_manager"},
		ExpiresAt: s.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	if _, err := s.AcceptInvitation(ctx, tok3, Invitee{Subject: "vic", Email: "vic@example.com", EmailVerified: true}); !errors.Is(err, ErrInvitationExpired) {
		t.Fatalf("expired: %v", err)
	}
	if got, err := s.MemberInvitation(ctx, "acme", inv3.ID); err != nil || got.Status != "expired" {
		t.Fatalf("shown: %+v %v", got, err)
	}
	if _, _, err := s.InviteMember(ctx, MemberInvitation{Tenant: "acme", Email: "vic@example.com", InvitedBy: "olivia", Member: Member{Role: "location_manager"}}); err != nil {
		t.Fatalf("invite again after expiry: %v", err)
	}
	pending, err := s.MemberInvitations(ctx, "acme", false)
	if err != nil || len(pending) != 2 || pending[0].Email != "vic@example.com" {
		t.Fatalf("pending: %v %v", pending, err)
	}
	all, _ := s.MemberInvitations(ctx, "acme", true)
	if len(all) != 5 {
		t.Fatalf("all invitations: %d", len(all))
	}
	// Bad input names the field.
	for field, inv := range map[string]MemberInvitation{
		"email":    {Tenant: "acme", Email: "not an address", InvitedBy: "olivia", Member: Member{Role: "location_manager"}},
		"role":     {Tenant: "acme", Email: "a@example.com", InvitedBy: "olivia", Member: Member{Role: "boss"}},
		"name":     {Tenant: "acme", Email: "a@example.com", Name: "x\x00", InvitedBy: "olivia", Member: Member{Role: "location_manager"}},
		"tenant":   {Tenant: "Acme!", Email: "a@example.com", InvitedBy: "olivia", Member: Member{Role: "location_manager"}},
		"features": {Tenant: "acme", Email: "a@example.com", InvitedBy: "olivia", Member: Member{Role: "location_manager", Features: map[string]string{"Bad": "edit"}}},
	} {
		var fe *FieldError
		if _, _, err := s.InviteMember(ctx, inv); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestPartnerInvitationExpiryAndReinvite(t *testing.T) {
	eachStore(t, testPartnerInvitationExpiryAndReinvite)
}

func testPartnerInvitationExpiryAndReinvite(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	clock := newSettableClock(s)
	ctx := context.Background()
	if _, err := s.PutPartnerUser(ctx, PartnerUser{Partner: "partnerco", User: "paula", Role: "admin", Email: "paula@partner.example"}); err != nil {
		t.Fatal(err)
	}
	end := s.now().Add(30 * 24 * time.Hour)
	d, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia",
		Expires: &end, InvitationExpires: new(s.now().Add(24 * time.Hour)), Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	if d.InvitationExpires == nil || d.Expires == nil || !d.InvitationExpires.Before(*d.Expires) {
		t.Fatalf("two expiries: %+v", d)
	}
	// The invitation went to the organisation (no contact address: its admins).
	mails, _ := s.Mails(ctx, "", "acme", 10)
	if len(mails) != 1 || mails[0].Kind != "partner_invitation" || mails[0].To != "paula@partner.example" ||
		mails[0].Data["accept_path"] != PartnerInvitationPath(d.ID, "accept") || mails[0].Data["partner_name"] != "Partner Co" {
		t.Fatalf("invitation mail %v", mails)
	}
	// A resend renews the invitation for as long and e-mails again.
	clock.advance(12 * time.Hour)
	re, err := s.Transition(ctx, d.ID, "resend")
	if err != nil || !re.InvitationExpires.After(*d.InvitationExpires) {
		t.Fatalf("resend: %+v %v", re, err)
	}
	if mails, _ := s.Mails(ctx, "", "acme", 10); len(mails) != 2 {
		t.Fatalf("resend mail: %d", len(mails))
	}
	// Unanswered past its expiry: expired, cannot be accepted, and the
	// partner can be invited again (the old one is marked expired).
	clock.advance(25 * time.Hour)
	if got, _ := s.Delegation(ctx, d.ID); got.Status != "expired" {
		t.Fatalf("shown as %s", got.Status)
	}
	if _, err := s.Transition(ctx, d.ID, "accept"); !errors.Is(err, ErrConflict) {
		t.Fatalf("accept after the invitation's expiry: %v", err)
	}
	again, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia"})
	if err != nil {
		t.Fatalf("invite again: %v", err)
	}
	var stored string
	if err := s.queryRow(ctx, `SELECT status FROM delegations WHERE id = ?`, d.ID).Scan(&stored); err != nil || stored != "expired" {
		t.Fatalf("the old invitation is stored as %q (%v)", stored, err)
	}
	if recs, _ := s.AuditRecords(ctx, AuditFilter{Tenant: "acme", Events: []string{"delegation.expire"}}); len(recs) != 1 {
		t.Fatalf("delegation.expire records: %d", len(recs))
	}
	// A partnership past its own end is expired too, and invitable again.
	if _, err := s.Transition(ctx, again.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("an accepted partnership still blocks: %v", err)
	}
	end2 := s.now().Add(time.Hour)
	third, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia", Expires: &end2})
	if !errors.Is(err, ErrConflict) || third != nil {
		t.Fatalf("open partnership: %v", err)
	}
	if _, err := s.Transition(ctx, again.ID, "revoke"); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	mails, _ = s.Mails(ctx, "", "acme", 10)
	for _, m := range mails {
		kinds[m.Kind]++
	}
	if len(mails) != 4 || kinds["partnership_revoked"] != 1 || kinds["partner_invitation"] != 2 || kinds["partner_invitation_resent"] != 1 {
		t.Fatalf("mails: %v", kinds)
	}
	list, err := s.Delegations(ctx, "acme", "")
	if err != nil || len(list) != 2 || list[1].Status != "expired" || list[0].Status != "revoked" {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestPartnerSearch(t *testing.T) { eachStore(t, testPartnerSearch) }

func testPartnerSearch(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	for i := range 12 {
		if _, err := s.CreatePartner(ctx, Partner{ID: fmt.Sprintf("agency%02d", i), Name: fmt.Sprintf("Agencia %02d", i), Email: fmt.Sprintf("hola@agencia%02d.example", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreatePartner(ctx, Partner{ID: "pct", Name: "100% Agency_x", Email: "Ops@Percent.example"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.SearchPartners(ctx, "AGE")
	if err != nil || len(got) != MaxPartnerMatches || got[0].ID != "agency00" || got[0].Email != "h•••@agencia00.example" {
		t.Fatalf("prefix: %v %v", got, err)
	}
	if got, _ := s.SearchPartners(ctx, "ops@percent.EXAMPLE"); len(got) != 1 || got[0].ID != "pct" || got[0].Email != "o•••@percent.example" {
		t.Fatalf("exact e-mail: %v", got)
	}
	// Not a substring, not a wildcard, not a partial address.
	for _, q := range []string{"gencia", "%%%", "___", "ops@percent", "hola@agencia"} {
		if got, err := s.SearchPartners(ctx, q); len(got) != 0 && err == nil {
			t.Errorf("%q found %v", q, got)
		}
	}
	if got, _ := s.SearchPartners(ctx, "100%"); len(got) != 1 {
		t.Errorf("a literal %%: %v", got)
	}
	for _, q := range []string{"", "ag", "  a "} {
		var fe *FieldError
		if _, err := s.SearchPartners(ctx, q); !errors.As(err, &fe) || fe.Field != "q" {
			t.Errorf("%q: %v", q, err)
		}
	}
}

func TestPartnerUsersAndDefaultProfile(t *testing.T) { eachStore(t, testPartnerUsersAndDefaultProfile) }

func testPartnerUsersAndDefaultProfile(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	if _, err := s.CreatePartner(ctx, Partner{ID: "otherco", Name: "Other Co"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPartnerUser(ctx, PartnerUser{Partner: "otherco", User: "oscar", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	// A partner admin adds to their organisation only users of none.
	if _, err := s.PutPartnerUserWithin(ctx, PartnerUser{Partner: "partnerco", User: "oscar"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("taking another organisation's user: %v", err)
	}
	pu, err := s.PutPartnerUserWithin(ctx, PartnerUser{Partner: "partnerco", User: "sid", Name: "Sid", Email: "Sid@Partner.example"})
	if err != nil || pu.Role != "staff" || pu.Email != "sid@partner.example" {
		t.Fatalf("add staff: %+v %v", pu, err)
	}
	if role, _ := s.PartnerRoleOf(ctx, "oscar"); role != "admin" {
		t.Fatalf("role %q", role)
	}
	if _, err := s.SetPartnerUserStatus(ctx, "partnerco", "sid", "deactivated"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.PartnerOf(ctx, "sid"); p != "" {
		t.Fatalf("a deactivated user still counts for %s", p)
	}
	if _, err := s.SetPartnerUserStatus(ctx, "partnerco", "oscar", "active"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another organisation's user: %v", err)
	}
	if err := s.RemovePartnerUser(ctx, "partnerco", "sid"); err != nil {
		t.Fatal(err)
	}
	if users, _ := s.PartnerUsers(ctx, "partnerco"); len(users) != 1 || users[0].User != "pat" {
		t.Fatalf("users %v", users)
	}
	if _, err := s.PutPartnerUser(ctx, PartnerUser{Partner: "partnerco", User: "x", Role: "boss"}); err == nil {
		t.Fatal("an unknown partner role was accepted")
	}

	// The tenant's settings and its default profile.
	tn, err := s.UpdateTenantSettings(ctx, "acme", TenantSettings{DefaultProfile: new("services"), NotifyMaster: new(false), OwnerEmail: new("Olivia@Acme.example")})
	if err != nil || tn.DefaultProfile != "services" || *tn.NotifyMaster || tn.OwnerEmail != "olivia@acme.example" || tn.Name != "Acme" {
		t.Fatalf("settings: %+v %v", tn, err)
	}
	m := Member{Tenant: "acme", User: "nia", Role: "location_manager"}
	ApplyDefaultProfile(&m, tn)
	explicit := Member{Tenant: "acme", User: "ned", Role: "location_manager", Features: map[string]string{"reviews": "read"}}
	ApplyDefaultProfile(&explicit, tn)
	if m.Profile != "services" || explicit.Profile != "" {
		t.Fatalf("default profile: %q, with features %q", m.Profile, explicit.Profile)
	}
	if fresh, _ := s.CreateTenant(ctx, Tenant{ID: "globex", Name: "Globex"}); fresh == nil || fresh.NotifyMaster == nil || !*fresh.NotifyMaster {
		t.Fatalf("notify_master defaults to yes: %+v", fresh)
	}
	if _, err := s.UpdateTenantSettings(ctx, "acme", TenantSettings{OwnerEmail: new("nope")}); err == nil {
		t.Fatal("a bad owner e-mail was accepted")
	}
}
