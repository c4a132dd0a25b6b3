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
	"strconv"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/internal/deny"
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

var consoleTemplates = template.Must(template.New("").Funcs(template.FuncMap{
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
}).ParseFS(consoleFS, "console/*.html"))

// consolePage is what every console template gets.
type consolePage struct {
	Title  string
	User   string
	CSRF   string
	Nav    []navItem
	Errors map[string]string // field errors, by form field name
	Flash  string
	Data   any
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
	page("POST tenants/{tenant}/status", func(c *consoleRequest) { c.tenantStatus(c.r.PathValue("tenant")) })
	page("GET master", (*consoleRequest).masterSessions)
	page("POST master/{id}/revoke", func(c *consoleRequest) { c.revokeMaster(c.r.PathValue("id")) })
	page("GET policy", func(c *consoleRequest) { c.policyStatus(nil, nil, "") })
	page("POST policy/try", (*consoleRequest).tryRequest)
	page("GET t/{tenant}/members", func(c *consoleRequest) { c.members(c.r.PathValue("tenant")) })
	page(" t/{tenant}/members/new", func(c *consoleRequest) { c.memberForm(c.r.PathValue("tenant"), "") })
	page(" t/{tenant}/members/{user}/edit", func(c *consoleRequest) { c.memberForm(c.r.PathValue("tenant"), c.r.PathValue("user")) })
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
	page("GET partner", (*consoleRequest).partnerSide)
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
		fn(&consoleRequest{p: p, w: w, r: r, st: st})
	}
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
	p  *Plane
	w  http.ResponseWriter
	r  *http.Request
	st *authn.Session
}

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
		add("Your access", "")
	}
	if c.may("tenants.read", "") {
		add("Tenants", "tenants")
	}
	if c.may("master.read", "") {
		add("Master access", "master")
	}
	if c.may("policy.read", "") {
		add("Policy", "policy")
	}
	return items
}

func (c *consoleRequest) render(name, current string, status int, p consolePage) {
	p.User = c.st.Identity.Subject
	p.CSRF = c.p.sessions.CSRFToken(c.st)
	p.Nav = c.nav(current)
	h := c.w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	c.w.WriteHeader(status)
	if err := consoleTemplates.ExecuteTemplate(c.w, name, p); err != nil {
		c.p.log.Error("console template", "page", name, "error", err.Error())
	}
}

// failed renders an API refusal or error as a page.
func (c *consoleRequest) failed(status int, ae apiError) {
	msg := ae.Message
	if msg == "" {
		msg = ae.Reason
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	c.render("error.html", "", status, consolePage{Title: "Not allowed", Data: struct{ Status, Reason, Message string }{
		strconv.Itoa(status), ae.Reason, msg}})
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
		Master              struct {
			Default, Max string
			MinLen       int
		}
	}{Query: q, List: list, Page: page, Pages: pages, From: (page-1)*tenantsPerPage + 1, To: (page-1)*tenantsPerPage + len(list.Tenants),
		CanWrite: c.may("tenants.write", ""), CanMaster: c.p.master != nil && c.may("master.read", "")}
	if page > 1 {
		data.Prev = link(page - 1)
	}
	if page < pages {
		data.Next = link(page + 1)
	}
	if c.p.master != nil {
		data.Master.Default, data.Master.Max, data.Master.MinLen = c.p.master.cfg.DefaultDuration.String(), c.p.master.cfg.MaxDuration.String(), c.p.master.cfg.ReasonMinLength
	}
	c.render("tenants.html", "tenants", http.StatusOK, consolePage{Title: "Tenants", Data: data})
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
			c.render("tenant_edit.html", "tenants", status, consolePage{Title: "Edit " + id, Errors: map[string]string{ae.Field: ae.Message}, Data: form})
			return
		default:
			c.failed(status, ae)
			return
		}
	}
	c.render("tenant_edit.html", "tenants", http.StatusOK, consolePage{Title: "Edit " + id, Data: form})
}

// confirm renders a confirmation page that re-posts the form with
// confirmed=1; it returns true when the user has already confirmed.
func (c *consoleRequest) confirm(question, action, button string) bool {
	if c.r.PostFormValue("confirmed") == "1" {
		return true
	}
	fields := map[string]string{}
	for k, v := range c.r.PostForm {
		if k != "csrf" && k != "confirmed" && len(v) > 0 {
			fields[k] = v[0]
		}
	}
	c.render("confirm.html", "", http.StatusOK, consolePage{Title: "Confirm", Data: struct {
		Question, Action, Button, Back string
		Fields                         map[string]string
	}{question, action, button, c.r.Referer(), fields}})
	return false
}

func (c *consoleRequest) tenantStatus(id string) {
	status := c.r.PostFormValue("status")
	verb := map[string]string{"suspended": "Suspend", "active": "Reactivate"}[status]
	if verb == "" {
		c.failed(http.StatusBadRequest, apiError{Message: "status must be suspended or active"})
		return
	}
	question := verb + " tenant " + id + "?"
	if status == "suspended" {
		question += " Its members and partners are refused until it is reactivated."
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
	c.render("master.html", "master", http.StatusOK, consolePage{Title: "Master access", Data: struct {
		Tenant, Admin string
		Open          []*access.MasterSession
		Records       []audit.Record
		Now           time.Time
	}{q.Get("tenant"), q.Get("admin"), open, records, c.p.now()}})
}

func (c *consoleRequest) revokeMaster(id string) {
	if !c.confirm("Revoke master-access session "+id+"? The admin using it is refused on their next request.",
		consolePrefix+"master/"+url.PathEscape(id)+"/revoke", "Revoke") {
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
	c.render("policy.html", "policy", http.StatusOK, consolePage{Title: "Policy", Data: page})
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
		c.policyStatus(&try, nil, ae.Field+": "+ae.Message)
	default:
		c.failed(status, ae)
	}
}
