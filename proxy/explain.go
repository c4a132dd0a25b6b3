package proxy

import (
	"fmt"
	"net/url"
	"strings"

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
	host, err := normalizeHost(hostport)
	if err != nil {
		return nil, fmt.Errorf("host %q: refused (request.bad_host)", hostport)
	}
	clean, segments, err := normalizePath(u.EscapedPath())
	if err != nil {
		return nil, fmt.Errorf("path %q: refused (request.bad_path): %w", u.EscapedPath(), err)
	}
	path := decodedPath(segments, strings.HasSuffix(clean, "/") && len(segments) > 0)
	rt := newRouter(cfg.Routes).match(host, path)
	if rt == nil {
		return nil, fmt.Errorf("no route matches host %s and path %s (route.none)", host, path)
	}
	if err := checkMethod(method, rt.cfg.ExtraMethods); err != nil {
		return nil, fmt.Errorf("method %q: refused: %w", method, err)
	}
	tenant, app := newTenantExtractor(cfg.Tenant).extract(host, segments)
	return &Classification{Method: method, Host: host, Path: path, Route: rt.cfg.Name, Tenant: tenant, AppSegments: app}, nil
}
