package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/internal/limit"
	"github.com/portero-gateway/portero/policy"
)

// apiPrefix is where the management API lives, under the control prefix.
const apiPrefix = "/.portero/api/v1/"

// apiError is a JSON error answer.
type apiError struct {
	Error   string `json:"error"`
	Reason  string `json:"reason,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeStoreError maps store errors: field errors 400, conflicts 409,
// missing things 404, anything else 500 (logged, not shown).
func (p *Plane) writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *access.FieldError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, apiError{Error: "bad_request", Field: fe.Field, Message: fe.Msg})
	case errors.Is(err, access.ErrConflict):
		writeJSON(w, http.StatusConflict, apiError{Error: "conflict", Message: strings.TrimPrefix(err.Error(), "conflict: ")})
	case errors.Is(err, access.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "unavailable", Reason: "access.unavailable"})
	case errors.Is(err, access.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: err.Error()})
	default:
		p.log.Error("management API store error", "decision_id", deny.ID(r.Context()), "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "store_error"})
	}
}

// reply answers with v as JSON, or with the mapped store error.
func (p *Plane) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if v == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

// apiRoutes are the management API's routes, served behind serveAPI.
func (p *Plane) apiRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	at := strings.TrimSuffix(apiPrefix, "/")
	mux.HandleFunc("GET "+at+"/tenants", p.apiListTenants)
	mux.HandleFunc("POST "+at+"/tenants", p.apiCreateTenant)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}", p.apiGetTenant)
	mux.HandleFunc("PATCH "+at+"/tenants/{tenant}", p.apiUpdateTenant)
	mux.HandleFunc("DELETE "+at+"/tenants/{tenant}", p.apiDeleteTenant)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}/members", p.apiListMembers)
	mux.HandleFunc("PUT "+at+"/tenants/{tenant}/members/{user}", p.apiPutMember)
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/members/{user}/deactivate", p.apiMemberStatus("deactivated"))
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/members/{user}/reactivate", p.apiMemberStatus("active"))
	mux.HandleFunc("DELETE "+at+"/tenants/{tenant}/members/{user}", p.apiRemoveMember)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}/delegations", p.apiListTenantDelegations)
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/delegations", p.apiInvite)
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/delegations/{id}/{action}", p.apiTenantTransition)
	mux.HandleFunc("POST "+at+"/delegations/{id}/{action}", p.apiTransition)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}/invitations", p.apiListInvitations)
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/invitations", p.apiInviteMember)
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/invitations/{id}/{action}", p.apiInvitationAction)
	mux.HandleFunc("PATCH "+at+"/tenants/{tenant}/settings", p.apiTenantSettings)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}/history", p.apiTenantHistory)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}/master-access", p.apiTenantMaster)
	mux.HandleFunc("POST "+at+"/tenants/{tenant}/master-access/{id}/revoke", p.apiTenantRevokeMaster)
	mux.HandleFunc("GET "+at+"/tenants/{tenant}/partner-search", p.apiPartnerSearch)
	mux.HandleFunc("POST "+at+"/partners", p.apiCreatePartner)
	mux.HandleFunc("GET "+at+"/partners/{partner}", p.apiGetPartner)
	mux.HandleFunc("GET "+at+"/partners/{partner}/users", p.apiListPartnerUsers)
	mux.HandleFunc("PUT "+at+"/partners/{partner}/users/{user}", p.apiPutPartnerUser)
	mux.HandleFunc("POST "+at+"/partners/{partner}/users/{user}/deactivate", p.apiPartnerUserStatus("deactivated"))
	mux.HandleFunc("POST "+at+"/partners/{partner}/users/{user}/reactivate", p.apiPartnerUserStatus("active"))
	mux.HandleFunc("DELETE "+at+"/partners/{partner}/users/{user}", p.apiRemovePartnerUser)
	mux.HandleFunc("GET "+at+"/partners/{partner}/delegations", p.apiListPartnerDelegations)
	mux.HandleFunc("POST "+at+"/partners/{partner}/delegations/{id}/{action}", p.apiPartnerTransition)
	mux.HandleFunc("GET "+at+"/master-access", p.apiListMaster)
	mux.HandleFunc("POST "+at+"/master-access/{id}/revoke", p.apiRevokeMaster)
	mux.HandleFunc("GET "+at+"/master-access/audit", p.apiMasterAudit)
	mux.HandleFunc("POST "+at+"/users/{user}/sessions/revoke", p.apiEndUserSessions)
	mux.HandleFunc("GET "+at+"/policy", p.apiPolicyStatus)
	mux.HandleFunc("POST "+at+"/policy/try", p.apiTryRequest)
	mux.HandleFunc("GET "+at+"/me", p.apiMe)
	mux.HandleFunc("GET "+at+"/definitions", p.apiDefinitions)
	return mux
}

// serveAPI authenticates the caller, limits and CSRF-checks writes, and
// dispatches; each handler asks the policy (authorizeAPI) before it reads
// the store or the body.
func (p *Plane) serveAPI(w http.ResponseWriter, r *http.Request) {
	if p.store == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Reason: "api.no_store", Message: "the management API needs access.store in gateway.yaml"})
		return
	}
	identity, authErr := p.authn.Authenticate(w, r, true)
	if authErr != nil {
		deny.Unauthenticated(w, r, true, authErr.Reason, deny.ID(r.Context()))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Cross-site requests are refused before they can spend the
		// user's budget.
		if !p.apiWriteAllowed(w, r, identity) || !p.rateLimit(w, r, limitManagementWrite, limit.UserKey(identity.Subject), true) {
			return
		}
	}
	ctx := context.WithValue(r.Context(), identityKey{}, identity)
	p.api.ServeHTTP(w, r.WithContext(ctx))
}

// apiWriteAllowed: writes carry a JSON body (a cross-site form cannot send
// one without a CORS preflight), and browser sessions pass the control
// plane's cross-site rule with the session's CSRF token in X-CSRF-Token
// (not an X-Portero-* name: those are stripped from every inbound request).
// Bearer tokens are not sent by browsers on their own, so need no token.
func (p *Plane) apiWriteAllowed(w http.ResponseWriter, r *http.Request, id *policy.Identity) bool {
	if r.ContentLength != 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, apiError{Error: "unsupported_media_type", Message: "send JSON with Content-Type: application/json"})
			return false
		}
	}
	if id.Auth == "session" {
		st := p.sessions.Current(w, r)
		reason := "csrf.invalid"
		if st != nil {
			reason = p.crossSiteRefusal(r, st, r.Header.Get("X-CSRF-Token"))
		}
		if reason != "" {
			writeJSON(w, http.StatusForbidden, apiError{Error: "forbidden", Reason: reason, Message: "send the csrf value of /.portero/userinfo in X-CSRF-Token, from this origin"})
			return false
		}
	}
	return true
}

type identityKey struct{}

func identityOf(r *http.Request) *policy.Identity {
	id, _ := r.Context().Value(identityKey{}).(*policy.Identity)
	return id
}

// authorizeAPI asks the policy whether the caller may do m; on refusal it
// answers itself (403 with the policy's reason, 503 when the caller's own
// facts cannot be read) and returns false. The answer names only the
// reason, so it is the same whether or not the records named exist.
func (p *Plane) authorizeAPI(w http.ResponseWriter, r *http.Request, m policy.Management) bool {
	d, err := p.decider.DecideManagement(r, routeAPI, identityOf(r), m)
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "unavailable", Reason: "access.unavailable"})
		return false
	case !d.Allow:
		writeJSON(w, http.StatusForbidden, apiError{Error: "forbidden", Reason: d.Reason})
		return false
	}
	return true
}

// decodeBody reads a JSON body strictly: one object, at most 64 KiB;
// unknown fields are errors that name the field.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return &access.FieldError{Field: ute.Field, Msg: fmt.Sprintf("expected %s", ute.Type)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return &access.FieldError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Msg: "unknown field"}
		default:
			return &access.FieldError{Field: "body", Msg: "not valid JSON: " + err.Error()}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &access.FieldError{Field: "body", Msg: "send one JSON object and nothing after it"}
	}
	return nil
}

// catalogue is the names the loaded policy defines, for checking bodies.
func (p *Plane) catalogue(ctx context.Context) (*access.Catalogue, error) {
	defs, err := p.engine.Current().Definitions(ctx)
	if err != nil {
		return nil, err
	}
	return access.CatalogueOf(defs), nil
}

func (p *Plane) apiListTenants(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenants.read"}) {
		return
	}
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	offset, _ := strconv.Atoi(q.Get("offset"))
	page, err := p.store.Tenants(r.Context(), q.Get("q"), limit, max(offset, 0))
	p.reply(w, r, http.StatusOK, page, err)
}

func (p *Plane) apiCreateTenant(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenants.write"}) {
		return
	}
	var t access.Tenant
	if err := decodeBody(r, &t); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	created, err := p.store.CreateTenant(r.Context(), t)
	p.reply(w, r, http.StatusCreated, created, err)
}

func (p *Plane) apiGetTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenant.read", Tenant: tenant}) {
		return
	}
	t, err := p.store.Tenant(r.Context(), tenant)
	p.reply(w, r, http.StatusOK, t, err)
}

func (p *Plane) apiUpdateTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenants.write", Tenant: tenant}) {
		return
	}
	current, err := p.store.Tenant(r.Context(), tenant)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	// A partial update: fields not sent keep their value.
	if err := decodeBody(r, current); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	current.ID = tenant
	updated, err := p.store.UpdateTenant(r.Context(), *current)
	p.reply(w, r, http.StatusOK, updated, err)
}

func (p *Plane) apiDeleteTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "tenants.write", Tenant: tenant}) {
		return
	}
	p.reply(w, r, http.StatusNoContent, nil, p.store.DeleteTenant(r.Context(), tenant))
}

func (p *Plane) apiListMembers(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.read", Tenant: tenant}) {
		return
	}
	members, err := p.store.Members(r.Context(), tenant)
	p.reply(w, r, http.StatusOK, map[string]any{"members": members}, err)
}

// memberBody is what a client sends to add or change a member.
type memberBody struct {
	Name       string              `json:"name"`
	Email      string              `json:"email"`
	Role       string              `json:"role"`
	Profile    string              `json:"profile"`
	Businesses []string            `json:"businesses"`
	Locations  []string            `json:"locations"`
	Features   map[string]string   `json:"features"`
	Fields     map[string][]string `json:"fields"`
	Rights     []string            `json:"rights"`
	Status     string              `json:"status"`
}

// grantOf is what a membership grants, as the policy sees it; nil for none.
func grantOf(m *access.Member) *policy.MemberGrant {
	if m == nil {
		return nil
	}
	return &policy.MemberGrant{Role: m.Role, Profile: m.Profile, Status: m.Status, Businesses: m.Businesses,
		Locations: m.Locations, Rights: m.Rights, Features: m.Features, Fields: m.Fields}
}

// currentMember reads the member a change is about; nil when there is none.
func (p *Plane) currentMember(ctx context.Context, tenant, user string) (*access.Member, error) {
	m, err := p.store.Member(ctx, tenant, user)
	if errors.Is(err, access.ErrNotFound) {
		return nil, nil
	}
	return m, err
}

// apiPutMember adds or replaces a member. First the policy decides whether
// the caller manages members of the tenant at all; then the body is read
// and checked against the policy's catalogue, the member's current record
// is read, and the policy decides on the change (current and new role, what
// is granted); the store writes only if the member is still as read.
func (p *Plane) apiPutMember(w http.ResponseWriter, r *http.Request) {
	tenant, user := r.PathValue("tenant"), r.PathValue("user")
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant}) {
		return
	}
	var b memberBody
	if err := decodeBody(r, &b); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	m := access.Member{Tenant: tenant, User: user, Name: b.Name, Email: b.Email, Role: b.Role, Profile: b.Profile, Businesses: b.Businesses, Locations: b.Locations,
		Features: b.Features, Fields: b.Fields, Rights: b.Rights, Status: b.Status}
	current, err := p.currentMember(r.Context(), tenant, user)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if current == nil {
		// A new member gets the tenant's default profile unless the body
		// chooses a profile or feature rights.
		access.ApplyDefaultProfile(&m, p.tenantOf(r, tenant))
	}
	if err := access.ValidateMember(&m); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	cat, err := p.catalogue(r.Context())
	if err == nil {
		err = cat.CheckMember(&m)
	}
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant,
		Target: &policy.MemberChange{User: user, Current: grantOf(current), New: grantOf(&m)}}) {
		return
	}
	saved, err := p.store.PutMemberAsSeen(r.Context(), m, current)
	p.reply(w, r, http.StatusOK, saved, err)
}

// apiMemberStatus deactivates or reactivates a member. Deactivating needs
// the right to change the member; reactivating also grants again what the
// member holds, so the policy sees it as the new membership.
func (p *Plane) apiMemberStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant, user := r.PathValue("tenant"), r.PathValue("user")
		if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant}) {
			return
		}
		current, err := p.store.Member(r.Context(), tenant, user)
		if err != nil {
			p.writeStoreError(w, r, err)
			return
		}
		change := &policy.MemberChange{User: user, Current: grantOf(current)}
		if status == "active" {
			next := *current
			next.Status = status
			change.New = grantOf(&next)
		}
		if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant, Target: change}) {
			return
		}
		m, err := p.store.SetMemberStatusAsSeen(r.Context(), tenant, user, status, current)
		p.reply(w, r, http.StatusOK, m, err)
	}
}

func (p *Plane) apiRemoveMember(w http.ResponseWriter, r *http.Request) {
	tenant, user := r.PathValue("tenant"), r.PathValue("user")
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant}) {
		return
	}
	current, err := p.store.Member(r.Context(), tenant, user)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if !p.authorizeAPI(w, r, policy.Management{Action: "members.write", Tenant: tenant, Target: &policy.MemberChange{User: user, Current: grantOf(current)}}) {
		return
	}
	p.reply(w, r, http.StatusNoContent, nil, p.store.RemoveMemberAsSeen(r.Context(), tenant, user, current))
}

func (p *Plane) apiListTenantDelegations(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "delegations.read", Tenant: tenant}) {
		return
	}
	list, err := p.store.Delegations(r.Context(), tenant, "")
	p.reply(w, r, http.StatusOK, map[string]any{"delegations": list}, err)
}

// inviteBody is what a tenant sends to invite a partner.
type inviteBody struct {
	// Partner is the id of an organisation picked from the partner search.
	Partner  string   `json:"partner"`
	Scope    string   `json:"scope"`
	Products []string `json:"products"`
	Wallet   bool     `json:"wallet"`
	// Expires is the partnership's own optional end; the invitation can
	// be answered for access.invitation_ttl, whatever it says.
	Expires *time.Time `json:"expires"`
	// Lang is the language of the e-mails to the partner (es, en).
	Lang string `json:"lang"`
}

func (p *Plane) apiInvite(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !p.authorizeAPI(w, r, policy.Management{Action: "delegations.write", Tenant: tenant}) {
		return
	}
	var b inviteBody
	if err := decodeBody(r, &b); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	lang, err := mailLang(b.Lang)
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	d := access.Delegation{Tenant: tenant, Partner: b.Partner, Scope: b.Scope, Lang: lang,
		Products: b.Products, Wallet: b.Wallet, Expires: b.Expires, InvitedBy: identityOf(r).Subject,
		InvitationExpires: new(p.now().Add(p.invitationTTL()))}
	if err = access.ValidateDelegation(&d); err == nil {
		err = p.checkPartnerExists(r, d.Partner)
	}
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	cat, err := p.catalogue(r.Context())
	if err == nil {
		err = cat.CheckDelegation(&d)
	}
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if !p.authorizeAPI(w, r, policy.Management{Action: "delegations.write", Tenant: tenant,
		Grant: &policy.DelegationGrant{Partner: d.Partner, Scope: d.Scope, Products: d.Products, Wallet: d.Wallet}}) {
		return
	}
	created, err := p.store.Invite(r.Context(), d)
	p.reply(w, r, http.StatusCreated, created, err)
}

// Delegation lifecycle actions: the tenant side resends, withdraws and
// revokes; the partner side accepts and rejects.
var (
	tenantTransitions  = map[string]bool{"resend": true, "withdraw": true, "revoke": true}
	partnerTransitions = map[string]bool{"accept": true, "reject": true}
)

// apiTenantTransition is a tenant-side action on one of its delegations.
// The policy decides on the tenant first; a delegation of another tenant
// is then as missing as one that does not exist.
func (p *Plane) apiTenantTransition(w http.ResponseWriter, r *http.Request) {
	tenant, id, action := r.PathValue("tenant"), r.PathValue("id"), r.PathValue("action")
	if !p.authorizeAPI(w, r, policy.Management{Action: "delegations.write", Tenant: tenant}) {
		return
	}
	p.transition(w, r, id, action, tenantTransitions, func(d *access.Delegation) error { return sameScope(d, d.Tenant == tenant) })
}

// apiPartnerTransition is a partner-side answer to an invitation addressed
// to the partner organisation.
func (p *Plane) apiPartnerTransition(w http.ResponseWriter, r *http.Request) {
	partner, id, action := r.PathValue("partner"), r.PathValue("id"), r.PathValue("action")
	if !p.authorizeAPI(w, r, policy.Management{Action: "delegations.respond", Partner: partner}) {
		return
	}
	p.transition(w, r, id, action, partnerTransitions, func(d *access.Delegation) error { return sameScope(d, d.Partner == partner) })
}

func sameScope(d *access.Delegation, ok bool) error {
	if !ok {
		return fmt.Errorf("delegation %s: %w", d.ID, access.ErrNotFound)
	}
	return nil
}

// transition applies action to delegation id when inScope says it may (an
// error wrapping ErrNotFound answers as if it did not exist).
func (p *Plane) transition(w http.ResponseWriter, r *http.Request, id, action string, actions map[string]bool, inScope func(*access.Delegation) error) {
	if !actions[action] {
		p.writeStoreError(w, r, &access.FieldError{Field: "action", Msg: "unknown action " + action})
		return
	}
	d, err := p.store.Delegation(r.Context(), id)
	if err == nil {
		err = inScope(d)
	}
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	updated, err := p.store.Transition(r.Context(), id, action)
	p.reply(w, r, http.StatusOK, updated, err)
}

// apiTransition is the unscoped form, POST /delegations/{id}/{action}. The
// first decision uses only the caller's own facts: a partner's user answers
// for its own organisation; a tenant-side action needs a tenant whose
// delegations the caller manages (or a system admin). Only then is the
// delegation read and decided on; for a caller who passed the first
// decision, one it may not touch is answered as missing.
func (p *Plane) apiTransition(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	caller := identityOf(r)
	var failure error
	may := func(m policy.Management) bool {
		if failure != nil {
			return false
		}
		d, err := p.decider.DecideManagement(r, routeAPI, caller, m)
		failure = err
		return err == nil && d.Allow
	}
	allowed := false
	if partnerTransitions[action] {
		var partner string
		partner, failure = p.store.PartnerOf(r.Context(), caller.Subject)
		allowed = may(policy.Management{Action: "delegations.respond", Partner: partner})
	} else if allowed = may(policy.Management{Action: "delegations.write"}); !allowed && failure == nil {
		var tenants []access.UserTenant
		tenants, failure = p.store.TenantsOf(r.Context(), caller.Subject)
		for _, t := range tenants {
			if may(policy.Management{Action: "delegations.write", Tenant: t.ID}) {
				allowed = true
				break
			}
		}
	}
	switch {
	case failure != nil:
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "unavailable", Reason: "access.unavailable"})
		return
	case !allowed:
		writeJSON(w, http.StatusForbidden, apiError{Error: "forbidden", Reason: "admin.not_allowed"})
		return
	}
	actions := tenantTransitions
	if partnerTransitions[action] {
		actions = partnerTransitions
	}
	p.transition(w, r, id, action, actions, func(d *access.Delegation) error {
		m := policy.Management{Action: "delegations.write", Tenant: d.Tenant}
		if partnerTransitions[action] {
			m = policy.Management{Action: "delegations.respond", Partner: d.Partner}
		}
		ok := may(m)
		if failure != nil {
			return failure
		}
		return sameScope(d, ok)
	})
}

func (p *Plane) apiCreatePartner(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "partners.write"}) {
		return
	}
	var partner access.Partner
	if err := decodeBody(r, &partner); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	created, err := p.store.CreatePartner(r.Context(), partner)
	p.reply(w, r, http.StatusCreated, created, err)
}

func (p *Plane) apiListPartnerDelegations(w http.ResponseWriter, r *http.Request) {
	partner := r.PathValue("partner")
	if !p.authorizeAPI(w, r, policy.Management{Action: "partner.read", Partner: partner}) {
		return
	}
	list, err := p.store.Delegations(r.Context(), "", partner)
	p.reply(w, r, http.StatusOK, map[string]any{"delegations": list}, err)
}

// apiListMaster lists master-access sessions: the open ones, or with
// ?all=1 the history; ?tenant= and ?admin= filter.
func (p *Plane) apiListMaster(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "master.read"}) {
		return
	}
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	list, err := p.store.MasterSessions(r.Context(), q.Get("all") == "", q.Get("admin"), q.Get("tenant"), limit)
	p.reply(w, r, http.StatusOK, list, err)
}

// apiRevokeMaster ends another admin's session at once.
func (p *Plane) apiRevokeMaster(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "master.revoke"}) {
		return
	}
	if p.master == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: "master access is not configured"})
		return
	}
	ms, err := p.store.Master(r.Context(), r.PathValue("id"))
	if err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if !p.authorizeAPI(w, r, policy.Management{Action: "master.revoke", Tenant: ms.Tenant}) {
		return
	}
	p.revokeMaster(w, r, ms)
}

// revokeMaster ends ms, decided already, as revoked by the caller, and
// answers with the ended session (409 when it had ended).
func (p *Plane) revokeMaster(w http.ResponseWriter, r *http.Request, ms *access.MasterSession) {
	if ms.EndedAt != nil {
		p.writeStoreError(w, r, fmt.Errorf("%w: master-access session %s has already ended", access.ErrConflict, ms.ID))
		return
	}
	if err := p.finishMaster(r.Context(), ms, "revoked", identityOf(r).Subject); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	ended, err := p.store.Master(r.Context(), ms.ID)
	p.reply(w, r, http.StatusOK, ended, err)
}

// apiMasterAudit returns master-access records from the trail in the
// store, newest first; ?tenant= and ?admin= filter, ?all=1 adds the access
// changes, ?limit= bounds (default 200).
func (p *Plane) apiMasterAudit(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "master.read"}) {
		return
	}
	if p.master == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: "master access is not configured"})
		return
	}
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 5000 {
		limit = 200
	}
	f := access.AuditFilter{Tenant: q.Get("tenant"), Admin: q.Get("admin"), Events: access.MasterEvents, Limit: limit}
	if q.Get("all") != "" {
		f.Events = nil // access changes too
	}
	recs, err := p.store.AuditRecords(r.Context(), f)
	p.reply(w, r, http.StatusOK, recs, err)
}

// PolicyStatus is what GET /policy reports.
type PolicyStatus struct {
	Source    string            `json:"source"`
	Revision  string            `json:"revision"`
	LoadedAt  time.Time         `json:"loaded_at"`
	LastError string            `json:"last_reload_error,omitempty"`
	LastErrAt time.Time         `json:"last_reload_error_at,omitzero"`
	Stages    map[string]string `json:"stages"`
	// RequireTests says whether loads must pass the policy's tests
	// (policy.require_tests); TestsPassed is how many the policy served
	// passed.
	RequireTests bool `json:"require_tests"`
	TestsPassed  int  `json:"tests_passed,omitempty"`
	// TestsFailed is how many of the served policy's tests failed: none,
	// or the test gate would have refused it; TestsCoverage is the
	// percentage of its lines they cover, measured once after the load
	// (absent until then). Neither is recomputed per request.
	TestsFailed   int      `json:"tests_failed"`
	TestsCoverage *float64 `json:"tests_coverage,omitempty"`
	// FailingTests are the tests that made the last refused reload fail;
	// Errors its parse or compile errors, each at file:line:column.
	FailingTests []policy.TestFailure `json:"failing_tests,omitempty"`
	Errors       []policy.PolicyError `json:"errors,omitempty"`
	// History is the last revisions loaded, newest (the one served) first,
	// each with the diff of the files that changed.
	History []policy.Revision `json:"history"`
	// Shadow is the shadow policy (policy.shadow_dir), when there is one.
	Shadow *ShadowStatus `json:"shadow,omitempty"`
}

// ShadowStatus is the shadow policy's part of GET /policy: what is loaded
// (nothing yet when its first load was refused) and its last refused load.
type ShadowStatus struct {
	Source       string               `json:"source"`
	Revision     string               `json:"revision,omitempty"`
	LoadedAt     time.Time            `json:"loaded_at,omitzero"`
	LastError    string               `json:"last_reload_error,omitempty"`
	LastErrAt    time.Time            `json:"last_reload_error_at,omitzero"`
	FailingTests []policy.TestFailure `json:"failing_tests,omitempty"`
	Errors       []policy.PolicyError `json:"errors,omitempty"`
	History      []policy.Revision    `json:"history"`
	// Disagreements count the requests on which the shadow policy decided
	// otherwise than the active one since start, by route, reasons and
	// kind, most frequent first.
	Disagreements []policy.ShadowDisagreement `json:"disagreements"`
}

func (p *Plane) apiPolicyStatus(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "policy.read"}) {
		return
	}
	writeJSON(w, http.StatusOK, p.policyStatus())
}

func (p *Plane) policyStatus() PolicyStatus {
	cur := p.engine.Current()
	st := PolicyStatus{Source: p.engine.SourceName(), Revision: cur.Revision, LoadedAt: cur.LoadedAt, Stages: cur.Stages(),
		RequireTests: p.engine.TestsRequired(), TestsPassed: cur.Tests, History: p.engine.History()}
	if cov, ok := cur.TestsCoverage(); ok {
		st.TestsCoverage = &cov
	}
	if e := p.engine.LastReloadError(); e != nil {
		st.LastError, st.LastErrAt, st.FailingTests, st.Errors = e.Err.Error(), e.At, e.Tests, e.Errors
	}
	if sh := p.engine.Shadow(); sh != nil {
		st.Shadow = &ShadowStatus{Source: sh.SourceName(), History: sh.History(), Disagreements: p.engine.ShadowDisagreements()}
		if c := sh.Current(); c != nil {
			st.Shadow.Revision, st.Shadow.LoadedAt = c.Revision, c.LoadedAt
		}
		if e := sh.LastReloadError(); e != nil {
			st.Shadow.LastError, st.Shadow.LastErrAt, st.Shadow.FailingTests, st.Shadow.Errors = e.Err.Error(), e.At, e.Tests, e.Errors
		}
	}
	return st
}

// TryRequest is the body of POST /policy/try: a request to decide as the
// gateway would, sending nothing.
type TryRequest struct {
	Method string `json:"method"`
	// Target is a path ("/app/x") or an absolute URL (for a host's routes).
	Target string `json:"target"`
	// User is the caller's subject; empty for an anonymous request.
	User string `json:"user,omitempty"`
	// Tenant, when set, names the tenant in place of the one the host or
	// path gives.
	Tenant string `json:"tenant,omitempty"`
}

// check refuses what no request could carry, naming the field.
func (t TryRequest) check() error {
	const maxField = 512
	switch {
	case t.Method == "" || len(t.Method) > 32:
		return &access.FieldError{Field: "method", Msg: "give a method such as GET"}
	case t.Target == "" || len(t.Target) > 4096:
		return &access.FieldError{Field: "target", Msg: "give a path such as /app/reviews, or an absolute URL"}
	case len(t.User) > maxField:
		return &access.FieldError{Field: "user", Msg: "too long"}
	case len(t.Tenant) > maxField:
		return &access.FieldError{Field: "tenant", Msg: "too long"}
	}
	u, err := url.Parse(t.Target)
	if err != nil || (u.Host == "" && !strings.HasPrefix(t.Target, "/")) || (u.Host != "" && u.Scheme != "http" && u.Scheme != "https") {
		return &access.FieldError{Field: "target", Msg: "give a path such as /app/reviews, or an absolute http(s) URL"}
	}
	return nil
}

// apiTryRequest answers what the policy being served would decide on a
// request, with the explain trace (policy.Trial). The trace shows how the
// policy decides for any user, so the policy allows it to few (policy.try).
func (p *Plane) apiTryRequest(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "policy.try"}) {
		return
	}
	var req TryRequest
	if err := decodeBody(r, &req); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	if err := req.check(); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	trial, err := p.decider.TryRequest(r.Context(), req.Method, req.Target, req.User, req.Tenant)
	p.reply(w, r, http.StatusOK, trial, err)
}

// Me is what GET /me answers: who the caller is here.
type Me struct {
	Subject string              `json:"sub"`
	Tenants []access.UserTenant `json:"tenants"`
	Partner string              `json:"partner,omitempty"`
	// PartnerRole is the caller's role in Partner: admin (manages its
	// users) or staff.
	PartnerRole string `json:"partner_role,omitempty"`
}

func (p *Plane) apiMe(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "self.read"}) {
		return
	}
	id := identityOf(r)
	me := Me{Subject: id.Subject}
	var err error
	if me.Tenants, err = p.store.TenantsOf(r.Context(), id.Subject); err == nil {
		me.Partner, err = p.store.PartnerOf(r.Context(), id.Subject)
	}
	if err == nil && me.Partner != "" {
		me.PartnerRole, err = p.store.PartnerRoleOf(r.Context(), id.Subject)
	}
	p.reply(w, r, http.StatusOK, me, err)
}

// apiDefinitions returns the policy's feature catalogue, profiles and rights.
func (p *Plane) apiDefinitions(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "definitions.read"}) {
		return
	}
	defs, err := p.engine.Current().Definitions(r.Context())
	if defs == nil && err == nil {
		defs = map[string]any{}
	}
	p.reply(w, r, http.StatusOK, defs, err)
}
