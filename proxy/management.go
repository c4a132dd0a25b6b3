package proxy

import (
	"errors"
	"net/http"

	"github.com/portero-gateway/portero/policy"
)

// DecideManagement asks the policy about a management call (the
// management API, the console, master access) through the request path's
// one input builder and one authorize (facts, decision, decision log). The
// input says who the caller is, the caller's own facts (its partner
// organisation; its access in the tenant the call names) and what it wants
// to do; it reads nothing about the records the call is about, so it can
// come first. An error means the caller's facts could not be read: deny.
func (g *Gateway) DecideManagement(r *http.Request, route policy.Route, id *policy.Identity, m policy.Management) (policy.Decision, error) {
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

func (g *Gateway) managementInput(r *http.Request, route policy.Route, id *policy.Identity, m *policy.Management) (*policy.Input, error) {
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
	in := g.requestInput(r, route, id, host, nil, g.now())
	in.Tenant = nil
	if m.Tenant != "" {
		in.Tenant = &policy.Tenant{ID: m.Tenant}
	}
	in.Management = m
	return in, nil
}
