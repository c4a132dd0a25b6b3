package proxy

import (
	"fmt"
	"net/url"

	"github.com/portero-gateway/portero/config"
)

// Classification is what the request path makes of a request before the
// policy sees it: the route, the tenant and the path as the tenant's app
// sees it. `portero explain` shows it with the mapping entry it matches.
type Classification struct {
	Method      string
	Host        string
	Path        string // normalised
	Route       string
	Tenant      string
	AppSegments []string
}

// Classify runs the sanitize and route stages of the gateway on a method and
// a target (an absolute URL, or a path for any host) without sending
// anything: the same normalisation, method rule and tenant extraction as
// ServeHTTP. A target the gateway would refuse is an error naming why.
func Classify(cfg *config.Config, method, target string) (*Classification, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL or path: %w", target, err)
	}
	hostport := u.Host
	if hostport == "" {
		hostport = "localhost"
	}
	host, path, segments, d := canonicalTarget(hostport, u.EscapedPath())
	if d == nil {
		var rt *route
		if rt, d = newRouter(cfg.Routes).routeFor(newTenantExtractor(cfg.Tenant), host, path, segments); d == nil {
			if err := checkMethod(method, rt.cfg.ExtraMethods); err != nil {
				return nil, fmt.Errorf("method %q: refused: %w", method, err)
			}
			tenant, app := newTenantExtractor(cfg.Tenant).extract(host, segments)
			return &Classification{Method: method, Host: host, Path: path, Route: rt.cfg.Name, Tenant: tenant, AppSegments: app}, nil
		}
	}
	return nil, fmt.Errorf("%s %s: refused (%s)", hostport, u.EscapedPath(), d.Reason)
}
