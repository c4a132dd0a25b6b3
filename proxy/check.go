package proxy

import (
	"bytes"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/portero-gateway/portero/internal/deny"
)

// Check is the decision on a request that another proxy forwards itself
// (nginx auth_request, Traefik forwardAuth, Caddy forward_auth, Envoy
// ext_authz): the same stages as the proxy path, with the forwarding left
// to the front proxy.
//
// The proxy path changes a request before the app sees it: it removes
// Portero's headers and the override headers a client sent, brings the
// path to its canonical form, removes _method from the query and Portero's
// cookies from Cookie. A front proxy forwards the request it has, so Check
// refuses every request on which one of those changes would be needed and
// the front proxy cannot make it; what it can make (set or remove a header)
// is in Upstream and Remove. So the app behind a front proxy receives,
// byte for byte, the request the policy decided on.
type Check struct {
	// Allowed: the front proxy forwards the request with Upstream set and
	// Remove removed.
	Allowed bool
	// Status, Header and Body are Portero's answer for the client: the
	// refusal (or sign-in redirect) when not allowed; when allowed, Header
	// may hold a refreshed session cookie (Set-Cookie) for the client.
	Status int
	Header http.Header
	Body   []byte
	// Upstream are the headers the front proxy sets on the request to the
	// app, replacing any copy: the decision's headers, the assertion and,
	// when the request has cookies, Cookie without Portero's own.
	Upstream http.Header
	// Remove are headers the front proxy removes from the request to the
	// app: reserved headers a client sent (when the caller can remove
	// headers at all) and Cookie when only Portero's cookies were in it.
	Remove []string
	// ID is the decision id: in the decision log, and in Portero's page
	// or JSON when refused.
	ID string
	// withBody says the check carries the request's body (Envoy's
	// with_request_body, Traefik's forwardBody), or that the request has
	// none.
	withBody bool
}

// CheckOptions say what the front proxy sends and can do.
type CheckOptions struct {
	// Via names the endpoint in portero_forward_auth_checks_total: "http"
	// (the default) or "envoy".
	Via string
	// CanRemove says the front proxy removes the headers Check lists in
	// Remove before forwarding (Envoy does; an HTTP forward-auth answer
	// cannot make nginx, Traefik or Caddy remove a header their
	// configuration does not name), so a reserved header a client sent is
	// removed rather than refused.
	CanRemove bool
	// WithBody says the request carries the original body, or that the
	// original has none.
	WithBody bool
	// Own are the front proxy's own headers (canonical names), set by it on
	// every request it forwards, replacing any client copy: neither refused
	// nor removed.
	Own map[string]bool
}

// ForwardAuthHeaders are the headers by which a trusted front proxy
// describes the original request and its client to an HTTP forward-auth
// endpoint. Its configuration replaces any client copy of each (see
// docs/forward-auth.md).
var ForwardAuthHeaders = map[string]bool{
	"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true,
	"X-Forwarded-Port": true, "X-Forwarded-Method": true, "X-Forwarded-Uri": true,
	"X-Forwarded-Server": true, "X-Original-Method": true, "X-Original-Uri": true,
	"X-Real-Ip": true, "X-Request-Id": true,
}

// Check decides r, the original request as the front proxy describes it:
// method, request URI (RawPath and RawQuery as the client sent them), Host,
// the client's headers and, when the front proxy sends it, the body.
func (g *Gateway) Check(r *http.Request, opts CheckOptions) *Check {
	c := &Check{withBody: opts.WithBody}
	if d := g.unforwardable(r, opts, c); d != nil {
		return g.Refuse(r, opts.Via, *d)
	}
	w := &checkWriter{header: http.Header{}}
	g.serve(w, r, c)
	result := "refused"
	if !c.Allowed {
		c.Status, c.Body = w.code(), w.body.Bytes()
	} else {
		c.Status, result = http.StatusOK, "allowed"
	}
	c.Header = w.header
	g.metrics.checks.WithLabelValues(via(opts.Via), result).Inc()
	return c
}

// Untrusted refuses a check from outside forward_auth.trusted_proxies (or
// without forward_auth.secret where one is set): logged, counted, 403
// forward_auth.untrusted_source.
func (g *Gateway) Untrusted(r *http.Request, viaName, remote string) *Check {
	g.log.Warn("forward-auth check from an untrusted source refused", "via", via(viaName), "remote", remote)
	g.metrics.checks.WithLabelValues(via(viaName), "untrusted").Inc()
	return g.refuse(r, deny.Denial{Status: http.StatusForbidden, Reason: "forward_auth.untrusted_source"})
}

// Refuse answers a trusted check that does not describe one request
// (forward_auth.incomplete, forward_auth.ambiguous, request.bad_path) or
// that failed (forward_auth.error), or one Check refuses before the
// stages run; counted like every refused check.
func (g *Gateway) Refuse(r *http.Request, viaName string, d deny.Denial) *Check {
	g.metrics.checks.WithLabelValues(via(viaName), "refused").Inc()
	return g.refuse(r, d)
}

func (g *Gateway) refuse(r *http.Request, d deny.Denial) *Check {
	d.ID = newDecisionID()
	w := &checkWriter{header: http.Header{}}
	deny.Write(w, r, false, d)
	g.tracer.refusedCheck(r, d)
	g.metrics.requests.WithLabelValues("none", "reject", strconv.Itoa(d.Status)).Inc()
	g.metrics.denials.WithLabelValues("none", d.Reason).Inc()
	return &Check{Status: d.Status, Header: w.header, Body: w.body.Bytes(), ID: d.ID}
}

// OriginalTarget parses the request target a front proxy describes (path
// and query as the client sent them, no scheme, host or fragment).
func OriginalTarget(uri string) (*url.URL, *deny.Denial) {
	bad := &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_path"}
	if uri == "" || uri[0] != '/' || strings.ContainsAny(uri, "# \t") {
		return nil, bad
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, bad
	}
	return u, nil
}

func via(name string) string {
	if name == "" {
		return "http"
	}
	return name
}

// unforwardable refuses a request the front proxy would have to change
// before the app may receive it (see Check), and lists in c.Remove the
// reserved headers the front proxy removes instead when it can.
func (g *Gateway) unforwardable(r *http.Request, opts CheckOptions, c *Check) *deny.Denial {
	for name := range r.Header {
		if opts.Own[name] {
			continue
		}
		if plainHeaderName(name) && !g.reserved.controlled(normalizeHeaderName(name)) {
			continue
		}
		if !opts.CanRemove {
			return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.reserved_header"}
		}
		c.Remove = append(c.Remove, name)
	}
	slices.Sort(c.Remove)
	escaped := r.URL.EscapedPath()
	clean, _, err := normalizePath(escaped)
	if err != nil {
		return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_path"}
	}
	if clean != escaped {
		// "/a//b", "/a/./b", "/a/x/../b": the proxy path forwards the
		// canonical form; the front proxy would forward these as sent.
		return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.non_canonical_path"}
	}
	host, err := normalizeHost(r.Host)
	if err != nil {
		return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_host"}
	}
	sent := r.Host
	if h, _, err := net.SplitHostPort(sent); err == nil {
		sent = h
	}
	if sent != host {
		return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.non_canonical_host"}
	}
	if _, found := methodParams(r.URL.RawQuery); found != nil {
		// The proxy path removes it; the front proxy would forward it.
		return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.method_override"}
	}
	return nil
}

// allow records an allowed check: the headers the app receives, and Cookie
// without Portero's cookies.
func (c *Check) allow(st *requestState, sent http.Header) {
	c.Allowed = true
	c.Upstream = st.upstream
	if len(sent.Values("Cookie")) == 0 {
		return
	}
	h := http.Header{"Cookie": sent.Values("Cookie")}
	stripCookies(h, st.dropCookies...)
	if v := h.Get("Cookie"); v != "" {
		c.Upstream.Set("Cookie", v)
	} else {
		c.Remove = append(c.Remove, "Cookie")
	}
}

// checkWriter keeps the answer the stages write for a check.
type checkWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *checkWriter) Header() http.Header { return w.header }

func (w *checkWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *checkWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

func (w *checkWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
