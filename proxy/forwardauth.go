package proxy

import (
	"crypto/subtle"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/portero-gateway/portero/internal/deny"
)

// ForwardAuth is the HTTP forward-auth endpoint (forward_auth.listen: every
// path answers; forward_auth.path: that path of the public listener). A
// front proxy asks whether a request may pass, describing it with its own
// headers: X-Forwarded-Method or X-Original-Method, X-Forwarded-Uri or
// X-Original-URI, and X-Forwarded-Host (else the check's Host). The answer:
//
//   - 200 with the headers the front proxy sets on the request to the app
//     (the decision's, the assertion, Cookie without Portero's cookies) and
//     any Set-Cookie for the client;
//   - 401 for a browser that must sign in, with Location (the sign-in URL)
//     and a page that goes there (nginx passes only 401 and 403 on);
//   - the refusal's own status and page otherwise (400, 403, 405, 503).
func (g *Gateway) ForwardAuth() http.Handler { return http.HandlerFunc(g.serveForwardAuth) }

func (g *Gateway) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	if !g.trustedFrontProxy(r) {
		writeCheck(w, g.Untrusted(r, "http", r.RemoteAddr))
		return
	}
	r.Header.Del(SecretHeader) // the front proxy's, not the client's
	orig, d := originalRequest(r)
	if d != nil {
		writeCheck(w, g.Refuse(r, "http", *d))
		return
	}
	// A check carries the body only where the front proxy sends it
	// (Traefik's forwardBody); nginx and Caddy cannot.
	withBody := r.ContentLength != 0
	writeCheck(w, g.Check(orig, CheckOptions{Via: "http", WithBody: withBody, Own: ForwardAuthHeaders}))
}

// writeCheck is the HTTP answer to a check.
func writeCheck(w http.ResponseWriter, c *Check) {
	h := w.Header()
	for name, vals := range c.Header {
		h[name] = vals
	}
	if c.Allowed {
		for name, vals := range c.Upstream {
			h[name] = vals
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if c.Status == http.StatusFound && h.Get("Location") != "" {
		// The sign-in redirect, as 401: nginx's auth_request passes only
		// 401 and 403 to the client (its error_page then redirects, see
		// docs/forward-auth.md); Traefik and Caddy pass the answer as is,
		// and a browser follows the page's refresh.
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'")
		w.WriteHeader(http.StatusUnauthorized)
		_ = signInPage.Execute(w, h.Get("Location"))
		return
	}
	w.WriteHeader(c.Status)
	_, _ = w.Write(c.Body)
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={{.}}">
<title>Sign in</title></head><body><p><a href="{{.}}">Sign in</a> to continue.</p></body></html>
`))

// SecretHeader carries forward_auth.secret on a check: the front proxy's
// check location sets it, a client cannot (it does not know it, and a
// client's copy of an X-Portero- header is refused on the way to the app).
const SecretHeader = "X-Portero-Forward-Auth-Secret"

// trustedFrontProxy says whether a check comes from one of
// forward_auth.trusted_proxies and, where forward_auth.secret is set,
// carries it. On the public listener (forward_auth.path) the secret is what
// tells the front proxy's check from a client's request the front proxy
// passes on to /.portero/ from the same address.
func (g *Gateway) trustedFrontProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !g.cfg.ForwardAuth.Trusts(addr) {
		return false
	}
	secret := g.cfg.ForwardAuth.Secret
	if secret == "" {
		return true
	}
	sent := r.Header.Values(SecretHeader)
	return len(sent) == 1 && subtle.ConstantTimeCompare([]byte(sent[0]), []byte(secret)) == 1
}

// originalRequest rebuilds the request a front proxy asks about from its
// headers. Each of method, URI and host must be given once, in one value,
// whichever header names carry it (a client's copy of a header the front
// proxy does not replace would otherwise pose as the original's).
func originalRequest(check *http.Request) (*http.Request, *deny.Denial) {
	incomplete := &deny.Denial{Status: http.StatusBadRequest, Reason: "forward_auth.incomplete"}
	ambiguous := &deny.Denial{Status: http.StatusBadRequest, Reason: "forward_auth.ambiguous"}
	method, ok := oneValue(check.Header, "X-Forwarded-Method", "X-Original-Method")
	if !ok {
		return nil, ambiguous
	}
	uri, ok := oneValue(check.Header, "X-Forwarded-Uri", "X-Original-Uri")
	if !ok {
		return nil, ambiguous
	}
	host, ok := oneValue(check.Header, "X-Forwarded-Host")
	if !ok || strings.Contains(host, ",") {
		return nil, ambiguous
	}
	if host == "" {
		host = check.Host
	}
	if method == "" || uri == "" || host == "" {
		return nil, incomplete
	}
	u, d := OriginalTarget(uri)
	if d != nil {
		return nil, d
	}
	orig := check.Clone(check.Context())
	orig.Method = method
	orig.URL = u
	orig.RequestURI = uri
	orig.Host = host
	orig.Header = check.Header.Clone()
	if orig.Body == nil {
		orig.Body = http.NoBody
	}
	return orig, nil
}

// oneValue is the value the named headers give together: "" when none is
// present, ok false when they give more than one value or differ.
func oneValue(h http.Header, names ...string) (v string, ok bool) {
	for _, name := range names {
		vals := h.Values(name)
		for _, x := range vals {
			x = strings.TrimSpace(x)
			if v != "" && x != v || len(vals) > 1 {
				return "", false
			}
			v = x
		}
	}
	return v, true
}
