package control

import (
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/i18n"
	"github.com/portero-gateway/portero/internal/limit"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn"
)

// Where the e-mailed invitation links lead, for a signed-in browser (a GET
// without a session goes to sign-in and comes back to the same link):
//
//	GET  /.portero/invitations/{token}                        what a member invitation offers, and a form
//	POST /.portero/invitations/{token}                        accept it: become the member, as your own sub
//	GET  /.portero/partner-invitations/{id}/{accept|reject}   what a partner invitation offers, and a form
//	POST /.portero/partner-invitations/{id}/{accept|reject}   answer it for your organisation
//
// A member invitation binds only an invitee whose identity provider
// verified (email_verified) the invited address; its token works once. A
// partner invitation is answered by a user of the invited organisation
// (the policy decides: delegations.respond); to anyone else it is as
// missing as one that does not exist. The forms carry the session's CSRF
// token and are checked for same origin, as the console's are.
const (
	invitationsPath        = "/.portero/invitations/"
	partnerInvitationsPath = "/.portero/partner-invitations/"
)

func (p *Plane) invitationRoutes(mux *http.ServeMux) {
	if p.store == nil {
		return
	}
	mux.HandleFunc("GET "+invitationsPath+"{token}", p.invitationPage(p.memberInvitationPage))
	mux.HandleFunc("POST "+invitationsPath+"{token}", p.invitationPage(p.acceptMemberInvitation))
	mux.HandleFunc("GET "+partnerInvitationsPath+"{id}/{action}", p.invitationPage(p.partnerInvitationPage))
	mux.HandleFunc("POST "+partnerInvitationsPath+"{id}/{action}", p.invitationPage(p.answerPartnerInvitation))
}

// invitationPage wraps an invitation endpoint: a signed-in browser
// (browserSession answers otherwise); a POST passes the cross-site rule
// and the per-user budget of management writes first.
func (p *Plane) invitationPage(fn func(http.ResponseWriter, *http.Request, *authn.Session, invitationText)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := p.browserSession(w, r)
		if st == nil {
			return
		}
		if r.Method == http.MethodPost && (!p.formChecks(w, r, st) || !p.rateLimit(w, r, limitManagementWrite, limit.UserKey(st.Identity.Subject), false)) {
			return
		}
		fn(w, r, st, invitationLang(r))
	}
}

// invitationView is what the invitation page shows.
type invitationView struct {
	T       invitationText
	Title   string
	Intro   string
	Rows    [][2]string
	Notice  string // why it cannot be answered (or what happened)
	Who     string // the signed-in account
	CSRF    string
	Action  string // the form's target; "" for no form
	Button  string
	Primary bool // the button does what the page offers (not a rejection)
	Next    string
}

func (p *Plane) showInvitation(w http.ResponseWriter, status int, st *authn.Session, v invitationView) {
	v.Who = st.Identity.Subject
	if st.Identity.Email != "" {
		v.Who = st.Identity.Email
	}
	if v.Action != "" {
		v.CSRF = p.sessions.CSRFToken(st)
	}
	writePage(w, status, invitationTemplate, v)
}

// emailVerified says whether the identity provider vouched for the
// identity's e-mail address (the ID token's email_verified claim).
func emailVerified(id *policy.Identity) bool {
	v, _ := id.Claims["email_verified"].(bool)
	return v
}

func (p *Plane) memberInvitationPage(w http.ResponseWriter, r *http.Request, st *authn.Session, t invitationText) {
	token := r.PathValue("token")
	inv, tenantName, err := p.store.InvitationByToken(r.Context(), token)
	if err != nil {
		p.invitationFailed(w, st, t, err)
		return
	}
	v := invitationView{T: t, Title: t.MemberTitle, Intro: strings.ReplaceAll(t.MemberIntro, "{tenant}", tenantName),
		Rows: [][2]string{{t.Tenant, tenantName}, {t.Email, inv.Email}, {t.Role, t.name("role", inv.Member.Role)}, {t.Profile, orDash(t.name("profile", inv.Member.Profile))},
			{t.InvitedBy, inv.InvitedBy}, {t.Expires, invitationTime(inv.ExpiresAt)}}}
	switch {
	case inv.Status != "pending":
		v.Notice = t.status(inv.Status)
	case !emailVerified(st.Identity):
		v.Notice = t.NotVerified
	case !strings.EqualFold(strings.TrimSpace(st.Identity.Email), inv.Email):
		v.Notice = strings.ReplaceAll(t.OtherEmail, "{email}", inv.Email)
	default:
		v.Action, v.Button, v.Primary = invitationsPath+token, t.Accept, true
	}
	status := http.StatusOK
	if v.Notice != "" {
		status = http.StatusConflict
	}
	p.showInvitation(w, status, st, v)
}

func (p *Plane) acceptMemberInvitation(w http.ResponseWriter, r *http.Request, st *authn.Session, t invitationText) {
	id := st.Identity
	// The audit record names who accepted (these pages are not the
	// management API, whose requests carry their caller).
	m, err := p.store.AcceptInvitation(access.WithActor(r.Context(), id.Subject), r.PathValue("token"),
		access.Invitee{Subject: id.Subject, Email: id.Email, EmailVerified: emailVerified(id)})
	if err != nil {
		p.invitationFailed(w, st, t, err)
		return
	}
	p.log.Info("member invitation accepted", "tenant", m.Tenant, "user", m.User)
	http.Redirect(w, r, p.tenantAppURL(m.Tenant), http.StatusSeeOther)
}

func (p *Plane) partnerInvitationPage(w http.ResponseWriter, r *http.Request, st *authn.Session, t invitationText) {
	d, ok := p.partnerInvitation(w, r, st, t)
	if !ok {
		return
	}
	action := r.PathValue("action")
	tenantName := d.Tenant
	if tn, err := p.store.Tenant(r.Context(), d.Tenant); err == nil {
		tenantName = tn.Name
	}
	products := t.AllProducts
	if d.Scope == "limited" {
		names := make([]string, len(d.Products))
		for i, p := range d.Products {
			names[i] = t.name("feature", p)
		}
		products = strings.Join(names, ", ")
	}
	wallet := t.No
	if d.Wallet {
		wallet = t.Yes
	}
	v := invitationView{T: t, Title: t.PartnerTitle, Intro: strings.ReplaceAll(t.PartnerIntro, "{tenant}", tenantName),
		Rows: [][2]string{{t.Tenant, tenantName}, {t.Scope, t.name("scope", d.Scope)}, {t.Products, products}, {t.Wallet, wallet}, {t.InvitedBy, d.InvitedBy}}}
	if d.InvitationExpires != nil {
		v.Rows = append(v.Rows, [2]string{t.Expires, invitationTime(*d.InvitationExpires)})
	}
	if d.Expires != nil {
		v.Rows = append(v.Rows, [2]string{t.Ends, invitationTime(*d.Expires)})
	}
	if d.Status != "invited" {
		v.Notice = t.status(d.Status)
	} else {
		v.Action, v.Button, v.Primary = access.PartnerInvitationPath(d.ID, action), t.Accept, action == "accept"
		if action == "reject" {
			v.Button = t.Reject
		}
	}
	status := http.StatusOK
	if v.Notice != "" {
		status = http.StatusConflict
	}
	p.showInvitation(w, status, st, v)
}

func (p *Plane) answerPartnerInvitation(w http.ResponseWriter, r *http.Request, st *authn.Session, t invitationText) {
	d, ok := p.partnerInvitation(w, r, st, t)
	if !ok {
		return
	}
	done, err := p.store.Transition(access.WithActor(r.Context(), st.Identity.Subject), d.ID, r.PathValue("action"))
	if err != nil {
		p.invitationFailed(w, st, t, err)
		return
	}
	notice := t.Accepted
	if done.Status == "rejected" {
		notice = t.Rejected
	}
	p.showInvitation(w, http.StatusOK, st, invitationView{T: t, Title: t.PartnerTitle, Notice: notice, Next: consolePrefix})
}

// partnerInvitation reads the delegation a partner link names and asks the
// policy whether the signed-in user answers for its organisation; a
// delegation they may not answer is as missing as one that does not exist.
func (p *Plane) partnerInvitation(w http.ResponseWriter, r *http.Request, st *authn.Session, t invitationText) (*access.Delegation, bool) {
	action := r.PathValue("action")
	d, err := p.store.Delegation(r.Context(), r.PathValue("id"))
	if err == nil && action != "accept" && action != "reject" {
		err = access.ErrNotFound
	}
	if err == nil {
		var dec policy.Decision
		dec, err = p.decider.DecideManagement(r, routeConsole, st.Identity, policy.Management{Action: "delegations.respond", Partner: d.Partner})
		if err == nil && !dec.Allow {
			err = access.ErrNotFound
		}
	}
	if err != nil {
		p.invitationFailed(w, st, t, err)
		return nil, false
	}
	return d, true
}

// invitationFailed explains why an invitation cannot be shown or answered.
func (p *Plane) invitationFailed(w http.ResponseWriter, st *authn.Session, t invitationText, err error) {
	v := invitationView{T: t, Title: t.Invitation}
	status := http.StatusConflict
	switch {
	case errors.Is(err, access.ErrNotFound):
		status, v.Notice = http.StatusNotFound, t.NotFound
	case errors.Is(err, access.ErrInvitationUsed):
		v.Notice = t.status("accepted")
	case errors.Is(err, access.ErrInvitationWithdrawn):
		v.Notice = t.status("withdrawn")
	case errors.Is(err, access.ErrInvitationExpired):
		v.Notice = t.status("expired")
	case errors.Is(err, access.ErrEmailNotVerified):
		v.Notice = t.NotVerified
	case errors.Is(err, access.ErrEmailMismatch):
		v.Notice = strings.ReplaceAll(t.OtherEmail, " ({email})", "")
	case errors.Is(err, access.ErrAlreadyMember):
		v.Notice = t.AlreadyMember
	case errors.Is(err, access.ErrConflict):
		v.Notice = t.Unavailable
	case errors.Is(err, access.ErrUnavailable):
		status, v.Notice = http.StatusServiceUnavailable, t.TryLater
	default:
		p.log.Error("invitation: store error", "error", err.Error())
		status, v.Notice = http.StatusInternalServerError, t.TryLater
	}
	p.showInvitation(w, status, st, v)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// invitationText is the invitation pages' wording in one language.
type invitationText struct {
	Lang, Invitation, MemberTitle, MemberIntro, PartnerTitle, PartnerIntro          string
	Tenant, Email, Role, Profile, InvitedBy, Expires, Ends, Scope, Products, Wallet string
	AllProducts, Yes, No, Accept, Reject, SignedInAs                                string
	NotVerified, OtherEmail, AlreadyMember, NotFound, Unavailable, TryLater         string
	Accepted, Rejected, Continue                                                    string
	Statuses                                                                        map[string]string
}

// name is how the page shows a name the policy defines (a role, profile,
// scope or feature): the catalogue's text in the page's language, else
// the name itself.
func (t invitationText) name(kind, id string) string {
	if id == "" {
		return ""
	}
	return i18n.Or(t.Lang, kind+"."+id, id)
}

// invitationTime shows a time the same way in both languages.
func invitationTime(at time.Time) string { return at.UTC().Format("2006-01-02 15:04 UTC") }

func (t invitationText) status(s string) string {
	if m, ok := t.Statuses[s]; ok {
		return m
	}
	return t.Unavailable
}

var invitationTexts = map[string]invitationText{
	"en": {
		Lang: "en", Invitation: "Invitation", MemberTitle: "You are invited",
		MemberIntro:  "You are invited to join {tenant}. Accept to become a member with the access below, under the account you are signed in with.",
		PartnerTitle: "Partner invitation",
		PartnerIntro: "{tenant} invites your organisation to manage its account with the access below.",
		Tenant:       "Tenant", Email: "E-mail", Role: "Role", Profile: "Profile", InvitedBy: "Invited by",
		Expires: "Answer by", Ends: "Access ends", Scope: "Access", Products: "Products", Wallet: "Wallet (billing, plan)",
		AllProducts: "all", Yes: "yes", No: "no", Accept: "Accept", Reject: "Reject", SignedInAs: "Signed in as",
		NotVerified:   "Your identity provider has not verified your e-mail address, so this invitation cannot be bound to your account. Verify it there, sign out and follow the link again.",
		OtherEmail:    "This invitation is for another e-mail address ({email}). Sign out and sign in with the invited account.",
		AlreadyMember: "You are already a member of this tenant.",
		NotFound:      "This invitation link is not valid, or it is not addressed to you.",
		Unavailable:   "This invitation can no longer be answered.",
		TryLater:      "The invitation cannot be answered right now; try again in a moment.",
		Accepted:      "Invitation accepted: your organisation can now manage this account.",
		Rejected:      "Invitation rejected.", Continue: "Continue",
		Statuses: map[string]string{
			"accepted":  "This invitation has already been used.",
			"withdrawn": "This invitation was withdrawn.",
			"expired":   "This invitation has expired; ask for a new one.",
			"rejected":  "This invitation was rejected.",
			"revoked":   "This invitation was withdrawn.",
		},
	},
	"es": {
		Lang: "es", Invitation: "Invitación", MemberTitle: "Te han invitado",
		MemberIntro:  "Te invitan a unirte a {tenant}. Acepta para ser miembro con el acceso indicado, con la cuenta con la que has iniciado sesión.",
		PartnerTitle: "Invitación de socio",
		PartnerIntro: "{tenant} invita a tu organización a gestionar su cuenta con el acceso indicado.",
		Tenant:       "Cliente", Email: "Correo electrónico", Role: "Rol", Profile: "Perfil", InvitedBy: "Invitado por",
		Expires: "Responder antes de", Ends: "El acceso termina", Scope: "Acceso", Products: "Productos", Wallet: "Cartera (facturación, plan)",
		AllProducts: "todos", Yes: "sí", No: "no", Accept: "Aceptar", Reject: "Rechazar", SignedInAs: "Sesión iniciada como",
		NotVerified:   "Tu proveedor de identidad no ha verificado tu correo electrónico, así que esta invitación no puede vincularse a tu cuenta. Verifícalo allí, cierra la sesión y vuelve a abrir el enlace.",
		OtherEmail:    "Esta invitación es para otra dirección de correo ({email}). Cierra la sesión e inicia sesión con la cuenta invitada.",
		AlreadyMember: "Ya eres miembro de este cliente.",
		NotFound:      "Este enlace de invitación no es válido o no está dirigido a ti.",
		Unavailable:   "Esta invitación ya no puede responderse.",
		TryLater:      "La invitación no puede responderse ahora; inténtalo de nuevo en un momento.",
		Accepted:      "Invitación aceptada: tu organización ya puede gestionar esta cuenta.",
		Rejected:      "Invitación rechazada.", Continue: "Continuar",
		Statuses: map[string]string{
			"accepted":  "Esta invitación ya se ha usado.",
			"withdrawn": "Esta invitación fue retirada.",
			"expired":   "Esta invitación ha caducado; pide una nueva.",
			"rejected":  "Esta invitación fue rechazada.",
			"revoked":   "Esta invitación fue retirada.",
		},
	},
}

// invitationLang picks the page's language: ?lang=, else the console's
// choice (its cookie), else the first of Accept-Language that is Spanish or English, else Spanish (the product's
// users are Spanish-speaking).
func invitationLang(r *http.Request) invitationText {
	if t, ok := invitationTexts[r.URL.Query().Get("lang")]; ok {
		return t
	}
	if c, err := r.Cookie(i18n.CookieName); err == nil { // the console's switch
		if t, ok := invitationTexts[c.Value]; ok {
			return t
		}
	}
	if h := r.Header.Get("Accept-Language"); h != "" {
		return invitationTexts[i18n.FromAcceptLanguage(h)]
	}
	return invitationTexts[i18n.Spanish]
}

var invitationTemplate = template.Must(template.New("invitation").Parse(`<!doctype html><html lang="{{.T.Lang}}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} — Portero</title>` + pageStyle + `</head><body>
<h1>{{.Title}}</h1>
{{if .Intro}}<p>{{.Intro}}</p>{{end}}
{{if .Rows}}<table id="invitation">{{range .Rows}}<tr><th scope="row">{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>{{end}}
{{if .Notice}}<p id="invitation-notice" role="status">{{.Notice}}</p>{{end}}
<p class="hint">{{.T.SignedInAs}} <strong id="invitation-user">{{.Who}}</strong>.</p>
{{if .Action}}<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" id="invitation-answer"{{if .Primary}} autofocus{{end}}>{{.Button}}</button></form>{{end}}
{{if .Next}}<p><a href="{{.Next}}" id="invitation-next">{{.T.Continue}}</a></p>{{end}}
</body></html>`))
