package control

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/internal/i18n"
	"github.com/portero-gateway/portero/internal/limit"
	"github.com/portero-gateway/portero/proxy/authn"
)

// Sign-in endpoints besides authn.LoginPath and authn.CallbackPath.
const (
	logoutPath   = "/.portero/logout"
	userinfoPath = "/.portero/userinfo"
)

// serveLogin starts a sign-in (rate limited per client address).
func (p *Plane) serveLogin(w http.ResponseWriter, r *http.Request) {
	if p.rateLimit(w, r, limitSignIn, limit.ClientKey(r), false) {
		p.startLogin(w, r, r.URL.Query().Get("rd"))
	}
}

// serveCallback finishes one (rate limited per client address).
func (p *Plane) serveCallback(w http.ResponseWriter, r *http.Request) {
	if p.rateLimit(w, r, limitCallback, limit.ClientKey(r), false) {
		p.finishLogin(w, r)
	}
}

func (p *Plane) loginError(w http.ResponseWriter, r *http.Request, status int, reason string) {
	p.authn.Failed("login")
	p.log.Info("sign-in refused", "decision_id", deny.ID(r.Context()), "reason", reason)
	deny.Write(w, r, false, deny.Denial{Status: status, Reason: reason, ID: deny.ID(r.Context())})
}

// startLogin sends the browser to the identity provider (authorization
// code flow with PKCE, state and nonce), after checking where it will come
// back to.
func (p *Plane) startLogin(w http.ResponseWriter, r *http.Request, rd string) {
	returnTo, ok := authn.SafeReturnTarget(rd, p.returnHosts)
	if !ok {
		p.loginError(w, r, http.StatusBadRequest, "login.bad_return_target")
		return
	}
	// Send the browser to the identity provider only while it answers:
	// otherwise it would land on a dead address, with nothing to say why.
	if !p.sessions.IdPReady() || p.sessions.IdPUnreachable(r.Context(), idpProbeTimeout) != nil {
		p.idpDownPage(w, r, returnTo)
		return
	}
	target, err := p.sessions.BeginLogin(w, returnTo)
	if err != nil {
		p.loginError(w, r, http.StatusInternalServerError, "login.error")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

// idpProbeTimeout bounds the look at the identity provider before a
// sign-in is sent there.
const idpProbeTimeout = 2 * time.Second

// idpDownPage tells the browser that sign-in cannot start because the
// identity provider cannot be reached, with a link to try again.
func (p *Plane) idpDownPage(w http.ResponseWriter, r *http.Request, returnTo string) {
	p.authn.Failed("login")
	p.log.Warn("sign-in not started: the identity provider cannot be reached", "issuer", p.cfg.OIDC.Issuer, "decision_id", deny.ID(r.Context()))
	w.Header().Set("Retry-After", "5")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		deny.Write(w, r, false, deny.Denial{Status: http.StatusServiceUnavailable, Reason: "auth.idp_unreachable", ID: deny.ID(r.Context())})
		return
	}
	retry := authn.LoginPath + "?" + url.Values{"rd": {returnTo}}.Encode()
	lang := i18n.Of(r)
	writePage(w, http.StatusServiceUnavailable, idpDownTemplate, struct {
		Retry, ID, Lang string
		T               func(string, ...any) string
	}{retry, deny.ID(r.Context()), lang, func(key string, args ...any) string { return i18n.T(lang, key, args...) }})
}

// The page speaks the user's language (i18n.Of: the console's choice, else
// Accept-Language).
var idpDownTemplate = template.Must(template.New("idp-down").Parse(`<!doctype html><html lang="{{.Lang}}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{call .T "idpdown.title"}} — Portero</title>` + pageStyle + `</head><body>
<h1>{{call .T "idpdown.heading"}}</h1>
<p id="idp-down">{{call .T "idpdown.text"}}</p>
<p><a href="{{.Retry}}" id="retry">{{call .T "idpdown.retry"}}</a></p>
<p class="hint">{{call .T "idpdown.reason"}} auth.idp_unreachable{{if .ID}} · {{call .T "idpdown.decision"}} {{.ID}}{{end}}</p>
</body></html>`))

// finishLogin is the redirect back from the identity provider: authn
// checks the transaction and starts the session; the browser goes back to
// where it was going.
func (p *Plane) finishLogin(w http.ResponseWriter, r *http.Request) {
	st, returnTo, le := p.sessions.FinishLogin(w, r)
	if le != nil {
		if le.Err != nil {
			p.log.Info("sign-in callback refused", "reason", le.Reason, "error", le.Err.Error())
		}
		p.loginError(w, r, le.Status, le.Reason)
		return
	}
	p.log.Info("signed in", "sub", st.Identity.Subject, "decision_id", deny.ID(r.Context()))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, returnTo, http.StatusFound)
}

var logoutPage = template.Must(template.New("logout").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{call .T "signout.title"}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1.2rem}label{display:block;margin:0 0 1rem}.hint{color:#666;font-size:.9rem}</style>
</head><body><h1>{{call .T "signout.question"}}</h1>
{{if .Subject}}<p>{{call .T "signout.signed_in_as"}} <strong>{{.Subject}}</strong>.</p>{{end}}
<form method="post" action="/.portero/logout">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .Subject}}<label><input type="checkbox" name="everywhere" value="1" id="portero-signout-everywhere"> {{if .Shared}}{{call .T "signout.everywhere"}}{{else}}{{call .T "signout.everywhere_here"}}{{end}}</label>{{end}}
<button type="submit" id="portero-signout" autofocus>{{call .T "signout.button"}}</button>
</form></body></html>
`))

// confirmLogout shows the sign-out confirmation page (GET); the form posts
// to logout.
func (p *Plane) confirmLogout(w http.ResponseWriter, r *http.Request) {
	st, _ := p.sessions.ForSignOut(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'") // no form-action: the POST redirects to the IdP
	w.Header().Set("X-Frame-Options", "DENY")
	lang := i18n.Of(r)
	data := struct {
		Subject, CSRF, Lang string
		Shared              bool
		T                   func(string, ...any) string
	}{Shared: p.sessions.SharedState(), Lang: lang, T: func(key string, args ...any) string { return i18n.T(lang, key, args...) }}
	if st != nil {
		data.Subject = st.Identity.Email
		if data.Subject == "" {
			data.Subject = st.Identity.Subject
		}
		data.CSRF = p.sessions.CSRFToken(st)
	}
	_ = logoutPage.Execute(w, data)
}

// logout ends the session (with "everywhere", every session of the
// user signed in until now, recorded in the audit trail) on every replica
// when an access store holds sign-outs, else here; then, where the IdP
// supports it, at the IdP; once the POST passes the cross-site rule
// (formChecks). When the sign-out cannot be recorded the cookie stays and
// the answer is 503: signing out again will try again.
func (p *Plane) logout(w http.ResponseWriter, r *http.Request) {
	st, err := p.sessions.ForSignOut(r)
	if !p.formChecks(w, r, st) {
		return
	}
	if st != nil {
		everywhere := r.PostFormValue("everywhere") == "1"
		if err == nil {
			err = p.sessions.Revoke(r.Context(), st)
		}
		if err == nil && everywhere {
			err = p.sessions.EndUserSessions(access.WithActor(r.Context(), st.Identity.Subject), st.Identity.Subject)
		}
		if err != nil {
			p.log.Error("sign-out not recorded", "sub", st.Identity.Subject, "error", err.Error(), "decision_id", deny.ID(r.Context()))
			w.Header().Set("Retry-After", "1")
			deny.Write(w, r, false, deny.Denial{Status: http.StatusServiceUnavailable, Reason: "logout.unavailable", ID: deny.ID(r.Context())})
			return
		}
		p.endMastersOfSession(r.Context(), st.Identity)
		p.log.Info("signed out", "sub", st.Identity.Subject, "everywhere", everywhere, "shared", p.sessions.SharedState())
	}
	p.sessions.Clear(w)
	w.Header().Set("Cache-Control", "no-store")
	target := p.sessions.LogoutTarget()
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// browserSession returns the signed-in browser session for a control page
// (master access, the console). Without one it answers itself and returns
// nil: a GET goes to sign-in and comes back, anything else is a 401.
func (p *Plane) browserSession(w http.ResponseWriter, r *http.Request) *authn.Session {
	st, err := p.sessions.CurrentOrErr(w, r)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		deny.Write(w, r, false, deny.Denial{Status: http.StatusServiceUnavailable, Reason: "auth.unavailable", ID: deny.ID(r.Context())})
		return nil
	}
	if st == nil {
		if r.Method == http.MethodGet {
			p.sessions.RedirectToLogin(w, r, r.Host)
		} else {
			deny.Write(w, r, false, deny.Denial{Status: http.StatusUnauthorized, Reason: "deny.unauthenticated", ID: deny.ID(r.Context())})
		}
	}
	return st
}

// formChecks applies the control plane's cross-site rule
// (crossSiteRefusal) to a browser form Portero serves (sign-out, master
// access, the console): from this origin, with the session's token in the
// "csrf" field when there is a session. It answers a refusal itself.
func (p *Plane) formChecks(w http.ResponseWriter, r *http.Request, st *authn.Session) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if reason := p.crossSiteRefusal(r, st, r.PostFormValue("csrf")); reason != "" {
		p.loginError(w, r, http.StatusForbidden, reason)
		return false
	}
	return true
}

// userinfo tells the browser's own scripts who is signed in.
func (p *Plane) userinfo(w http.ResponseWriter, r *http.Request) {
	st := p.sessions.Current(w, r)
	if st == nil {
		deny.Write(w, r, true, deny.Denial{Status: http.StatusUnauthorized, Reason: "auth.required", ID: deny.ID(r.Context())})
		return
	}
	id := st.Identity
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sub": id.Subject, "email": id.Email, "org": id.Org, "groups": id.Groups, "roles": id.Roles,
		"memberships": id.Memberships, "session_expires": st.Until().UTC(),
		"csrf":          p.sessions.CSRFToken(st), // for X-CSRF-Token on management API writes
		"tokens_expire": st.TokensExpire().UTC(),
	})
}
