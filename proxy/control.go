package proxy

import (
	"errors"
	"net/http"

	"github.com/portero-gateway/portero/policy"
)

// The control plane's shared pieces: the one input builder and decision for
// management calls (the management API, the console, master access), the
// one cross-site (CSRF) rule of every state-changing control endpoint, and
// the state they share (rate limiters).

// controlPlane is the management API's handler and the control endpoints'
// shared state. newAPI builds it once per gateway (New keeps it as g.api).
type controlPlane struct {
	mux         http.Handler
	limits      *controlLimits
	crossOrigin *http.CrossOriginProtection
}

func (c *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// control returns the gateway's control-plane state.
func (g *Gateway) control() *controlPlane { return g.api }

// Routes of management decisions in the policy input and the decision log.
const (
	routeAPI     = "portero-api"
	routeConsole = "portero-console"
	routeMaster  = "portero-master-access"
)

// managementInput is the one policy input of a management decision: who
// the caller is, the caller's own facts (its partner organisation; its
// access in the tenant the call names) and what it wants to do. It reads
// nothing about the records the call is about, so it can come first.
func (g *Gateway) managementInput(r *http.Request, route string, id *policy.Identity, m *policy.Management) (*policy.Input, error) {
	if g.store == nil || id == nil {
		return nil, errors.New("management decisions need the access store and a signed-in caller")
	}
	partner, err := g.store.PartnerOf(r.Context(), id.Subject)
	if err != nil {
		return nil, err
	}
	m.UserPartner = partner
	// The request path's one input builder, with the management call in
	// place of a tenant from the host or path.
	host, _ := normalizeHost(r.Host)
	in := g.requestInput(r, policy.Route{Name: route, API: route == routeAPI}, id, host, nil, g.now())
	in.Tenant = nil
	if m.Tenant != "" {
		in.Tenant = &policy.Tenant{ID: m.Tenant}
	}
	in.Management = m
	return in, nil
}

// decideManagement asks the policy about a management call through the one
// authorize (facts, decision, decision log). An error means the caller's
// facts could not be read: deny.
func (g *Gateway) decideManagement(r *http.Request, route string, id *policy.Identity, m policy.Management) (policy.Decision, error) {
	in, err := g.managementInput(r, route, id, &m)
	if err == nil {
		var ev policy.Evaluation
		if ev, err = g.authorize(r.Context(), in); err == nil {
			return ev.Decision, nil
		}
	}
	g.log.Error("management decision: access store lookup failed; denying", "decision_id", decisionID(r.Context()), "action", m.Action, "error", err.Error())
	return policy.Decision{Allow: false, Status: http.StatusServiceUnavailable, Reason: "access.unavailable"}, err
}

// crossSiteRefusal is the one CSRF rule of the control plane, used by
// every state-changing endpoint a browser reaches with its cookies
// (sign-out, master access, the console's forms, management API writes
// with a session). The browser must say the request comes from this
// origin — net/http's CrossOriginProtection reads Sec-Fetch-Site, else
// Origin; a request with neither is not from a browser that would attach
// cookies cross-site — and a signed-in session must present the token bound
// to it (a form's csrf field, or X-CSRF-Token on the API). It returns the
// refusal's reason, or "" when the request may go on.
func (g *Gateway) crossSiteRefusal(r *http.Request, st *sessionState, token string) string {
	if err := g.control().crossOrigin.Check(r); err != nil {
		return "csrf.cross_origin"
	}
	if st != nil && !g.sessions.validCSRF(st.data.ID, token) {
		return "csrf.invalid"
	}
	return ""
}
