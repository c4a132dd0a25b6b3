package control

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/internal/i18n"
	"github.com/portero-gateway/portero/internal/limit"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn"
)

// The admin console under /.portero/admin/: server-rendered pages for the
// people who manage access. Every piece of data it shows and every change
// it makes goes through the management API (called in-process with the
// signed-in user's identity), so the policy authorises the console exactly
// as it authorises the API; the console also asks the policy which pages
// and buttons to show. Forms carry the session's CSRF token and are checked
// for same origin; destructive actions ask for confirmation first.
const consolePrefix = "/.portero/admin/"

//go:embed console
var consoleFS embed.FS

// consoleTemplates are the console's pages, one set per language: the
// same files, with t (a text of the language's catalogue) and the label
// functions bound to it.
var consoleTemplates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, l := range i18n.Languages {
		out[l.Code] = template.Must(template.New("").Funcs(consoleFuncs(l.Code)).ParseFS(consoleFS, "console/*.html"))
	}
	return out
}()

func consoleFuncs(lang string) template.FuncMap {
	label := func(kind, value string) string { return i18n.Or(lang, kind+"."+value, value) }
	return template.FuncMap{
		"join": strings.Join,
		"list": func(s ...string) []string { return s },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"timep": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"t": func(key string, args ...any) string { return i18n.T(lang, key, args...) },
		// label names a value the console knows (a status, a role, an
		// event): kind.value from the catalogue, else the value itself.
		"label": label,
		// labelOr names something the policy defines, by the catalogue or
		// else by the title the policy gives it.
		"labelOr": func(kind, id, title string) string {
			if title == "" {
				title = id
			}
			return i18n.Or(lang, kind+"."+id, title)
		},
		// products names the features a delegation grants.
		"products": func(ids []string) string {
			names := make([]string, len(ids))
			for i, id := range ids {
				names[i] = label("feature", id)
			}
			return strings.Join(names, ", ")
		},
		// object names what an access change changed ("member acme/leo"),
		// its kind in the user's language.
		"object": func(o string) string {
			for _, kind := range []string{"member invitation", "partner user", "member", "delegation", "tenant", "partner", "import"} {
				if rest, ok := strings.CutPrefix(o, kind+" "); ok {
					return i18n.T(lang, "object."+strings.ReplaceAll(kind, " ", "_")) + " " + rest
				}
			}
			return o
		},
		// fieldNames names a feature's fields.
		"fieldNames": func(ids []string) string {
			names := make([]string, len(ids))
			for i, id := range ids {
				names[i] = label("field", id)
			}
			return strings.Join(names, ", ")
		},
		// stage says how the policy evaluates one of its stages.
		"stage": func(s string) string {
			if why, ok := strings.CutPrefix(s, "evaluated per request: "); ok {
				return i18n.T(lang, "policy.stage_per_request", why)
			}
			return label("stage", s)
		},
	}
}

// consolePage is what every console template gets.
type consolePage struct {
	Title  string
	Lang   string
	Langs  []langLink
	User   string
	CSRF   string
	Nav    []navItem
	Errors map[string]string // field errors, by form field name
	Flash  string
	Data   any
}

// langLink is an entry of the language switch: the page it is on, in
// another language.
type langLink struct {
	Code, Name, Href string
	Current          bool
}

type navItem struct {
	Label, Href string
	Current     bool
}

// consoleRoutes registers the console's pages. Every page but the two
// assets needs a signed-in browser; a POST also passes the cross-site rule
// and the per-user write limit. Anything else under the prefix is a 404
// (after sign-in, so the console's paths are not probed anonymously).
func (p *Plane) consoleRoutes(mux *http.ServeMux) {
	cp := consolePrefix
	page := func(pattern string, fn func(c *consoleRequest)) {
		method, path, _ := strings.Cut(pattern, " ")
		if method != "" {
			method += " "
		}
		mux.HandleFunc(method+cp+path, p.console(fn))
	}
	mux.HandleFunc("GET "+cp+"console.js", p.consoleAsset)
	mux.HandleFunc("GET "+cp+"console.css", p.consoleAsset)
	page("GET {$}", (*consoleRequest).home)
	page("GET tenants", (*consoleRequest).tenants)
	page(" tenants/{tenant}/edit", func(c *consoleRequest) { c.editTenant(c.r.PathValue("tenant")) })
	page(" tenants/{tenant}/delete", func(c *consoleRequest) { c.deleteTenant(c.r.PathValue("tenant")) })
	page("GET tenants/{tenant}/password", func(c *consoleRequest) { c.resetPassword(c.r.PathValue("tenant")) })
	page("POST tenants/{tenant}/status", func(c *consoleRequest) { c.tenantStatus(c.r.PathValue("tenant")) })
	page("GET master", (*consoleRequest).masterSessions)
	page("POST master/{id}/revoke", func(c *consoleRequest) { c.revokeMaster(c.r.PathValue("id")) })
	page("GET policy", func(c *consoleRequest) { c.policyStatus(nil, nil, "") })
	page("POST policy/try", (*consoleRequest).tryRequest)
	page("GET t/{tenant}/members", func(c *consoleRequest) { c.members(c.r.PathValue("tenant")) })
	page(" t/{tenant}/members/new", func(c *consoleRequest) { c.memberForm(c.r.PathValue("tenant"), "", false) })
	page(" t/{tenant}/members/invite", func(c *consoleRequest) { c.memberForm(c.r.PathValue("tenant"), "", true) })
	page(" t/{tenant}/members/{user}/edit", func(c *consoleRequest) { c.memberForm(c.r.PathValue("tenant"), c.r.PathValue("user"), false) })
	page("POST t/{tenant}/invitations/{id}/{action}", func(c *consoleRequest) {
		if action := c.r.PathValue("action"); action == "resend" || action == "withdraw" {
			c.invitationAction(c.r.PathValue("tenant"), c.r.PathValue("id"), action)
			return
		}
		c.notFound()
	})
	page("POST t/{tenant}/members/{user}/status", func(c *consoleRequest) { c.memberStatus(c.r.PathValue("tenant"), c.r.PathValue("user")) })
	page("POST t/{tenant}/members/{user}/remove", func(c *consoleRequest) { c.removeMember(c.r.PathValue("tenant"), c.r.PathValue("user")) })
	page("GET t/{tenant}/partners", func(c *consoleRequest) { c.partners(c.r.PathValue("tenant"), inviteForm{}, nil, http.StatusOK) })
	page("POST t/{tenant}/partners/invite", func(c *consoleRequest) { c.invite(c.r.PathValue("tenant")) })
	page("POST t/{tenant}/delegations/{id}/{action}", func(c *consoleRequest) {
		tenant, action := c.r.PathValue("tenant"), c.r.PathValue("action")
		if action != "resend" && action != "withdraw" && action != "revoke" {
			c.notFound()
			return
		}
		c.delegationAction("tenants/"+url.PathEscape(tenant), c.r.PathValue("id"), action, cp+"t/"+url.PathEscape(tenant)+"/partners")
	})
	page("GET t/{tenant}/history", func(c *consoleRequest) { c.tenantHistory(c.r.PathValue("tenant")) })
	page("POST t/{tenant}/master/{id}/revoke", func(c *consoleRequest) { c.revokeTenantMaster(c.r.PathValue("tenant"), c.r.PathValue("id")) })
	page(" t/{tenant}/settings", func(c *consoleRequest) { c.tenantSettings(c.r.PathValue("tenant")) })
	page("GET partner", (*consoleRequest).partnerSide)
	page("POST partner/users", (*consoleRequest).partnerUserForm)
	page("POST partner/users/{user}/{action}", func(c *consoleRequest) { c.partnerUserAction(c.r.PathValue("user"), c.r.PathValue("action")) })
	page("POST partner/delegations/{id}/{action}", func(c *consoleRequest) {
		if action := c.r.PathValue("action"); action == "accept" || action == "reject" {
			c.partnerAnswer(c.r.PathValue("id"), action)
			return
		}
		c.notFound()
	})
	page(" ", (*consoleRequest).notFound)
}

// console wraps a console page: the console needs the store and browser
// sign-in; the page gets the signed-in user's request.
func (p *Plane) console(fn func(c *consoleRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Has("lang") {
			chooseLanguage(w, r)
			return
		}
		if p.store == nil || p.sessions == nil {
			deny.Write(w, r, false, deny.Denial{Status: http.StatusNotFound, Reason: "console.disabled", ID: deny.ID(r.Context())})
			return
		}
		st := p.browserSession(w, r)
		if st == nil {
			return
		}
		if r.Method == http.MethodPost && (!p.formChecks(w, r, st) || !p.rateLimit(w, r, limitManagementWrite, limit.UserKey(st.Identity.Subject), false)) {
			return
		}
		fn(&consoleRequest{p: p, w: w, r: r, st: st, lang: i18n.Of(r)})
	}
}

// chooseLanguage is the language switch: ?lang=es on any console page
// remembers the choice in a cookie (a year, on Portero's own paths, so the
// sign-in and sign-out pages speak it too) and shows the page again
// without the parameter. An unknown language is ignored.
func chooseLanguage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if lang := q.Get("lang"); i18n.Supported(lang) {
		http.SetCookie(w, &http.Cookie{Name: i18n.CookieName, Value: lang, Path: "/.portero/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	}
	q.Del("lang")
	target := r.URL.Path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (c *consoleRequest) notFound() {
	deny.Write(c.w, c.r, false, deny.Denial{Status: http.StatusNotFound, Reason: "console.unknown", ID: deny.ID(c.r.Context())})
}

func (p *Plane) consoleAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, consolePrefix)
	b, err := consoleFS.ReadFile("console/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := "text/css; charset=utf-8"
	if strings.HasSuffix(name, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// consoleRequest is one console request by a signed-in user.
type consoleRequest struct {
	p    *Plane
	w    http.ResponseWriter
	r    *http.Request
	st   *authn.Session
	lang string // i18n.English or i18n.Spanish
}

// t is key's text in the user's language.
func (c *consoleRequest) t(key string, args ...any) string { return i18n.T(c.lang, key, args...) }

// may asks the policy whether the user may do a management action; the
// console shows only what the answer allows (the API decides again).
func (c *consoleRequest) may(action, tenant string) bool {
	return c.mayDo(policy.Management{Action: action, Tenant: tenant})
}

// mayDo asks the policy about a whole management call (with a target or a
// grant, say).
func (c *consoleRequest) mayDo(m policy.Management) bool {
	d, err := c.p.decider.DecideManagement(c.r, routeConsole, c.st.Identity, m)
	return err == nil && d.Allow
}

// api calls the management API in-process as the signed-in user and
// decodes a JSON answer into out (when the call succeeded).
func (c *consoleRequest) api(method, path string, body any, out any) (int, apiError) {
	var rb io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rb = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.WithValue(c.r.Context(), identityKey{}, c.st.Identity), method, apiPrefix+strings.TrimPrefix(path, "/"), rb)
	req.Host = c.r.Host // the decision log names the host the console was reached on
	req.Header.Set("Content-Type", "application/json")
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	c.p.api.ServeHTTP(rec, req)
	var ae apiError
	if rec.status >= 300 {
		_ = json.Unmarshal(rec.body.Bytes(), &ae)
		return rec.status, ae
	}
	if out != nil {
		_ = json.Unmarshal(rec.body.Bytes(), out)
	}
	return rec.status, ae
}

// bufferedResponse collects an in-process API answer.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.status = code }

func (c *consoleRequest) nav(current string) []navItem {
	var items []navItem
	add := func(label, href string) {
		items = append(items, navItem{label, consolePrefix + href, href == current})
	}
	var me Me
	if c.api("GET", "me", nil, &me); len(me.Tenants) > 0 || me.Partner != "" {
		add(c.t("nav.your_access"), "")
	}
	if c.may("tenants.read", "") {
		add(c.t("nav.tenants"), "tenants")
	}
	if c.may("master.read", "") {
		add(c.t("nav.master"), "master")
	}
	if c.may("policy.read", "") {
		add(c.t("nav.policy"), "policy")
	}
	return items
}

func (c *consoleRequest) render(name, current string, status int, p consolePage) {
	p.User = c.st.Identity.Subject
	p.CSRF = c.p.sessions.CSRFToken(c.st)
	p.Nav = c.nav(current)
	p.Lang = c.lang
	for _, l := range i18n.Languages {
		q := c.r.URL.Query()
		q.Set("lang", l.Code)
		p.Langs = append(p.Langs, langLink{l.Code, l.Name, c.r.URL.Path + "?" + q.Encode(), l.Code == c.lang})
	}
	if c.r.Method != http.MethodGet {
		// After a form, the switch shows the section again rather than
		// repeating the post.
		for i := range p.Langs {
			p.Langs[i].Href = consolePrefix + current + "?lang=" + p.Langs[i].Code
		}
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	c.w.WriteHeader(status)
	if err := consoleTemplates[c.lang].ExecuteTemplate(c.w, name, p); err != nil {
		c.p.log.Error("console template", "page", name, "error", err.Error())
	}
}

// failed renders an API refusal or error as a page.
func (c *consoleRequest) failed(status int, ae apiError) {
	c.render("error.html", "", status, consolePage{Title: c.t("error.title"), Data: struct{ Status, Reason, Message string }{
		strconv.Itoa(status), ae.Reason, c.apiMessage(status, ae)}})
}

// home: someone with tenants or a partner organisation sees them; a
// system admin without any goes to the first section they may use.
func (c *consoleRequest) home() {
	var me Me
	c.api("GET", "me", nil, &me)
	if len(me.Tenants) > 0 || me.Partner != "" {
		c.myAccess()
		return
	}
	if nav := c.nav(""); len(nav) > 0 {
		http.Redirect(c.w, c.r, nav[0].Href, http.StatusSeeOther)
		return
	}
	c.myAccess()
}

const tenantsPerPage = 25

func (c *consoleRequest) tenants() {
	q := strings.TrimSpace(c.r.URL.Query().Get("q"))
	page, _ := strconv.Atoi(c.r.URL.Query().Get("page"))
	page = max(page, 1)
	var list access.TenantPage
	status, ae := c.api("GET", "tenants?"+url.Values{"q": {q}, "limit": {strconv.Itoa(tenantsPerPage)}, "offset": {strconv.Itoa((page - 1) * tenantsPerPage)}}.Encode(), nil, &list)
	if status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	pages := max((list.Total+tenantsPerPage-1)/tenantsPerPage, 1)
	link := func(p int) string {
		return consolePrefix + "tenants?" + url.Values{"q": {q}, "page": {strconv.Itoa(p)}}.Encode()
	}
	data := struct {
		Query               string
		List                access.TenantPage
		Page, Pages         int
		From, To            int
		Prev, Next          string
		CanWrite, CanMaster bool
		ResetURL            bool
		Master              struct {
			Default, Max string
			MinLen       int
		}
	}{Query: q, List: list, Page: page, Pages: pages, From: (page-1)*tenantsPerPage + 1, To: (page-1)*tenantsPerPage + len(list.Tenants),
		CanWrite: c.may("tenants.write", ""), CanMaster: c.p.master != nil && c.may("master.read", ""),
		ResetURL: c.p.cfg.Console.PasswordResetURL != "" && c.may("tenants.read", "")}
	if page > 1 {
		data.Prev = link(page - 1)
	}
	if page < pages {
		data.Next = link(page + 1)
	}
	if c.p.master != nil {
		data.Master.Default, data.Master.Max, data.Master.MinLen = c.p.master.cfg.DefaultDuration.String(), c.p.master.cfg.MaxDuration.String(), c.p.master.cfg.ReasonMinLength
	}
	flash := ""
	if deleted := c.r.URL.Query().Get("deleted"); deleted != "" {
		flash = c.t("tenants.deleted", deleted)
	}
	c.render("tenants.html", "tenants", http.StatusOK, consolePage{Title: c.t("nav.tenants"), Flash: flash, Data: data})
}

type tenantForm struct {
	ID, Name, Hostnames, Owner string
	MasterAccess               bool
}

func (c *consoleRequest) editTenant(id string) {
	var t access.Tenant
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(id), nil, &t); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	form := tenantForm{ID: t.ID, Name: t.Name, Hostnames: strings.Join(t.Hostnames, ", "), Owner: t.Owner, MasterAccess: t.MasterAccess}
	if c.r.Method == http.MethodPost {
		form.Name = strings.TrimSpace(c.r.PostFormValue("name"))
		form.Hostnames = c.r.PostFormValue("hostnames")
		form.Owner = strings.TrimSpace(c.r.PostFormValue("owner"))
		form.MasterAccess = c.r.PostFormValue("master_access") == "on"
		hosts := []string{}
		for h := range strings.SplitSeq(form.Hostnames, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		status, ae := c.api("PATCH", "tenants/"+url.PathEscape(id), map[string]any{
			"name": form.Name, "hostnames": hosts, "owner": form.Owner, "master_access": form.MasterAccess}, nil)
		switch {
		case status == http.StatusOK:
			http.Redirect(c.w, c.r, consolePrefix+"tenants?"+url.Values{"q": {id}}.Encode(), http.StatusSeeOther)
			return
		case status == http.StatusBadRequest:
			c.render("tenant_edit.html", "tenants", status, consolePage{Title: c.t("tenant.edit_title", id), Errors: map[string]string{ae.Field: c.apiMessage(status, ae)}, Data: form})
			return
		default:
			c.failed(status, ae)
			return
		}
	}
	c.render("tenant_edit.html", "tenants", http.StatusOK, consolePage{Title: c.t("tenant.edit_title", id), Data: form})
}

// confirm renders a confirmation page that re-posts the form with
// confirmed=1; it returns true when the user has already confirmed.
func (c *consoleRequest) confirm(question, action, button string) bool {
	if c.r.PostFormValue("confirmed") == "1" {
		return true
	}
	c.askConfirmation(question, action, button, "", nil)
	return false
}

// askConfirmation renders the confirmation page; with typed set, the user
// must type it (a tenant's id, say) to confirm.
func (c *consoleRequest) askConfirmation(question, action, button, typed string, errs map[string]string) {
	fields := map[string]string{}
	for k, v := range c.r.PostForm {
		if k != "csrf" && k != "confirmed" && k != "typed" && len(v) > 0 {
			fields[k] = v[0]
		}
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
	}
	c.render("confirm.html", "", status, consolePage{Title: c.t("confirm.title"), Errors: errs, Data: struct {
		Question, Action, Button, Back, Typed string
		Fields                                map[string]string
	}{question, action, button, c.r.Referer(), typed, fields}})
}

func (c *consoleRequest) tenantStatus(id string) {
	status := c.r.PostFormValue("status")
	var question, verb string
	switch status {
	case "suspended":
		question, verb = c.t("tenants.suspend_question", id), c.t("tenants.suspend")
	case "active":
		question, verb = c.t("tenants.reactivate_question", id), c.t("tenants.reactivate")
	default:
		c.failed(http.StatusBadRequest, apiError{Message: c.t("tenants.bad_status")})
		return
	}
	if !c.confirm(question, consolePrefix+"tenants/"+url.PathEscape(id)+"/status", verb) {
		return
	}
	if code, ae := c.api("PATCH", "tenants/"+url.PathEscape(id), map[string]any{"status": status}, nil); code != http.StatusOK {
		c.failed(code, ae)
		return
	}
	http.Redirect(c.w, c.r, consolePrefix+"tenants?"+url.Values{"q": {id}}.Encode(), http.StatusSeeOther)
}

func (c *consoleRequest) masterSessions() {
	q := c.r.URL.Query()
	filter := url.Values{"tenant": {q.Get("tenant")}, "admin": {q.Get("admin")}, "limit": {"200"}}
	var open []*access.MasterSession
	if status, ae := c.api("GET", "master-access?"+url.Values{"tenant": {q.Get("tenant")}, "admin": {q.Get("admin")}}.Encode(), nil, &open); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	var records []audit.Record
	if c.p.master != nil {
		if status, ae := c.api("GET", "master-access/audit?"+filter.Encode(), nil, &records); status != http.StatusOK {
			c.failed(status, ae)
			return
		}
	}
	c.render("master.html", "master", http.StatusOK, consolePage{Title: c.t("nav.master"), Data: struct {
		Tenant, Admin string
		Open          []*access.MasterSession
		Records       []audit.Record
		Now           time.Time
		CanRevoke     bool
		RevokeBase    string
	}{q.Get("tenant"), q.Get("admin"), open, records, c.p.now(), c.may("master.revoke", ""), consolePrefix + "master/"}})
}

func (c *consoleRequest) revokeMaster(id string) {
	if !c.confirm(c.t("master.revoke_question", id), consolePrefix+"master/"+url.PathEscape(id)+"/revoke", c.t("master.revoke")) {
		return
	}
	if status, ae := c.api("POST", "master-access/"+url.PathEscape(id)+"/revoke", nil, nil); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, consolePrefix+"master", http.StatusSeeOther)
}

// policyPage is the policy page: the status, and for those the policy
// lets try requests, the form with the last request tried and its answer.
type policyPage struct {
	PolicyStatus
	// Coverage is TestsCoverage as shown ("" until measured).
	Coverage string
	MayTry   bool
	Try      TryRequest
	Trial    *policy.Trial
	TryError string
}

func (c *consoleRequest) policyStatus(try *TryRequest, trial *policy.Trial, tryErr string) {
	page := policyPage{MayTry: c.may("policy.try", ""), Trial: trial, TryError: tryErr, Try: TryRequest{Method: "GET"}}
	if status, ae := c.api("GET", "policy", nil, &page.PolicyStatus); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	if try != nil {
		page.Try = *try
	}
	if cov := page.TestsCoverage; cov != nil {
		page.Coverage = strconv.FormatFloat(*cov, 'f', 1, 64) + " %"
	}
	c.render("policy.html", "policy", http.StatusOK, consolePage{Title: c.t("nav.policy"), Data: page})
}

// tryRequest: the "try a request" form posts here; the page shows the
// answer under the form (the API decides whether the user may).
func (c *consoleRequest) tryRequest() {
	f := c.r.PostForm
	try := TryRequest{Method: strings.ToUpper(strings.TrimSpace(f.Get("method"))), Target: strings.TrimSpace(f.Get("target")),
		User: strings.TrimSpace(f.Get("user")), Tenant: strings.TrimSpace(f.Get("tenant"))}
	var trial policy.Trial
	status, ae := c.api("POST", "policy/try", try, &trial)
	switch {
	case status == http.StatusOK:
		c.policyStatus(&try, &trial, "")
	case status == http.StatusBadRequest:
		c.policyStatus(&try, nil, ae.Field+": "+c.apiMessage(status, ae))
	default:
		c.failed(status, ae)
	}
}

// apiMessages turn the management API's English messages into the
// catalogue's keys, the submatches becoming the text's arguments. The API
// answers with a field and a message for people, and a reason for
// refusals; a message not listed here is shown as the API wrote it, after
// a sentence in the user's language (apierr.status.<code>).
var apiMessages = []struct {
	re  *regexp.Regexp
	key string
}{
	{regexp.MustCompile(`^unknown (\w+) "([^"]*)"; the policy defines: (.*)$`), "apierr.unknown_name"},
	{regexp.MustCompile(`^must be one of (.*)$`), "apierr.one_of"},
	{regexp.MustCompile(`^must be 1-63 lower-case letters, digits, - or _, starting with a letter or digit$`), "apierr.id_format"},
	{regexp.MustCompile(`^must be the user's subject \(OIDC sub\): 1-255 printable characters$`), "apierr.subject_format"},
	{regexp.MustCompile(`^each entry must be 1-63 lower-case letters, digits, - or _$`), "apierr.list_format"},
	{regexp.MustCompile(`^is required \(at most 200 characters\)$`), "apierr.name_required"},
	{regexp.MustCompile(`^is required$`), "apierr.required"},
	{regexp.MustCompile(`^each must be a lower-case host name such as (\S+)$`), "apierr.hostnames"},
	{regexp.MustCompile(`^feature names are lower-case words joined by _$`), "apierr.feature_names"},
	{regexp.MustCompile(`^per-field edit rights need the feature granted as edit$`), "apierr.fields_need_edit"},
	{regexp.MustCompile(`^field names are lower-case words joined by _$`), "apierr.field_names"},
	{regexp.MustCompile(`^must be a profile name such as .*$`), "apierr.profile_name"},
	{regexp.MustCompile(`^limited access needs at least one product$`), "apierr.products_needed"},
	{regexp.MustCompile(`^full access covers every product; leave products empty$`), "apierr.full_no_products"},
	{regexp.MustCompile(`^must be in the future$`), "apierr.future"},
	{regexp.MustCompile(`^no such tenant or partner$`), "apierr.no_such_partner"},
	{regexp.MustCompile(`^no such tenant$`), "apierr.no_such_tenant"},
	{regexp.MustCompile(`^no such partner$`), "apierr.no_such_partner"},
	{regexp.MustCompile(`^no such partner organisation; pick one from .*$`), "apierr.pick_partner"},
	{regexp.MustCompile(`^give the organisation's exact e-mail address, or at least 3 characters of the start of its name$`), "apierr.search_query"},
	{regexp.MustCompile(`^tenant (\S+) already has an open delegation to (\S+)$`), "apierr.open_delegation"},
	{regexp.MustCompile(`^cannot (\w+) a delegation that is (\w+)$`), "apierr.delegation_state"},
	{regexp.MustCompile(`^the invitation expired at (\S+)$`), "apierr.invitation_expired"},
	{regexp.MustCompile(`^member (\S+) of (\S+) changed meanwhile; read it again and retry$`), "apierr.member_changed"},
	{regexp.MustCompile(`^master-access session (\S+) has already ended$`), "apierr.master_ended"},
	{regexp.MustCompile(`^tenant "([^"]*)" exists$`), "apierr.tenant_exists"},
	{regexp.MustCompile(`^partner "([^"]*)" exists$`), "apierr.partner_exists"},
	{regexp.MustCompile(`^(?:tenant|member|delegation|partner|master-access session) .*: not found$`), "apierr.not_found"},
	{regexp.MustCompile(`^master access is not configured$`), "apierr.master_off"},
	{regexp.MustCompile(`^must be an e-mail address such as (\S+)$`), "apierr.email_format"},
	{regexp.MustCompile(`^must be at most 200 printable characters$`), "apierr.name_format"},
	{regexp.MustCompile(`^(\S+) already has a pending invitation to (\S+); resend or withdraw it$`), "apierr.invitation_pending"},
	{regexp.MustCompile(`^(\S+) has another pending invitation to (\S+)$`), "apierr.invitation_pending"},
	{regexp.MustCompile(`^cannot (\w+) an invitation that is (\w+)$`), "apierr.invitation_state"},
	{regexp.MustCompile(`^you cannot demote, deactivate or remove yourself; ask another admin$`), "apierr.self"},
}

// apiMessage is an API error in the user's language: the refusal's reason
// when the catalogue has it (reason.<reason>), else the message through
// apiMessages, else by status.
func (c *consoleRequest) apiMessage(status int, ae apiError) string {
	if ae.Reason != "" && i18n.Has(i18n.English, "reason."+ae.Reason) {
		return c.t("reason." + ae.Reason)
	}
	msg := strings.TrimSpace(ae.Message)
	for _, m := range apiMessages {
		if sub := m.re.FindStringSubmatch(msg); sub != nil {
			args := make([]any, 0, len(sub)-1)
			for _, s := range sub[1:] {
				args = append(args, s)
			}
			switch m.key {
			case "apierr.unknown_name":
				args[0] = c.t("kind." + sub[1])
			case "apierr.delegation_state", "apierr.invitation_state":
				if c.lang == i18n.English {
					break
				}
				status := "delegation_status."
				if m.key == "apierr.invitation_state" {
					status = "invitation_status."
				}
				args[0], args[1] = i18n.Or(c.lang, "action."+sub[1], sub[1]), i18n.Or(c.lang, status+sub[2], sub[2])
			}
			return c.t(m.key, args...)
		}
	}
	generic := c.t("apierr.status." + strconv.Itoa(status))
	if !i18n.Has(i18n.English, "apierr.status."+strconv.Itoa(status)) {
		generic = c.t("apierr.status.other", status)
	}
	switch {
	case msg == "":
		return generic
	case c.lang == i18n.English:
		return msg
	default:
		return generic + " (" + msg + ")"
	}
}

// deleteTenant asks for the tenant's id to be typed, then deletes it
// through the API (for system admins: the policy's tenants.write).
func (c *consoleRequest) deleteTenant(id string) {
	action := consolePrefix + "tenants/" + url.PathEscape(id) + "/delete"
	question := c.t("tenants.delete_question", id)
	if c.r.Method != http.MethodPost {
		if !c.may("tenants.write", id) {
			c.failed(http.StatusForbidden, apiError{Reason: "admin.not_allowed"})
			return
		}
		c.askConfirmation(question, action, c.t("tenants.delete"), id, nil)
		return
	}
	if strings.TrimSpace(c.r.PostFormValue("typed")) != id {
		c.askConfirmation(question, action, c.t("tenants.delete"), id, map[string]string{"typed": c.t("tenants.delete_mismatch", id)})
		return
	}
	if status, ae := c.api("DELETE", "tenants/"+url.PathEscape(id), nil, nil); status != http.StatusNoContent && status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	http.Redirect(c.w, c.r, consolePrefix+"tenants?"+url.Values{"deleted": {id}}.Encode(), http.StatusSeeOther)
}

// resetPassword gives a tenant owner's password-reset link at the IdP
// (oidc.password_reset_url): Portero keeps no passwords, so it can only
// send the owner there.
func (c *consoleRequest) resetPassword(id string) {
	base := c.p.cfg.Console.PasswordResetURL
	if base == "" {
		c.notFound()
		return
	}
	var t struct {
		access.Tenant
		OwnerEmail string `json:"owner_email"`
	}
	if status, ae := c.api("GET", "tenants/"+url.PathEscape(id), nil, &t); status != http.StatusOK {
		c.failed(status, ae)
		return
	}
	email := t.OwnerEmail
	link := strings.NewReplacer("{email}", url.QueryEscape(email), "{user}", url.QueryEscape(t.Owner)).Replace(base)
	c.render("password.html", "tenants", http.StatusOK, consolePage{Title: c.t("password.title", id), Data: struct {
		Tenant, Owner, Email, Link string
	}{id, t.Owner, email, link}})
}
