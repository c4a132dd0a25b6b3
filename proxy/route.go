package proxy

import (
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/deny"
)

// route is a configured route with its host patterns prepared for matching.
type route struct {
	cfg        config.Route
	exactHosts map[string]bool
	wildcards  []string // ".apps.example.com" for "*.apps.example.com"
	forward    *httputil.ReverseProxy
}

// router picks the route for a (normalised) host and path.
type router struct {
	routes []*route
}

func newRouter(routes []config.Route) *router {
	rt := &router{}
	for _, rc := range routes {
		r := &route{cfg: rc, exactHosts: map[string]bool{}}
		for _, h := range rc.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				r.wildcards = append(r.wildcards, suffix)
			} else {
				r.exactHosts[h] = true
			}
		}
		rt.routes = append(rt.routes, r)
	}
	return rt
}

// match returns the most specific route: an exact host beats a wildcard,
// which beats a route for any host; then the longest path prefix; then the
// first in the file.
func (rt *router) match(host, path string) *route {
	var best *route
	bestHost, bestPrefix := -1, -1
	for _, r := range rt.routes {
		hr := r.hostRank(host)
		if hr < 0 || !prefixMatches(r.cfg.PathPrefix, path) {
			continue
		}
		if hr > bestHost || hr == bestHost && len(r.cfg.PathPrefix) > bestPrefix {
			best, bestHost, bestPrefix = r, hr, len(r.cfg.PathPrefix)
		}
	}
	return best
}

// routeFor is the routing stage: the route for a canonical host and path,
// or a refusal. A route with a refusal is returned when the refusal
// concerns it (host and path naming two tenants), so the answer can take
// the route's form (JSON on API routes).
func (rt *router) routeFor(te tenantExtractor, host, path string, segments []string) (*route, *deny.Denial) {
	r := rt.match(host, path)
	switch {
	case r == nil:
		return nil, &deny.Denial{Status: http.StatusNotFound, Reason: "route.none"}
	case te.conflicting(host, segments):
		return r, &deny.Denial{Status: http.StatusBadRequest, Reason: "request.tenant_conflict"}
	}
	return r, nil
}

// hostRank is 2 for an exact match, 1 for a wildcard, 0 for a route without
// hosts, -1 for no match. A wildcard stands for exactly one label.
func (r *route) hostRank(host string) int {
	if len(r.exactHosts) == 0 && len(r.wildcards) == 0 {
		return 0
	}
	if r.exactHosts[host] {
		return 2
	}
	for _, suffix := range r.wildcards {
		if label, ok := strings.CutSuffix(host, suffix); ok && label != "" && !strings.Contains(label, ".") {
			return 1
		}
	}
	return -1
}

// prefixMatches compares whole segments: "/api" matches "/api" and "/api/x"
// but not "/apix".
func prefixMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	p := strings.TrimSuffix(prefix, "/")
	return path == p || strings.HasPrefix(path, p+"/")
}

// tenantExtractor finds the tenant id in the host or the path, per the
// tenant templates in gateway.yaml.
type tenantExtractor struct {
	hostLabels []string // template labels; "{tenant}" marks the id
	pathSegs   []string // template segments
}

func newTenantExtractor(t config.Tenant) tenantExtractor {
	var te tenantExtractor
	if t.Host != "" {
		te.hostLabels = strings.Split(t.Host, ".")
	}
	if t.Path != "" {
		te.pathSegs = strings.Split(strings.Trim(t.Path, "/"), "/")
	}
	return te
}

// extract returns the tenant id, or "" when the request names none (or names
// one that is not a valid id, which is then treated as none: fail closed),
// and the path segments as the tenant's app sees them: after the tenant's
// path prefix when the tenant came from the path.
func (te tenantExtractor) extract(host string, segments []string) (string, []string) {
	if te.hostLabels != nil {
		if id := matchTemplate(te.hostLabels, strings.Split(host, "."), true); id != "" {
			return id, segments
		}
	}
	if te.pathSegs != nil {
		if id := matchTemplate(te.pathSegs, segments, false); id != "" {
			return id, segments[len(te.pathSegs):]
		}
	}
	return "", segments
}

// conflicting reports a request whose host and path name two different
// tenants: the policy would decide for the host's while an app that reads
// the tenant from its path serves the other.
func (te tenantExtractor) conflicting(host string, segments []string) bool {
	if te.hostLabels == nil || te.pathSegs == nil {
		return false
	}
	byHost := matchTemplate(te.hostLabels, strings.Split(host, "."), true)
	byPath := matchTemplate(te.pathSegs, segments, false)
	return byHost != "" && byPath != "" && byHost != byPath
}

func matchTemplate(tmpl, parts []string, whole bool) string {
	if len(parts) < len(tmpl) || whole && len(parts) != len(tmpl) {
		return ""
	}
	id := ""
	for i, t := range tmpl {
		switch {
		case t == "{tenant}":
			id = parts[i]
		case t != parts[i]:
			return ""
		}
	}
	if !access.IsID(id) {
		return ""
	}
	return id
}
