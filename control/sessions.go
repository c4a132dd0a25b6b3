package control

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn"
)

// serverSessions is the control plane's part of server-side session
// state: with an access store, sign-outs and used login states live in it
// (shared by every replica, surviving restarts) and are swept here; the
// identity provider's back-channel logouts are counted.
type serverSessions struct {
	state       *access.SessionState // nil without an access store
	backchannel *prometheus.CounterVec
}

// sessionSweepEvery is how often ended revocations and used tokens are
// deleted from the store. Nothing depends on it but the table's size.
const sessionSweepEvery = 5 * time.Minute

// backchannelResults are the values of portero_backchannel_logouts_total's
// result label.
var backchannelResults = []string{"ok", "invalid", "replayed", "unavailable"}

// initSessions gives browser sessions the store's state (when there are
// both) and registers the back-channel logout metric.
func (p *Plane) initSessions(store *access.Store, reg prometheus.Registerer) {
	p.sess.backchannel = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_backchannel_logouts_total",
		Help: "Back-channel logout requests from the identity provider by result (ok, invalid, replayed, unavailable).",
	}, []string{"result"})
	for _, r := range backchannelResults {
		p.sess.backchannel.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(p.sess.backchannel)
	}
	if store != nil && p.sessions != nil {
		p.sess.state = access.NewSessionState(store)
		p.sessions.UseStore(p.sess.state)
	}
}

// sessionRoutes registers the back-channel logout endpoint: no session,
// no CSRF token (the identity provider posts it, server to server); the
// logout token is its own proof.
func (p *Plane) sessionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+authn.BackchannelLogoutPath, p.backchannelLogout)
	mux.HandleFunc(authn.BackchannelLogoutPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "invalid_request", Message: "POST a logout_token"})
	})
}

// startSessions runs the sweep of ended revocations and used tokens.
func (p *Plane) startSessions(ctx context.Context) {
	if st := p.sess.state; st != nil {
		go st.RunSweeps(ctx, sessionSweepEvery)
	}
}

// backchannelError is the answer OpenID Connect Back-Channel Logout 1.0
// asks for on failure: 400 with an OAuth error.
type backchannelError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// backchannelLogout is POST /.portero/backchannel-logout from the identity
// provider: a form with logout_token. A verified token ends the sessions
// it names on every replica (authn.Sessions.BackchannelLogout); the answer
// is 200, else 400 (503 while the store or the provider's keys cannot be
// reached), never cached.
func (p *Plane) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	raw := ""
	if err := r.ParseForm(); err == nil {
		if vs := r.PostForm["logout_token"]; len(vs) == 1 {
			raw = vs[0]
		}
	}
	ctx := access.WithActor(r.Context(), "identity provider (back-channel logout)")
	out, le := p.sessions.BackchannelLogout(ctx, raw)
	if le != nil {
		p.sess.backchannel.WithLabelValues(le.Result).Inc()
		status := http.StatusBadRequest
		if le.Result == "unavailable" {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		p.log.Warn("back-channel logout refused", "result", le.Result, "reason", le.Error(), "decision_id", deny.ID(r.Context()))
		writeJSON(w, status, backchannelError{Error: "invalid_request", Description: le.Description})
		return
	}
	p.sess.backchannel.WithLabelValues("ok").Inc()
	p.log.Info("back-channel logout: sessions ended", "sub", out.Subject, "by_idp_session", out.SID != "",
		"shared", p.sessions.SharedState(), "decision_id", deny.ID(r.Context()))
	w.WriteHeader(http.StatusOK)
}

// apiEndUserSessions is POST /users/{user}/sessions/revoke: a system admin
// ends every browser session of a user signed in until now, on every
// replica (the policy decides: action sessions.revoke). It is recorded in
// the audit trail. A session started afterwards is not affected.
func (p *Plane) apiEndUserSessions(w http.ResponseWriter, r *http.Request) {
	if !p.authorizeAPI(w, r, policy.Management{Action: "sessions.revoke"}) {
		return
	}
	if p.sessions == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: "browser sign-in is not configured"})
		return
	}
	user := r.PathValue("user")
	before := p.now().UTC()
	if err := p.sessions.EndUserSessions(r.Context(), user); err != nil {
		p.writeStoreError(w, r, err)
		return
	}
	p.log.Info("sessions of a user ended", "user", user, "by", identityOf(r).Subject)
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "signed_in_before": before})
}
