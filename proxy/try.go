package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/policy"
)

// TryRequest works out what the gateway would decide on a request without
// sending it (the console's "try a request"): the request path's own
// sanitize and route stages, its one input builder and its access
// resolution, for a caller known only by subject (no claims), then the
// policy being served with the explain trace. The target is an absolute
// URL or a path (for any host); tenant, when set, names the tenant in
// place of the one the host or path gives. Nothing is forwarded and no
// decision is logged: the caller's own management decision is.
func (g *Gateway) TryRequest(ctx context.Context, method, target, subject, tenant string) (*policy.Trial, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL or path: %w", target, err)
	}
	hostport := u.Host
	if hostport == "" {
		hostport = "localhost"
	}
	t := &policy.Trial{Method: method, Host: hostport, Path: u.EscapedPath()}
	refused := func(d *deny.Denial) (*policy.Trial, error) {
		t.Refused, t.Status, t.Reason = true, d.Status, d.Reason
		return t, nil
	}
	host, path, segments, d := canonicalTarget(hostport, u.EscapedPath())
	if d != nil {
		return refused(d)
	}
	t.Host, t.Path = host, path
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return refused(&deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_query"})
	}
	rt, d := g.router.routeFor(g.tenants, host, path, segments)
	if rt != nil {
		t.Route = rt.cfg.Name
	}
	if d != nil {
		return refused(d)
	}
	r, err := http.NewRequestWithContext(ctx, method, "http://localhost/", nil)
	if err != nil {
		return nil, fmt.Errorf("method %q: %w", method, err)
	}
	r.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery = host, path, "", u.RawQuery
	if d := methodDenial(r, nil, false, rt.cfg.ExtraMethods); d != nil {
		return refused(d)
	}
	var id *policy.Identity
	if subject != "" {
		id = policy.NewIdentity(policy.Identity{Subject: subject})
	}
	in := g.requestInput(r, policy.Route{Name: rt.cfg.Name, API: rt.cfg.API}, id, host, segments, g.now())
	if tenant != "" {
		in.Tenant = &policy.Tenant{ID: tenant, Status: "active"}
	}
	if in.Tenant != nil {
		t.Tenant = in.Tenant.ID
		if g.resolver != nil && id != nil {
			if _, err := g.resolveAccess(ctx, in); err != nil {
				return nil, fmt.Errorf("resolve access of %s in %s: %w", subject, in.Tenant.ID, err)
			}
		}
	}
	g.engine.Current().Try(ctx, in, t)
	return t, nil
}
