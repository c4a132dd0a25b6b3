package control

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/control/i18n"
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
		Members, Partners bool
	}
	var rows []row
	for _, t := range me.Tenants {
		rows = append(rows, row{t, c.may("members.read", t.ID), c.may("delegations.read", t.ID)})
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
	c.render("members.html", "tenant", http.StatusOK, consolePage{Title: c.t("members.title", tenant), Flash: flash, Data: struct {
		Tenant   string
		Members  []*access.Member
		CanWrite bool
		Manage   map[string]bool
	}{tenant, list.Members, canWrite, manage}})
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
	Roles        []string
	Catalogue    catalogue
}

func (c *consoleRequest) memberForm(tenant, user string) {
	f := memberForm{Tenant: tenant, User: user, New: user == "", Features: map[string]string{}, Fields: map[string]map[string]bool{},
		Rights: map[string]bool{}, Catalogue: c.catalogue(), FieldChoices: map[string][]string{}}
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
	if !f.New {
		title = c.t("member.edit_title", user, tenant)
	}
	if c.r.Method != http.MethodPost {
		c.render("member_form.html", "tenant", http.StatusOK, consolePage{Title: title, Data: f})
		return
	}
	form := c.r.PostForm
	if f.New {
		f.User = strings.TrimSpace(form.Get("user"))
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
	if f.User == "" {
		errs["user"] = c.t("member.user_required")
	}
	status := http.StatusBadRequest
	if len(errs) == 0 {
		var ae apiError
		status, ae = c.api("PUT", "tenants/"+url.PathEscape(tenant)+"/members/"+url.PathEscape(f.User), body, nil)
		field, known := memberRefusalFields[ae.Reason]
		switch {
		case status == http.StatusOK:
			http.Redirect(c.w, c.r, consolePrefix+"t/"+url.PathEscape(tenant)+"/members", http.StatusSeeOther)
			return
		case status == http.StatusBadRequest || status == http.StatusConflict:
			errs[ae.Field] = c.apiMessage(status, ae)
			if ae.Field == "" {
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
	Partner, Scope, Expires string
	Products                map[string]bool
	Wallet                  bool
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
	c.render("partners.html", "tenant", status, consolePage{Title: c.t("partners.title", tenant), Errors: errs, Data: struct {
		Tenant      string
		Delegations []*access.Delegation
		CanWrite    bool
		Form        inviteForm
		Catalogue   catalogue
	}{tenant, list.Delegations, c.may("delegations.write", tenant), form, c.catalogue()}})
}

func (c *consoleRequest) invite(tenant string) {
	form := inviteForm{Partner: strings.TrimSpace(c.r.PostFormValue("partner")), Scope: c.r.PostFormValue("scope"),
		Expires: strings.TrimSpace(c.r.PostFormValue("expires")), Products: map[string]bool{}, Wallet: c.r.PostFormValue("wallet") == "on"}
	body := map[string]any{"partner": form.Partner, "scope": form.Scope, "wallet": form.Wallet}
	products := []string{}
	for k := range c.r.PostForm {
		if p, ok := strings.CutPrefix(k, "product."); ok {
			products, form.Products[p] = append(products, p), true
		}
	}
	sort.Strings(products)
	body["products"] = products
	errs := map[string]string{}
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
// organisation and the tenants it manages.
func (c *consoleRequest) partnerSide() {
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
	c.render("partner.html", "partner", http.StatusOK, consolePage{Title: c.t("partner.title", me.Partner), Data: struct {
		Partner                string
		Invited, Managed, Past []*access.Delegation
		AppURL                 func(string) string
	}{me.Partner, invited, managed, past, c.p.tenantAppURL}})
}
