package control

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/internal/i18n"
	"github.com/portero-gateway/portero/internal/limit"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn"
)

// Master access endpoints, for a system admin signed in with a browser:
//
//	GET  /.portero/master-access      the start form and the admin's open sessions
//	POST /.portero/master-access      start (tenant, reason, ticket, mode, duration)
//	GET  /.portero/master-access/end  confirm ending
//	POST /.portero/master-access/end  end the session of this sign-in (or one of the admin's by id)
//
// Whether the admin may start is the policy's decision (management action
// "master.start", portero.master); requests made under a session are
// decided by the policy too. Every start, end, expiry, revocation and
// refused attempt is in the audit trail in the access store, committed in
// the same transaction as the session's change: no record, no session.
const (
	masterPath    = "/.portero/master-access"
	masterEndPath = "/.portero/master-access/end"
)

// masterAccess holds what the master-access endpoints need; nil on the
// gateway when master access is not configured.
type masterAccess struct {
	cfg config.Master
	// audit is the trail's JSON lines export, mirrored from the store by
	// its commit hook (cmd/portero); the endpoints do not write to it.
	audit  *audit.Log
	notify *notifier
}

// masterRoutes registers the master-access endpoints. Each needs master
// access configured and a signed-in browser.
func (p *Plane) masterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+masterPath, p.masterSession(func(w http.ResponseWriter, r *http.Request, st *authn.Session) {
		p.masterPage(w, r, st, masterForm{Mode: "full", Duration: p.master.cfg.DefaultDuration.String(), Tenant: r.URL.Query().Get("tenant")}, http.StatusOK)
	}))
	mux.HandleFunc("POST "+masterPath, p.masterSession(func(w http.ResponseWriter, r *http.Request, st *authn.Session) {
		// A cross-site or token-less attempt is refused and recorded (within
		// the refusal budget); attempts are limited per admin before anything
		// is decided.
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if reason := p.crossSiteRefusal(r, st, r.PostFormValue("csrf")); reason != "" {
			p.recordRefusal(r, audit.Record{Admin: st.Identity.Subject, Tenant: clip(r.PostFormValue("tenant"), 100), Detail: reason})
			p.loginError(w, r, http.StatusForbidden, reason)
			return
		}
		if p.rateLimit(w, r, limitMasterAccess, limit.UserKey(st.Identity.Subject), false) {
			p.startMaster(w, r, st)
		}
	}))
	mux.HandleFunc("GET "+masterEndPath, p.masterSession(p.masterEndPage))
	mux.HandleFunc("POST "+masterEndPath, p.masterSession(func(w http.ResponseWriter, r *http.Request, st *authn.Session) {
		if p.formChecks(w, r, st) {
			p.endMaster(w, r, st)
		}
	}))
	wrongMethod := p.masterSession(func(w http.ResponseWriter, r *http.Request, _ *authn.Session) {
		w.Header().Set("Allow", "GET, POST")
		deny.Write(w, r, false, deny.Denial{Status: http.StatusMethodNotAllowed, Reason: "master.method", ID: deny.ID(r.Context())})
	})
	mux.HandleFunc(masterPath, wrongMethod)
	mux.HandleFunc(masterEndPath, wrongMethod)
}

// masterSession wraps a master-access endpoint: 404 unless master access is
// configured, and a signed-in browser (browserSession answers otherwise).
func (p *Plane) masterSession(fn func(http.ResponseWriter, *http.Request, *authn.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p.master == nil {
			deny.Write(w, r, false, deny.Denial{Status: http.StatusNotFound, Reason: "master.disabled", ID: deny.ID(r.Context())})
			return
		}
		if st := p.browserSession(w, r); st != nil {
			fn(w, r, st)
		}
	}
}

type masterForm struct {
	Tenant, Reason, Ticket, Mode, Duration string
	Errors                                 map[string]string
}

// parse reads and checks the form; it fills f.Errors per field.
func (f *masterForm) parse(r *http.Request, cfg config.Master) (time.Duration, bool) {
	lang := i18n.Of(r)
	f.Tenant = strings.TrimSpace(r.PostFormValue("tenant"))
	f.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	f.Ticket = strings.TrimSpace(r.PostFormValue("ticket"))
	f.Mode = r.PostFormValue("mode")
	f.Duration = strings.TrimSpace(r.PostFormValue("duration"))
	f.Errors = map[string]string{}
	if f.Tenant == "" {
		f.Errors["tenant"] = i18n.T(lang, "masterpage.err_tenant")
	}
	if n := utf8.RuneCountInString(f.Reason); n < cfg.ReasonMinLength {
		f.Errors["reason"] = i18n.T(lang, "masterpage.err_reason", cfg.ReasonMinLength)
	}
	if f.Mode != "full" && f.Mode != "read_only" {
		f.Errors["mode"] = i18n.T(lang, "masterpage.err_mode")
	}
	d := cfg.DefaultDuration
	if f.Duration != "" {
		var err error
		if d, err = time.ParseDuration(f.Duration); err != nil || d <= 0 {
			f.Errors["duration"] = i18n.T(lang, "masterpage.err_duration")
		}
	}
	if d > cfg.MaxDuration {
		f.Errors["duration"] = i18n.T(lang, "masterpage.err_duration_max", cfg.MaxDuration.String())
	}
	return d, len(f.Errors) == 0
}

func (p *Plane) startMaster(w http.ResponseWriter, r *http.Request, st *authn.Session) {
	var f masterForm
	dur, ok := f.parse(r, p.master.cfg)
	if !ok {
		p.masterPage(w, r, st, f, http.StatusBadRequest)
		return
	}
	admin := st.Identity.Subject
	refuse := func(status int, detail string) {
		if err := p.recordRefusal(r, audit.Record{Admin: admin, Tenant: f.Tenant, Reason: f.Reason, Ticket: f.Ticket, Mode: f.Mode, Detail: detail}); err != nil {
			status, detail = http.StatusServiceUnavailable, "audit.unavailable"
		}
		deny.Write(w, r, false, deny.Denial{Status: status, Reason: detail, ID: deny.ID(r.Context())})
	}
	// The policy decides, with the tenant's facts.
	d, err := p.decider.DecideManagement(r, routeMaster, st.Identity, policy.Management{Action: "master.start", Tenant: f.Tenant})
	if err != nil {
		refuse(http.StatusServiceUnavailable, "access.unavailable")
		return
	}
	if !d.Allow {
		refuse(http.StatusForbidden, d.Reason)
		return
	}
	now := p.now()
	ms, err := p.store.StartMaster(r.Context(), access.MasterSession{Admin: admin, Session: st.Identity.Session, Tenant: f.Tenant,
		Reason: f.Reason, Ticket: f.Ticket, Mode: f.Mode, StartedAt: now, ExpiresAt: now.Add(dur)})
	var fe *access.FieldError
	switch {
	case errors.As(err, &fe):
		f.Errors[fe.Field] = fe.Msg
		p.masterPage(w, r, st, f, http.StatusBadRequest)
		return
	case errors.Is(err, access.ErrConflict):
		refuse(http.StatusConflict, "master.already_active")
		return
	case err != nil:
		// The session and its record are one transaction: neither exists.
		p.log.Error("master access start failed", "admin", admin, "tenant", f.Tenant, "error", err.Error())
		refuse(http.StatusServiceUnavailable, "access.unavailable")
		return
	}
	p.masterEvent(audit.EventStart, ms, "")
	p.log.Info("master access started", "id", ms.ID, "admin", admin, "tenant", ms.Tenant, "mode", ms.Mode, "expires", ms.ExpiresAt)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.tenantAppURL(ms.Tenant), http.StatusSeeOther)
}

// tenantAppURL is where a tenant's app is reached through this gateway.
func (p *Plane) tenantAppURL(tenant string) string {
	t := p.cfg.Tenant
	switch {
	case t.Path != "":
		return strings.Replace(t.Path, "{tenant}", url.PathEscape(tenant), 1)
	case t.Host != "":
		scheme := "https"
		if cb, err := url.Parse(p.cfg.OIDC.RedirectURL); err == nil && cb.Scheme == "http" {
			scheme = "http"
		}
		return scheme + "://" + strings.Replace(t.Host, "{tenant}", tenant, 1) + "/"
	}
	return "/"
}

// recordRefusal writes a refused attempt to the audit trail, counts and
// logs it. Refusals share one budget (limits.audited_refusals), so no one
// can flood the trail; beyond it they are logged and counted only. An
// error means the trail could not be written.
func (p *Plane) recordRefusal(r *http.Request, rec audit.Record) error {
	rec.Event = audit.EventRefuse
	p.metrics.masterEvents.WithLabelValues(audit.EventRefuse).Inc()
	p.log.Warn("master access refused", "admin", rec.Admin, "tenant", rec.Tenant, "reason", rec.Detail, "decision_id", deny.ID(r.Context()))
	if !p.limits.auditedRefusals.AllowN(p.now(), 1) {
		p.metrics.auditSuppress.Inc()
		p.log.Warn("master access refusal not written to the audit trail: over limits.audited_refusals", "admin", rec.Admin, "tenant", rec.Tenant, "reason", rec.Detail)
		return nil
	}
	if _, err := p.store.Record(context.WithoutCancel(r.Context()), rec); err != nil {
		p.log.Error("audit trail write failed", "event", rec.Event, "error", err.Error())
		return err
	}
	return nil
}

// clip shortens untrusted text to at most n bytes of valid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// endMaster ends the master-access session of the caller's sign-in
// session, or the one named by id when it is the caller's: never sessions
// started from the admin's other sign-ins.
func (p *Plane) endMaster(w http.ResponseWriter, r *http.Request, st *authn.Session) {
	admin := st.Identity.Subject
	open, err := p.store.MasterSessions(r.Context(), true, admin, "", 0)
	if err != nil {
		p.log.Error("master access: could not list sessions to end", "admin", admin, "error", err.Error())
		deny.Write(w, r, false, deny.Denial{Status: http.StatusServiceUnavailable, Reason: "access.unavailable", ID: deny.ID(r.Context())})
		return
	}
	id := r.PostFormValue("id")
	for _, ms := range open {
		if (id != "" && ms.ID != id) || (id == "" && ms.Session != st.Identity.Session) {
			continue
		}
		if err := p.finishMaster(r.Context(), ms, "ended", admin); err != nil {
			deny.Write(w, r, false, deny.Denial{Status: http.StatusServiceUnavailable, Reason: "access.unavailable", ID: deny.ID(r.Context())})
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.master.cfg.AdminURL, http.StatusSeeOther)
}

// finishMaster ends a session in the store, with its audit record in the
// same transaction: reason ended, logout, revoked or expired; by is who
// ended it.
func (p *Plane) finishMaster(ctx context.Context, ms *access.MasterSession, reason, by string) error {
	ended, err := p.store.EndMaster(ctx, ms.ID, reason, by)
	if errors.Is(err, access.ErrConflict) {
		return nil // ended meanwhile, and recorded by whoever ended it
	}
	if err != nil {
		p.log.Error("master access: could not end a session", "id", ms.ID, "reason", reason, "error", err.Error())
		return err
	}
	p.masterEvent(map[string]string{"ended": audit.EventEnd, "logout": audit.EventEnd, "revoked": audit.EventRevoke, "expired": audit.EventExpire}[reason], ended, by)
	p.log.Info("master access ended", "id", ms.ID, "admin", ms.Admin, "tenant", ms.Tenant, "reason", reason, "by", by)
	return nil
}

// masterEvent counts a committed (and recorded) start or end and queues
// its notification.
func (p *Plane) masterEvent(event string, ms *access.MasterSession, by string) {
	exp := ms.ExpiresAt
	at := ms.StartedAt
	if ms.EndedAt != nil {
		at = *ms.EndedAt
	}
	p.metrics.masterEvents.WithLabelValues(event).Inc()
	p.master.notify.send(ms.Tenant, audit.Record{Time: at, Event: event, ID: ms.ID, Admin: ms.Admin, Tenant: ms.Tenant,
		Reason: ms.Reason, Ticket: ms.Ticket, Mode: ms.Mode, Expires: &exp, By: by})
	p.refreshMasterGauge(context.Background())
}

// endMastersOfSession ends the admin's sessions bound to a sign-in session
// that is signing out.
func (p *Plane) endMastersOfSession(ctx context.Context, id *policy.Identity) {
	if p.master == nil || id == nil {
		return
	}
	open, err := p.store.MasterSessions(ctx, true, id.Subject, "", 0)
	if err != nil {
		p.log.Error("master access: could not list sessions at sign-out", "error", err.Error())
		return
	}
	for _, ms := range open {
		if ms.Session == id.Session {
			if err := p.finishMaster(ctx, ms, "logout", id.Subject); err != nil {
				p.log.Error("master access: could not end a session at sign-out", "id", ms.ID, "error", err.Error())
			}
		}
	}
}

// sweepMasters ends (and records) sessions whose time is up. Requests are
// refused at expiry whether or not this has run: the facts only carry
// unexpired sessions and cached facts end at the expiry.
func (p *Plane) sweepMasters(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.sweepExpiredMasters(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Plane) sweepExpiredMasters(ctx context.Context) {
	expired, err := p.store.ExpiredMasters(ctx, p.now())
	if err != nil && ctx.Err() == nil {
		p.log.Error("master access: expiry sweep failed", "error", err.Error())
	}
	for _, ms := range expired {
		if err := p.finishMaster(ctx, ms, "expired", ""); err != nil {
			p.log.Error("master access: could not record an expiry", "id", ms.ID, "error", err.Error())
		}
	}
	p.refreshMasterGauge(ctx)
}

func (p *Plane) refreshMasterGauge(ctx context.Context) {
	open, err := p.store.MasterSessions(ctx, true, "", "", 0)
	if err != nil {
		return
	}
	n, oldest := 0, time.Time{}
	for _, ms := range open {
		if ms.Active(p.now()) {
			n++
		}
		if oldest.IsZero() || ms.StartedAt.Before(oldest) {
			oldest = ms.StartedAt
		}
	}
	p.metrics.masterActive.Set(float64(n))
	// A session open past master_access.max_duration means its end was
	// never recorded (the sweep fails): the alert compares the two.
	if oldest.IsZero() {
		p.metrics.masterOldest.Set(0)
	} else {
		p.metrics.masterOldest.Set(float64(oldest.UnixNano()) / 1e9)
	}
}

func (p *Plane) masterPage(w http.ResponseWriter, r *http.Request, st *authn.Session, f masterForm, status int) {
	open, _ := p.store.MasterSessions(r.Context(), true, st.Identity.Subject, "", 0)
	data := struct {
		Form     masterForm
		CSRF     string
		Admin    string
		Max      string
		MinLen   int
		Open     []*access.MasterSession
		EndPath  string
		Now      time.Time
		TenantOf func(string) string
		Lang     string
		T        func(string, ...any) string
	}{f, p.sessions.CSRFToken(st), st.Identity.Subject, p.master.cfg.MaxDuration.String(), p.master.cfg.ReasonMinLength,
		open, masterEndPath, p.now(), p.tenantAppURL, i18n.Of(r), translator(i18n.Of(r))}
	writePage(w, status, masterStartPage, data)
}

func (p *Plane) masterEndPage(w http.ResponseWriter, r *http.Request, st *authn.Session) {
	open, _ := p.store.MasterSessions(r.Context(), true, st.Identity.Subject, "", 0)
	lang := i18n.Of(r)
	writePage(w, http.StatusOK, masterEndTemplate, struct {
		CSRF string
		Open []*access.MasterSession
		Lang string
		T    func(string, ...any) string
	}{p.sessions.CSRFToken(st), open, lang, translator(lang)})
}

// translator is i18n.T in lang, for a page's template ({{call .T "key"}}).
func translator(lang string) func(string, ...any) string {
	return func(key string, args ...any) string { return i18n.T(lang, key, args...) }
}

func writePage(w http.ResponseWriter, status int, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = t.Execute(w, data)
}

const pageStyle = `<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}input,select,textarea{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
.err{color:#a00;margin:.2rem 0}button{font:inherit;padding:.5rem 1.2rem;margin-top:1rem}table{border-collapse:collapse;width:100%;margin-top:1rem}
td,th{border-top:1px solid #ddd;padding:.3rem .5rem;text-align:left}.hint{color:#555;font-size:.9rem}</style>`

var masterStartPage = template.Must(template.New("master").Parse(`<!doctype html><html lang="{{.Lang}}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{call .T "masterpage.title"}}</title>` + pageStyle + `</head><body>
<h1>{{call .T "masterpage.h1"}}</h1>
<p>{{call .T "masterpage.intro"}} <strong>{{.Admin}}</strong>. {{call .T "masterpage.audited"}}</p>
{{if .Open}}<h2>{{call .T "masterpage.open"}}</h2><table id="open-sessions"><tr><th>{{call .T "masterpage.tenant"}}</th><th>{{call .T "masterpage.mode"}}</th><th>{{call .T "masterpage.until"}}</th><th></th></tr>
{{range .Open}}<tr><td><a href="{{call $.TenantOf .Tenant}}">{{.Tenant}}</a></td><td>{{.Mode}}</td><td>{{.ExpiresAt.Format "15:04 MST"}}</td>
<td><form method="post" action="{{$.EndPath}}"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="id" value="{{.ID}}"><button type="submit">{{call $.T "masterpage.end"}}</button></form></td></tr>{{end}}</table>{{end}}
<h2>{{call .T "masterpage.start"}}</h2>
<form method="post" action="/.portero/master-access" id="master-form" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="tenant">{{call .T "masterpage.tenant"}}</label><input id="tenant" name="tenant" value="{{.Form.Tenant}}" required aria-describedby="tenant-err">
{{with index .Form.Errors "tenant"}}<p class="err" id="tenant-err">{{.}}</p>{{end}}
<label for="reason">{{call .T "masterpage.reason"}}</label><textarea id="reason" name="reason" rows="3" required minlength="{{.MinLen}}" aria-describedby="reason-err reason-hint">{{.Form.Reason}}</textarea>
<p class="hint" id="reason-hint">{{call .T "masterpage.reason_hint" .MinLen}}</p>
{{with index .Form.Errors "reason"}}<p class="err" id="reason-err">{{.}}</p>{{end}}
<label for="ticket">{{call .T "masterpage.ticket"}}</label><input id="ticket" name="ticket" value="{{.Form.Ticket}}">
{{with index .Form.Errors "ticket"}}<p class="err">{{.}}</p>{{end}}
<label for="mode">{{call .T "masterpage.mode"}}</label><select id="mode" name="mode"><option value="full"{{if eq .Form.Mode "full"}} selected{{end}}>{{call .T "masterpage.mode_full"}}</option>
<option value="read_only"{{if eq .Form.Mode "read_only"}} selected{{end}}>{{call .T "masterpage.mode_read_only"}}</option></select>
{{with index .Form.Errors "mode"}}<p class="err">{{.}}</p>{{end}}
<label for="duration">{{call .T "masterpage.duration"}}</label><input id="duration" name="duration" value="{{.Form.Duration}}" aria-describedby="duration-hint">
<p class="hint" id="duration-hint">{{call .T "masterpage.duration_hint" .Max}}</p>
{{with index .Form.Errors "duration"}}<p class="err" id="duration-err">{{.}}</p>{{end}}
<button type="submit" id="master-start">{{call .T "masterpage.enter"}}</button>
</form></body></html>`))

var masterEndTemplate = template.Must(template.New("master-end").Parse(`<!doctype html><html lang="{{.Lang}}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{call .T "masterpage.end_title"}}</title>` + pageStyle + `</head><body>
<h1>{{call .T "masterpage.end_question"}}</h1>
{{if .Open}}<ul>{{range .Open}}<li>{{.Tenant}} ({{.Mode}}), {{call $.T "masterpage.until_time" (.ExpiresAt.Format "15:04 MST")}}</li>{{end}}</ul>
<form method="post" action="/.portero/master-access/end"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" id="master-end" autofocus>{{call .T "masterpage.return"}}</button></form>
{{else}}<p id="no-master">{{call .T "masterpage.none_open"}}</p>{{end}}
</body></html>`))
