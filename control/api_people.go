package control

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/limit"
	"github.com/portero-gateway/portero/policy"
)

// The management API's people and partners (issue #15): member
// invitations by e-mail, the tenant's own settings, history and
// master-access sessions, the partner search, and partner admins managing
// their organisation's users. Each endpoint asks the policy first, as the
// others do (authorizeAPI), before it reads the store or the body.

// invitationBody is what a manager sends to invite a member by e-mail: the
// address and name, and the membership it will give.
type invitationBody struct {
	Email      string              `json:"email"`
	Name       string              `json:"name"`
	Lang       string              `json:"lang"`
	Role       string              `json:"role"`
	Profile    string              `json:"profile"`
	Businesses []string            `json:"businesses"`
	Locations  []string            `json:"locations"`
	Features   map[string]string   `json:"features"`
	Fields     map[string][]string `json:"fields"`
	Rights     []string            `json:"rights"`
}

// invitationAnswer is an invitation with the path of its link, which
// only the answer of its creation or resend carries (the store keeps the
// token's hash).
type invitationAnswer struct {
	*access.MemberInvitation
	AcceptPath string `json:"accept_path,omitempty"`
}

// tenantOf reads the tenant a call names; nil when it does not exist (the
// store call that follows answers 404).
func (p *Plane) tenantOf(r *http.Request, tenant string) *access.Tenant {
	t, err := p.store.Tenant(r.Context(), tenant)
	if err != nil {
		return nil
	}
	return t
}

// apiListInvitations is GET /tenants/{t}/invitations (pending; ?all=1 for
// every state): for those who manage the tenant's members.
func (p *Plane) apiListInvitations(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.read", Tenant: tenant}) {
		return
	}
	list, err := p.store.MemberInvitations(r.Context(), tenant, r.URL.Query().Get("all") != "")
	p.reply(w, r, http.StatusOK, map[string]any{"invitations": list}, err)
}

// apiInviteMember is POST /tenants/{t}/invitations: the policy decides as
// for adding a member (members.write), first on the tenant, then on what
// the membership grants; the store records the invitation and queues its
// e-mail in one transaction.
func (p *Plane) apiInviteMember(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant}) {
		return
	}
	var b invitationBody
	if err := decodeBody(r, &b); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	lang, err := mailLang(b.Lang)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	inv := access.MemberInvitation{Tenant: tenant, Email: b.Email, Name: b.Name, Lang: lang, InvitedBy: identityOf(r).Subject,
		ExpiresAt: p.now().Add(p.invitationTTL()),
		Member: access.Member{Role: b.Role, Profile: b.Profile, Businesses: b.Businesses, Locations: b.Locations,
			Features: b.Features, Fields: b.Fields, Rights: b.Rights}}
	access.ApplyDefaultProfile(&inv.Member, p.tenantOf(r, tenant))
	if err := access.ValidateInvitation(&inv); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	cat, err := p.catalogue(r.Context())
	if err == nil {
		err = cat.CheckMember(&inv.Member)
	}
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant,
		Target: &policy.MemberChange{User: inv.Email, New: grantOf(&inv.Member)}}) {
		return
	}
	saved, token, err := p.store.InviteMember(r.Context(), inv)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, invitationAnswer{saved, access.MemberInvitationPath(token)})
}

// apiInvitationAction is POST /tenants/{t}/invitations/{id}/resend|withdraw:
// decided as a change to the member the invitation would create.
func (p *Plane) apiInvitationAction(w http.ResponseWriter, r *http.Request) {
	tenant, id, action := r.PathValue("tenant"), r.PathValue("id"), r.PathValue("action")
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant}) {
		return
	}
	if action != "resend" && action != "withdraw" {
		p.writeStoreError(w, r, &access.FieldError{Field: "action", Msg: "must be resend or withdraw"})
		return
	}
	inv, err := p.store.MemberInvitation(r.Context(), tenant, id)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	change := &policy.MemberChange{User: inv.Email, Current: grantOf(&inv.Member)}
	if action == "resend" {
		change.New = grantOf(&inv.Member)
	}
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant, Target: change}) {
		return
	}
	if action == "withdraw" {
		done, err := p.store.WithdrawInvitation(r.Context(), tenant, id)
		p.reply(w, r, http.StatusOK, done, err)
		return
	}
	done, token, err := p.store.ResendInvitation(r.Context(), tenant, id)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, invitationAnswer{done, access.MemberInvitationPath(token)})
}

// invitationTTL is how long invitations can be answered
// (access.invitation_ttl).
func (p *Plane) invitationTTL() time.Duration {
	if ttl := p.cfg.Access.InvitationTTL; ttl > 0 {
		return ttl
	}
	return access.DefaultInvitationTTL
}

// mailLang checks the language of an invitation's e-mails: es, en, or ""
// for the sender's default.
func mailLang(lang string) (string, error) {
	switch lang {
	case "", "es", "en":
		return lang, nil
	}
	return "", &access.FieldError{Field: "lang", Msg: "must be es or en"}
}

// apiTenantSettings is PATCH /tenants/{t}/settings: the owner's own
// settings of their tenant (owner_email, default_profile, notify_master).
func (p *Plane) apiTenantSettings(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenant.settings", Tenant: tenant}) {
		return
	}
	var set access.TenantSettings
	if err := decodeBody(r, &set); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if set.DefaultProfile != nil && *set.DefaultProfile != "" {
		cat, err := p.catalogue(r.Context())
		if err == nil && !cat.Profiles[*set.DefaultProfile] {
			err = &access.FieldError{Field: "default_profile", Msg: fmt.Sprintf("unknown profile %q", *set.DefaultProfile)}
		}
		if err != nil {
			p.writeStoreError(w, r, err)
			return
		}
	}
	t, err := p.store.UpdateTenantSettings(r.Context(), tenant, set)
	p.reply(w, r, http.StatusOK, t, err)
}

// apiTenantHistory is GET /tenants/{t}/history: the tenant's access-change
// history from the audit trail (every change of its members, invitations,
// delegations and settings, and master access to it), newest first;
// ?limit= (default 200, at most 5000).
func (p *Plane) apiTenantHistory(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenant.history.read", Tenant: tenant}) {
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 5000 {
		limit = 200
	}
	recs, err := p.store.AuditRecords(r.Context(), access.AuditFilter{Tenant: tenant, Limit: limit})
	p.reply(w, r, http.StatusOK, map[string]any{"records": recs}, err)
}

// apiTenantMaster is GET /tenants/{t}/master-access: the master-access
// sessions on the tenant (open ones; ?all=1 for the history): who, why,
// ticket, mode, from–to.
func (p *Plane) apiTenantMaster(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenant.master.read", Tenant: tenant}) {
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	list, err := p.store.MasterSessions(r.Context(), r.URL.Query().Get("all") == "", "", tenant, limit)
	p.reply(w, r, http.StatusOK, map[string]any{"sessions": list}, err)
}

// apiTenantRevokeMaster is POST /tenants/{t}/master-access/{id}/revoke:
// the tenant's owner or administrators end a running master-access
// session on their tenant (a session on another tenant is as missing as
// one that does not exist).
func (p *Plane) apiTenantRevokeMaster(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "master.revoke", Tenant: tenant}) {
		return
	}
	if p.master == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: "master access is not configured"})
		return
	}
	ms, err := p.store.Master(r.Context(), r.PathValue("id"))
	if err == nil && ms.Tenant != tenant {
		err = fmt.Errorf("master-access session %s: %w", ms.ID, access.ErrNotFound)
	}
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	p.revokeMaster(w, r, ms)
}

// apiPartnerSearch is GET /tenants/{t}/partner-search?q=: those who may
// invite partners to the tenant find an organisation by its exact contact
// e-mail or the start of its name (3 characters or more); at most
// access.MaxPartnerMatches, each with its id, name and masked e-mail.
// Searches are limited per user (limits.management_writes, a bucket of
// their own).
func (p *Plane) apiPartnerSearch(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "partners.search", Tenant: tenant}) {
		return
	}
	if !p.rateLimit(w, r, limitPartnerSearch, limit.UserKey(identityOf(r).Subject), true) {
		return
	}
	list, err := p.store.SearchPartners(r.Context(), r.URL.Query().Get("q"))
	p.reply(w, r, http.StatusOK, map[string]any{"partners": list, "limit": access.MaxPartnerMatches}, err)
}

// apiGetPartner is GET /partners/{p}: the organisation, for its users.
func (p *Plane) apiGetPartner(w http.ResponseWriter, r *http.Request) {
	partner := r.PathValue("partner")
	if !p.authorizeAPI(w, r, policy.Management{Action: "partner.read", Partner: partner}) {
		return
	}
	got, err := p.store.Partner(r.Context(), partner)
	p.reply(w, r, http.StatusOK, got, err)
}

// partnerUsersCall asks the policy about a call on a partner's users,
// with the caller's role in their own organisation (partner admins
// manage their organisation's users).
func (p *Plane) partnerUsersCall(w http.ResponseWriter, r *http.Request, action, partner string) bool {
	role, err := p.store.PartnerRoleOf(r.Context(), identityOf(r).Subject)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "unavailable", Reason: "access.unavailable"})
		return false
	}
	return p.authorizeAPI(w, r, policy.Management{Action: action, Partner: partner, UserPartnerRole: role})
}

// apiListPartnerUsers is GET /partners/{p}/users.
func (p *Plane) apiListPartnerUsers(w http.ResponseWriter, r *http.Request) {
	partner := r.PathValue("partner")
	if !p.partnerUsersCall(w, r, "partner_users.read", partner) {
		return
	}
	list, err := p.store.PartnerUsers(r.Context(), partner)
	p.reply(w, r, http.StatusOK, map[string]any{"users": list}, err)
}

// partnerUserBody is what a partner admin (or a system admin) sends to add
// or change one of the organisation's users.
type partnerUserBody struct {
	Role   string `json:"role"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Status string `json:"status"`
}

// errSelf refuses a partner admin's change to their own standing (so an
// organisation is never left without the admin who made the change).
var errSelf = fmt.Errorf("%w: you cannot demote, deactivate or remove yourself; ask another admin", access.ErrConflict)

// apiPutPartnerUser is PUT /partners/{p}/users/{user}: system admins (any
// organisation; a user of another one is moved) and the organisation's
// admins (a user of no other organisation) add or change a user.
func (p *Plane) apiPutPartnerUser(w http.ResponseWriter, r *http.Request) {
	partner, user := r.PathValue("partner"), r.PathValue("user")
	if !p.partnerUsersCall(w, r, "partner_users.write", partner) {
		return
	}
	var b partnerUserBody
	if r.ContentLength != 0 {
		if err := decodeBody(r, &b); err != nil {
			p.writeStoreError(w, r, err)
			return
		}
	}
	pu := access.PartnerUser{Partner: partner, User: user, Role: b.Role, Name: b.Name, Email: b.Email, Status: b.Status}
	self := user == identityOf(r).Subject
	if self && ((b.Role != "" && b.Role != "admin") || (b.Status != "" && b.Status != "active")) {
		p.writeStoreError(w, r, errSelf)
		return
	}
	var saved *access.PartnerUser
	var err error
	if p.isSystemAdmin(r) {
		saved, err = p.store.PutPartnerUser(r.Context(), pu)
	} else {
		saved, err = p.store.PutPartnerUserWithin(r.Context(), pu)
	}
	p.reply(w, r, http.StatusOK, saved, err)
}

// isSystemAdmin says whether the policy lets the caller create partner
// organisations (system admins): they may also move users between them.
func (p *Plane) isSystemAdmin(r *http.Request) bool {
	d, err := p.decider.DecideManagement(r, routeAPI, identityOf(r), policy.Management{Action: "partners.write"})
	return err == nil && d.Allow
}

// apiPartnerUserStatus is POST /partners/{p}/users/{user}/deactivate and
// /reactivate.
func (p *Plane) apiPartnerUserStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		partner, user := r.PathValue("partner"), r.PathValue("user")
		if !p.partnerUsersCall(w, r, "partner_users.write", partner) {
			return
		}
		if user == identityOf(r).Subject {
			p.writeStoreError(w, r, errSelf)
			return
		}
		pu, err := p.store.SetPartnerUserStatus(r.Context(), partner, user, status)
		p.reply(w, r, http.StatusOK, pu, err)
	}
}

// apiRemovePartnerUser is DELETE /partners/{p}/users/{user}.
func (p *Plane) apiRemovePartnerUser(w http.ResponseWriter, r *http.Request) {
	partner, user := r.PathValue("partner"), r.PathValue("user")
	if !p.partnerUsersCall(w, r, "partner_users.write", partner) {
		return
	}
	if user == identityOf(r).Subject {
		p.writeStoreError(w, r, errSelf)
		return
	}
	p.reply(w, r, http.StatusNoContent, nil, p.store.RemovePartnerUser(r.Context(), partner, user))
}

// checkPartnerExists answers 400 naming the partner field when the
// invitation names no partner organisation (pick one from the search).
func (p *Plane) checkPartnerExists(r *http.Request, partner string) error {
	_, err := p.store.Partner(r.Context(), partner)
	if errors.Is(err, access.ErrNotFound) {
		return &access.FieldError{Field: "partner", Msg: "no such partner organisation; pick one from GET /tenants/{tenant}/partner-search"}
	}
	return err
}
