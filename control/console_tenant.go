package control

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/internal/i18n"
	"github.com/portero-gateway/portero/policy"
)

// Console pages for tenant owners and members with user management
// (members, partners) and for partner users (invitations, tenants they
// manage). Like the rest of the console they go through the management
// API as the signed-in user.

// catalogue is the policy's feature catalogue, profiles and rights, for
// the member and invitation forms.
type catalogue struct {
	Features []catalogueEntry
	Profiles []catalogueEntry
	Rights   []string
	Roles    []string // highest rank first
}

type catalogueEntry struct {
	ID, Title string
	// Fields are the fields the policy lists for a feature
	// (definitions.features.<id>.fields): what a per-field edit right
	// picks from.
	Fields []string
}

func (c *consoleRequest) catalogue() catalogue {
	var defs struct {
		Features map[string]struct {
			Title  string
			Fields []string
		} `json:"features"`
		Profiles map[string]struct{ Title string } `json:"profiles"`
		Rights   map[string]any                    `json:"rights"`
		Roles    map[string]int                    `json:"roles"`
	}
	c.api("GET", "definitions", nil, &defs)
	var cat catalogue
	cat.Roles = (&access.Catalogue{Roles: defs.Roles}).RolesByRank()
	for id, f := range defs.Features {
		cat.Features = append(cat.Features, catalogueEntry{id, f.Title, f.Fields})
	}
	for id, p := range defs.Profiles {
		cat.Profiles = append(cat.Profiles, catalogueEntry{ID: id, Title: p.Title})
	}
	for id := range defs.Rights {
		cat.Rights = append(cat.Rights, id)
	}
	sort.Slice(cat.Features, func(i, j int) bool {
		return i18n.Or(c.lang, "feature."+cat.Features[i].ID, cat.Features[i].Title) < i18n.Or(c.lang, "feature."+cat.Features[j].ID, cat.Features[j].Title)
	})
	sort.Slice(cat.Profiles, func(i, j int) bool { return cat.Profiles[i].ID < cat.Profiles[j].ID })
	sort.Strings(cat.Rights)
	return cat
}

func setOf(list []string) map[string]bool {
	set := make(map[string]bool, len(list))
	for _, v := range list {
		set[v] = true
	}
	return set
}

func splitList(s string) []string {
	out := []string{}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// myAccess is the home page of someone who is not a system admin: their
// tenants with the pages the policy lets them use, and their partner
// organisation.
func (c *consoleRequest) myAccess() {
	var me Me
	if status, ae := c.api("GET", "me", nil, &me); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	type row struct {
		access.UserTenant
		Members, Partners, History bool
	}
	var rows []row
	for _, t := range me.Tenants {
		rows = append(rows, row{t, c.may("members.read", t.ID), c.may("delegations.read", t.ID), c.may("tenant.history.read", t.ID)})
	}
	c.render("home.html", "", http.StatusOK, consolePage{Title: c.t("nav.your_access"), Data: struct {
		Tenants []row
		Partner string
	}{rows, me.Partner}})
}

func (c *consoleRequest) members(tenant string) {
	var list struct{ Members []*access.Member }
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/members", nil, &list); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	flash := ""
	if invited := c.r.URL.Query().Get("invited"); invited != "" {
		flash = c.t("members.invited_flash", invited)
	}
	if changed := c.r.URL.Query().Get("changed"); changed != "" {
		for _, m := range list.Members {
			if m.User == changed {
				flash = m.User + ": " + m.Status
				if i18n.Has(i18n.English, "members.flash."+m.Status) {
					flash = c.t("members.flash."+m.Status, m.User)
				}
			}
		}
	}
	// The policy says who may add members at all, and which members the
	// user may change or remove (those ranked below them).
	canWrite := c.may("members.write", tenant)
	manage := map[string]bool{}
	for _, m := range list.Members {
		manage[m.User] = canWrite && c.mayDo(policy.Management{Action: "members.write", Tenant: tenant,
			Target: &policy.MemberChange{User: m.User, Current: grantOf(m)}})
	}
	// Invitations pending (and lately ended), for those who manage members.
	var invs struct{ Invitations []*access.MemberInvitation }
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/invitations", nil, &invs); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	c.render("members.html", "tenant", http.StatusOK, consolePage{Title: c.t("members.title", tenant), Flash: flash, Data: struct {
		Tenant      string
		Members     []*access.Member
		Invitations []*access.MemberInvitation
		CanWrite    bool
		Manage      map[string]bool
	}{tenant, list.Members, invs.Invitations, canWrite, manage}})
}

// grantableRoles are the roles the policy lets the user give (to user, whose
// record is current; nil for a new member).
func (c *consoleRequest) grantableRoles(tenant, user string, current *access.Member, roles []string) []string {
	var out []string
	for _, role := range roles {
		if c.mayDo(policy.Management{Action: "members.write", Tenant: tenant, Target: &policy.MemberChange{User: user,
			Current: grantOf(current), New: &policy.MemberGrant{Role: role, Status: "active"}}}) {
			out = append(out, role)
		}
	}
	return out
}

// memberRefusalFields shows the policy's refusal of a member change next to
// the form field it is about.
// The text is the catalogue's reason.<reason>.
var memberRefusalFields = map[string]string{
	"admin.rank":            "role",
	"admin.target_is_owner": "user",
	"admin.grant_business":  "businesses",
	"admin.grant_location":  "locations",
	"admin.grant_right":     "rights",
	"admin.grant_feature":   "features",
	"admin.grant_level":     "features",
	"admin.grant_field":     "fields",
}

// memberForm is the add/edit form, as the user typed it.
type memberForm struct {
	Tenant, User, Role, Profile string
	Businesses, Locations       string
	Features                    map[string]string          // feature -> "", read, edit
	Fields                      map[string]map[string]bool // feature -> the fields its edits are limited to
	// FieldChoices are the fields each feature offers: those the policy
	// lists, and any the member has already been limited to.
	FieldChoices map[string][]string
	Rights       map[string]bool
	New          bool
	// Invite: a new member invited by e-mail (Email, Name, and the
	// language of the invitation's e-mails).
	Invite            bool
	Email, Name, Lang string
	Langs             []struct{ Code, Name string }
	Roles             []string
	Catalogue         catalogue
}

// memberForm adds a member by user id (user ""), changes one, or with
// invite invites one by e-mail.
func (c *consoleRequest) memberForm(tenant, user string, invite bool) {
	f := memberForm{Tenant: tenant, User: user, New: user == "", Invite: invite, Features: map[string]string{}, Fields: map[string]map[string]bool{},
		Rights: map[string]bool{}, Catalogue: c.catalogue(), FieldChoices: map[string][]string{}, Lang: c.lang, Langs: i18n.Languages}
	var current *access.Member
	if !f.New {
		var list struct{ Members []*access.Member }
		if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/members", nil, &list); status != http.StatusOK {
			c.failed(status, ae)
			return
		}
		for _, x := range list.Members {
			if x.User == user {
				current = x
			}
		}
		if current == nil {
			c.failed(http.StatusNotFound, apiError{Message: c.t("members.no_such", user, tenant)})
			return
		}
	}
	if !c.mayDo(policy.Management{Action: "members.write", Tenant: tenant, Target: &policy.MemberChange{User: user, Current: grantOf(current)}}) {
		c.failed(http.StatusForbidden, apiError{Reason: "admin.not_allowed", Message: c.t("members.may_not_change")})
		return
	}
	f.Roles = c.grantableRoles(tenant, user, current, f.Catalogue.Roles)
	if f.New && c.r.Method == http.MethodGet {
		// New members get the tenant's default profile unless another is
		// chosen.
		var t access.Tenant
		if status, _ := c.api("GET", "tenants/"+url.PathEscape(tenant), nil, &t); status == http.StatusOK {
			f.Profile = t.DefaultProfile
		}
	}
	if current != nil && c.r.Method == http.MethodGet {
		m := current
		f.Role, f.Profile = m.Role, m.Profile
		f.Businesses, f.Locations = strings.Join(m.Businesses, ", "), strings.Join(m.Locations, ", ")
		f.Features = m.Features
		for feat, fields := range m.Fields {
			f.Fields[feat] = setOf(fields)
		}
		for _, r := range m.Rights {
			f.Rights[r] = true
		}
	}
	for _, feat := range f.Catalogue.Features {
		f.FieldChoices[feat.ID] = feat.Fields
	}
	if current != nil {
		for feat, fields := range current.Fields {
			for _, name := range fields {
				if !slices.Contains(f.FieldChoices[feat], name) {
					f.FieldChoices[feat] = append(slices.Clone(f.FieldChoices[feat]), name)
				}
			}
		}
	}
	title := c.t("member.add_title", tenant)
	if f.Invite {
		title = c.t("member.invite_title", tenant)
	}
	if !f.New {
		title = c.t("member.edit_title", user, tenant)
	}
	if c.r.Method != http.MethodPost {
		c.render("member_form.html", "tenant", http.StatusOK, consolePage{Title: title, Data: f})
		return
	}
	form := c.r.PostForm
	if f.New && !f.Invite {
		f.User = strings.TrimSpace(form.Get("user"))
	}
	if f.Invite {
		f.Email, f.Name, f.Lang = strings.TrimSpace(form.Get("email")), strings.TrimSpace(form.Get("name")), form.Get("lang")
	}
	f.Role, f.Profile = form.Get("role"), form.Get("profile")
	f.Businesses, f.Locations = form.Get("businesses"), form.Get("locations")
	body := map[string]any{"role": f.Role, "profile": f.Profile, "businesses": splitList(f.Businesses), "locations": splitList(f.Locations)}
	features, fields, rights := map[string]string{}, map[string][]string{}, []string{}
	for _, feat := range f.Catalogue.Features {
		if level := form.Get("feature." + feat.ID); level != "" {
			features[feat.ID], f.Features[feat.ID] = level, level
		}
		// The checked fields (a script may send one comma-separated value).
		var chosen []string
		for _, v := range form["fields."+feat.ID] {
			chosen = append(chosen, splitList(v)...)
		}
		if len(chosen) > 0 {
			fields[feat.ID], f.Fields[feat.ID] = chosen, setOf(chosen)
		}
	}
	for _, r := range f.Catalogue.Rights {
		if form.Get("right."+r) == "on" {
			rights, f.Rights[r] = append(rights, r), true
		}
	}
	body["features"], body["fields"], body["rights"] = features, fields, rights
	errs := map[string]string{}
	switch {
	case f.Invite && f.Email == "":
		errs["email"] = c.t("member.email_required")
	case !f.Invite && f.User == "":
		errs["user"] = c.t("member.user_required")
	}
	status := http.StatusBadRequest
	if len(errs) == 0 {
		var ae apiError
		if f.Invite {
			body["email"], body["name"], body["lang"] = f.Email, f.Name, f.Lang
			status, ae = c.api("POST", "tenants/"+url.PathEscape(tenant)+"/invitations", body, nil)
		} else {
			status, ae = c.api("PUT", "tenants/"+url.PathEscape(tenant)+"/members/"+url.PathEscape(f.User), body, nil)
		}
		field, known := memberRefusalFields[ae.Reason]
		switch {
		case status == http.StatusCreated && f.Invite:
			http.Redirect(c.w, c.r, consolePrefix+"t/"+url.PathEscape(tenant)+"/members?"+url.Values{"invited": {f.Email}}.Encode(), http.StatusSeeOther)
			return
		case status == http.StatusOK:
			http.Redirect(c.w, c.r, consolePrefix+"t/"+url.PathEscape(tenant)+"/members", http.StatusSeeOther)
			return
		case status == http.StatusBadRequest || status == http.StatusConflict:
			errs[ae.Field] = c.apiMessage(status, ae)
			if ae.Field == "" && f.Invite {
				errs["email"] = c.apiMessage(status, ae)
			} else if ae.Field == "" {
				errs["user"] = c.apiMessage(status, ae)
			}
		case status == http.StatusForbidden && known:
			errs[field] = c.apiMessage(status, ae)
		default:
			c.failed(status, ae)
			return
		}
	}
	c.render("member_form.html", "tenant", status, consolePage{Title: title, Errors: errs, Data: f})
}

// memberStatus applies the "active" checkbox at once.
func (c *consoleRequest) memberStatus(tenant, user string) {
	action := "deactivate"
	if c.r.PostFormValue("active") == "on" {
		action = "reactivate"
	}
	if status, ae := c.api("POST", "tenants/"+url.PathEscape(tenant)+"/members/"+url.PathEscape(user)+"/"+action, nil, nil); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, consolePrefix+"t/"+url.PathEscape(tenant)+"/members?"+url.Values{"changed": {user}}.Encode(), http.StatusSeeOther)
}

func (c *consoleRequest) removeMember(tenant, user string) {
	if !c.confirm(c.t("members.remove_question", user, tenant),
		consolePrefix+"t/"+url.PathEscape(tenant)+"/members/"+url.PathEscape(user)+"/remove", c.t("members.remove")) {
		return
	}
	if status, ae := c.api("DELETE", "tenants/"+url.PathEscape(tenant)+"/members/"+url.PathEscape(user), nil, nil); status != http.StatusNoContent && status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, consolePrefix+"t/"+url.PathEscape(tenant)+"/members", http.StatusSeeOther)
}

type inviteForm struct {
	// Partner is the organisation picked from the search results for
	// Query.
	Partner, Query       string
	Scope, Expires, Lang string
	Products             map[string]bool
	Wallet               bool
}

func (c *consoleRequest) partners(tenant string, form inviteForm, errs map[string]string, status int) {
	var list struct{ Delegations []*access.Delegation }
	if code, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/delegations", nil, &list); code != http.StatusOK {
		c.failed(code, ae)
		return
	}
	if form.Scope == "" {
		form.Scope = "limited"
	}
	if errs == nil {
		errs = map[string]string{}
	}
	if c.r.Method == http.MethodGet {
		form.Query = strings.TrimSpace(c.r.URL.Query().Get("q"))
	}
	// The partner search: an exact e-mail or 3+ letters of a name; the
	// invitation picks one of the results (never a typed id).
	var found struct{ Partners []access.PartnerMatch }
	searched := form.Query != ""
	if searched {
		code, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/partner-search?"+url.Values{"q": {form.Query}}.Encode(), nil, &found)
		switch {
		case code == http.StatusOK:
		case code == http.StatusBadRequest || code == http.StatusTooManyRequests:
			errs["q"] = c.apiMessage(code, ae)
		default:
			c.failed(code, ae)
			return
		}
	}
	if form.Partner != "" && !slices.ContainsFunc(found.Partners, func(m access.PartnerMatch) bool { return m.ID == form.Partner }) {
		found.Partners = append([]access.PartnerMatch{{ID: form.Partner, Name: form.Partner}}, found.Partners...)
	}
	if len(found.Partners) == 1 && form.Partner == "" {
		form.Partner = found.Partners[0].ID
	}
	c.render("partners.html", "tenant", status, consolePage{Title: c.t("partners.title", tenant), Errors: errs, Data: struct {
		Tenant      string
		Delegations []*access.Delegation
		CanWrite    bool
		Form        inviteForm
		Catalogue   catalogue
		Searched    bool
		Found       []access.PartnerMatch
		Langs       []struct{ Code, Name string }
	}{tenant, list.Delegations, c.may("delegations.write", tenant), form, c.catalogue(), searched, found.Partners, i18n.Languages}})
}

func (c *consoleRequest) invite(tenant string) {
	form := inviteForm{Partner: strings.TrimSpace(c.r.PostFormValue("partner")), Query: strings.TrimSpace(c.r.PostFormValue("q")),
		Scope: c.r.PostFormValue("scope"), Expires: strings.TrimSpace(c.r.PostFormValue("expires")), Lang: c.r.PostFormValue("lang"),
		Products: map[string]bool{}, Wallet: c.r.PostFormValue("wallet") == "on"}
	if form.Lang == "" {
		form.Lang = c.lang
	}
	body := map[string]any{"partner": form.Partner, "scope": form.Scope, "wallet": form.Wallet, "lang": form.Lang}
	products := []string{}
	for k := range c.r.PostForm {
		if p, ok := strings.CutPrefix(k, "product."); ok {
			products, form.Products[p] = append(products, p), true
		}
	}
	sort.Strings(products)
	body["products"] = products
	errs := map[string]string{}
	if form.Partner == "" {
		errs["partner"] = c.t("partners.pick_first")
	}
	if form.Expires != "" {
		t, err := time.Parse("2006-01-02", form.Expires)
		if err != nil {
			errs["expires"] = c.t("partners.bad_date")
		} else {
			body["expires"] = t.Add(24*time.Hour - time.Second).UTC() // the end of that day
		}
	}
	if len(errs) == 0 {
		status, ae := c.api("POST", "tenants/"+url.PathEscape(tenant)+"/delegations", body, nil)
		switch {
		case status == http.StatusCreated:
			http.Redirect(c.w, c.r, consolePrefix+"t/"+url.PathEscape(tenant)+"/partners", http.StatusSeeOther)
			return
		case status == http.StatusBadRequest || status == http.StatusConflict:
			field := ae.Field
			if field == "" {
				field = "partner"
			}
			errs[field] = c.apiMessage(status, ae)
		case status == http.StatusForbidden && inviteRefusalFields[ae.Reason] != "":
			errs[inviteRefusalFields[ae.Reason]] = c.apiMessage(status, ae)
		default:
			c.failed(status, ae)
			return
		}
	}
	c.partners(tenant, form, errs, http.StatusBadRequest)
}

// inviteRefusalFields shows the policy's refusal of an invitation next to
// the form field it is about.
var inviteRefusalFields = map[string]string{
	"admin.grant_full":    "scope",
	"admin.grant_product": "products",
	"admin.grant_wallet":  "products",
}

// delegationAction moves a delegation (resend, withdraw, revoke from the
// tenant side; accept, reject from the partner side). Withdrawing,
// revoking and rejecting ask first.
func (c *consoleRequest) delegationAction(scope, id, action, back string) {
	if ask := action == "withdraw" || action == "revoke" || action == "reject"; ask &&
		!c.confirm(c.t("delegation.question."+action), c.r.URL.Path, c.t("action."+action)) {
		return
	}
	if status, ae := c.api("POST", scope+"/delegations/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, nil); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, back, http.StatusSeeOther)
}

// partnerAnswer is a partner user's answer to an invitation addressed to
// their organisation.
func (c *consoleRequest) partnerAnswer(id, action string) {
	var me Me
	if status, ae := c.api("GET", "me", nil, &me); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	if me.Partner == "" {
		c.failed(http.StatusForbidden, apiError{Reason: "admin.not_allowed", Message: c.t("partner.not_partner_user")})
		return
	}
	c.delegationAction("partners/"+url.PathEscape(me.Partner), id, action, consolePrefix+"partner")
}

// partnerSide shows a partner user the invitations addressed to their
// organisation and the tenants it manages, and its admins its users.
func (c *consoleRequest) partnerSide() {
	flash := ""
	if saved := c.r.URL.Query().Get("saved"); saved != "" {
		flash = c.t("staff.saved", saved)
	}
	c.partnerPage(http.StatusOK, flash, nil, access.PartnerUser{Role: "staff"})
}

func (c *consoleRequest) partnerPage(status int, flash string, errs map[string]string, form access.PartnerUser) {
	var me Me
	if status, ae := c.api("GET", "me", nil, &me); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	if me.Partner == "" {
		c.failed(http.StatusNotFound, apiError{Message: c.t("partner.not_partner_user")})
		return
	}
	var list struct{ Delegations []*access.Delegation }
	if status, ae := c.api("GET", "partners/"+url.PathEscape(me.Partner)+"/delegations", nil, &list); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	var invited, managed, past []*access.Delegation
	for _, d := range list.Delegations {
		switch d.Status {
		case "invited":
			invited = append(invited, d)
		case "accepted":
			managed = append(managed, d)
		default:
			past = append(past, d)
		}
	}
	// The organisation's admins manage its users: the API says whether
	// the caller is one.
	var staff struct{ Users []*access.PartnerUser }
	manage := false
	if code, _ := c.api("GET", "partners/"+url.PathEscape(me.Partner)+"/users", nil, &staff); code == http.StatusOK {
		manage = true
	}
	var org access.Partner
	c.api("GET", "partners/"+url.PathEscape(me.Partner), nil, &org)
	title := me.Partner
	if org.Name != "" {
		title = org.Name
	}
	c.render("partner.html", "partner", status, consolePage{Title: c.t("partner.title", title), Flash: flash, Errors: errs, Data: struct {
		Partner, Me            string
		Invited, Managed, Past []*access.Delegation
		AppURL                 func(string) string
		CanManage              bool
		Users                  []*access.PartnerUser
		Form                   access.PartnerUser
	}{me.Partner, c.st.Identity.Subject, invited, managed, past, c.p.tenantAppURL, manage, staff.Users, form}})
}

// partnerUserForm adds or changes a user of the caller's organisation (its
// admins only; the API decides).
func (c *consoleRequest) partnerUserForm() {
	partner, ok := c.myPartner()
	if !ok {
		return
	}
	f := c.r.PostForm
	pu := access.PartnerUser{User: strings.TrimSpace(f.Get("user")), Name: strings.TrimSpace(f.Get("name")),
		Email: strings.TrimSpace(f.Get("email")), Role: f.Get("role")}
	if pu.User == "" {
		c.partnerPage(http.StatusBadRequest, "", map[string]string{"staff_user": c.t("member.user_required")}, pu)
		return
	}
	status, ae := c.api("PUT", "partners/"+url.PathEscape(partner)+"/users/"+url.PathEscape(pu.User),
		map[string]any{"name": pu.Name, "email": pu.Email, "role": pu.Role}, nil)
	switch {
	case status == http.StatusOK:
		http.Redirect(c.w, c.r, consolePrefix+"partner?"+url.Values{"saved": {pu.User}}.Encode(), http.StatusSeeOther)
	case status == http.StatusBadRequest || status == http.StatusConflict:
		field := "staff_" + ae.Field
		if ae.Field == "" {
			field = "staff_user"
		}
		c.partnerPage(status, "", map[string]string{field: c.apiMessage(status, ae)}, pu)
	default:
		c.failed(status, ae)
	}
}

// partnerUserAction deactivates, reactivates or removes (after asking) a
// user of the caller's organisation.
func (c *consoleRequest) partnerUserAction(user, action string) {
	partner, ok := c.myPartner()
	if !ok {
		return
	}
	path := "partners/" + url.PathEscape(partner) + "/users/" + url.PathEscape(user)
	method := "POST"
	switch action {
	case "remove":
		if !c.confirm(c.t("staff.remove_question", user), c.r.URL.Path, c.t("members.remove")) {
			return
		}
		method = "DELETE"
	case "deactivate", "reactivate":
		path += "/" + action
	default:
		c.notFound()
		return
	}
	if status, ae := c.api(method, path, nil, nil); status != http.StatusOK && status != http.StatusNoContent {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, consolePrefix+"partner", http.StatusSeeOther)
}

// myPartner is the caller's partner organisation; without one it answers
// itself.
func (c *consoleRequest) myPartner() (string, bool) {
	var me Me
	if status, ae := c.api("GET", "me", nil, &me); status != http.StatusOK {
		c.failed(status, ae)
		return "", false
	}
	if me.Partner == "" {
		c.failed(http.StatusForbidden, apiError{Reason: "admin.not_allowed", Message: c.t("partner.not_partner_user")})
		return "", false
	}
	return me.Partner, true
}

// tenantHistory shows a tenant's owner and administrators who entered
// their tenant through master access (open sessions, which they may
// revoke, and past ones) and every change of its access, with what each
// change changed.
func (c *consoleRequest) tenantHistory(tenant string) {
	var open, all struct{ Sessions []*access.MasterSession }
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/master-access", nil, &open); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/master-access?all=1&limit=50", nil, &all); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	var past []*access.MasterSession
	for _, s := range all.Sessions {
		if s.EndedAt != nil || !s.Active(c.p.now()) {
			past = append(past, s)
		}
	}
	var hist struct{ Records []audit.Record }
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant)+"/history?limit=200", nil, &hist); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	flash := ""
	if id := c.r.URL.Query().Get("revoked"); id != "" {
		flash = c.t("history.revoked", id)
	}
	c.render("history.html", "tenant", http.StatusOK, consolePage{Title: c.t("history.title", tenant), Flash: flash, Data: struct {
		Tenant      string
		Open        []*access.MasterSession
		Past        []*access.MasterSession
		Changes     []historyRow
		CanRevoke   bool
		RevokeBase  string
		CanSettings bool
	}{tenant, open.Sessions, past, historyRows(c.lang, hist.Records), c.may("master.revoke", tenant),
		consolePrefix + "t/" + url.PathEscape(tenant) + "/master/", c.may("tenant.settings", tenant)}})
}

// historyRow is one access change as the history page shows it: what
// changed from what to what.
type historyRow struct {
	audit.Record
	Changes []fieldChange
	Removed bool
}

type fieldChange struct{ Field, Before, After string }

// historyRows pairs each change with the state before it: the next older
// record of the same object among those read (records come newest first).
// A change whose earlier state is older than the page shows what it set.
func historyRows(lang string, recs []audit.Record) []historyRow {
	rows := make([]historyRow, 0, len(recs))
	for i, rec := range recs {
		row := historyRow{Record: rec, Removed: rec.Object != "" && len(rec.Data) == 0}
		if rec.Object == "" {
			rows = append(rows, row)
			continue
		}
		after := flatState(lang, rec.Data)
		var before map[string]string
		for _, older := range recs[i+1:] {
			if older.Object == rec.Object {
				before = flatState(lang, older.Data)
				break
			}
		}
		for _, k := range slices.Sorted(maps.Keys(union(before, after))) {
			if before[k] != after[k] {
				row.Changes = append(row.Changes, fieldChange{k, before[k], after[k]})
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// flatState is a recorded state as field -> the value as people read it,
// in lang; a nested membership (an invitation's) is read as its fields.
// What says when or whom rather than what is left out.
func flatState(lang string, data json.RawMessage) map[string]string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	out := map[string]string{}
	var add func(map[string]any)
	add = func(m map[string]any) {
		for k, v := range m {
			switch {
			case k == "tenant" || k == "user" || k == "id" || k == "invited_by" || k == "accepted_by":
				continue
			case strings.HasSuffix(k, "_at") && k != "expires_at":
				continue
			}
			if nested, ok := v.(map[string]any); ok && k == "member" {
				add(nested)
				continue
			}
			if text := stateValue(lang, k, v); text != "" {
				if _, set := out[k]; !set {
					out[k] = text
				}
			}
		}
	}
	add(m)
	return out
}

// stateValue is one recorded value as people read it: names the catalogue
// knows in lang, times in UTC, lists joined.
func stateValue(lang, field string, v any) string {
	label := func(kinds []string, s string) string {
		for _, kind := range kinds {
			if i18n.Has(i18n.English, kind+"."+s) {
				return i18n.T(lang, kind+"."+s)
			}
		}
		return s
	}
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return i18n.T(lang, "common.yes")
		}
		return i18n.T(lang, "common.no")
	case string:
		switch field {
		case "role":
			return label([]string{"role", "partner_role"}, x)
		case "profile", "default_profile":
			return label([]string{"profile"}, x)
		case "status":
			return label([]string{"member_status", "invitation_status", "delegation_status", "tenant_status"}, x)
		case "scope":
			return label([]string{"scope"}, x)
		case "mode":
			return label([]string{"mode"}, x)
		case "lang":
			for _, l := range i18n.Languages {
				if l.Code == x {
					return l.Name
				}
			}
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
		return x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s := fmt.Sprint(e)
			if field == "products" {
				s = label([]string{"feature"}, s)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		// features: feature -> level; fields: feature -> [field, ...]
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			val := x[k]
			var text string
			switch y := val.(type) {
			case string:
				text = label([]string{"level"}, y)
			case []any:
				names := make([]string, 0, len(y))
				for _, f := range y {
					names = append(names, label([]string{"field"}, fmt.Sprint(f)))
				}
				text = strings.Join(names, ", ")
			default:
				b, _ := json.Marshal(y)
				text = string(b)
			}
			parts = append(parts, label([]string{"feature"}, k)+": "+text)
		}
		return strings.Join(parts, "; ")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func union(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// revokeTenantMaster: a tenant's owner or administrator ends a running
// master-access session on their tenant, after confirming.
func (c *consoleRequest) revokeTenantMaster(tenant, id string) {
	back := consolePrefix + "t/" + url.PathEscape(tenant) + "/history"
	if !c.confirm(c.t("history.revoke_question", id), consolePrefix+"t/"+url.PathEscape(tenant)+"/master/"+url.PathEscape(id)+"/revoke", c.t("master.revoke")) {
		return
	}
	if status, ae := c.api("POST", "tenants/"+url.PathEscape(tenant)+"/master-access/"+url.PathEscape(id)+"/revoke", nil, nil); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, back+"?"+url.Values{"revoked": {id}}.Encode(), http.StatusSeeOther)
}

// tenantSettings is the owner's settings of their tenant: where notices go,
// the profile new members get, and whether to be e-mailed when support
// enters the tenant.
func (c *consoleRequest) tenantSettings(tenant string) {
	var t struct {
		access.Tenant
		OwnerEmail     string `json:"owner_email"`
		DefaultProfile string `json:"default_profile"`
		NotifyMaster   *bool  `json:"notify_master"`
	}
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(tenant), nil, &t); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	form := struct {
		Tenant, OwnerEmail, DefaultProfile string
		NotifyMaster                       bool
		Profiles                           []catalogueEntry
	}{tenant, t.OwnerEmail, t.DefaultProfile, t.NotifyMaster == nil || *t.NotifyMaster, c.catalogue().Profiles}
	var errs map[string]string
	status, flash := http.StatusOK, ""
	if c.r.Method == http.MethodPost {
		form.OwnerEmail = strings.TrimSpace(c.r.PostFormValue("owner_email"))
		form.DefaultProfile = c.r.PostFormValue("default_profile")
		form.NotifyMaster = c.r.PostFormValue("notify_master") == "on"
		code, ae := c.api("PATCH", "tenants/"+url.PathEscape(tenant)+"/settings", map[string]any{
			"owner_email": form.OwnerEmail, "default_profile": form.DefaultProfile, "notify_master": form.NotifyMaster}, nil)
		switch {
		case code == http.StatusOK:
			flash = c.t("settings.saved")
		case code == http.StatusBadRequest:
			field := ae.Field
			if field == "" {
				field = "owner_email"
			}
			errs, status = map[string]string{field: c.apiMessage(code, ae)}, code
		default:
			c.failed(code, ae)
			return
		}
	} else if !c.may("tenant.settings", tenant) {
		c.failed(http.StatusForbidden, apiError{Reason: "admin.not_allowed"})
		return
	}
	c.render("settings.html", "tenant", status, consolePage{Title: c.t("settings.title", tenant), Flash: flash, Errors: errs, Data: form})
}

// invitationAction resends or withdraws a member's invitation (withdrawing
// asks first).
func (c *consoleRequest) invitationAction(tenant, id, action string) {
	back := consolePrefix + "t/" + url.PathEscape(tenant) + "/members"
	if action == "withdraw" && !c.confirm(c.t("invitation.withdraw_question"), c.r.URL.Path, c.t("action.withdraw")) {
		return
	}
	if status, ae := c.api("POST", "tenants/"+url.PathEscape(tenant)+"/invitations/"+url.PathEscape(id)+"/"+action, nil, nil); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, back, http.StatusSeeOther)
}
