package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/portero-gateway/portero/internal/deny"
)

// reservedHeaders decides which header names belong to Portero. Every one of
// them is removed from inbound requests before anything else looks at the
// request, and only these may be set from a policy decision. Names compare
// case-insensitively with '_' and '-' alike, because some upstream stacks
// (CGI, WSGI, PHP) map both to the same variable.
type reservedHeaders struct {
	prefixes []string // normalised, e.g. "x-portero-"
	names    map[string]bool
	// extra and extraPrefixes are the operator's headers.strip.
	extra         map[string]bool
	extraPrefixes []string
}

// withStrip adds the operator's headers.strip: names, or prefixes ending in
// '*', removed from inbound requests like the built-in ones.
func (r reservedHeaders) withStrip(names []string) reservedHeaders {
	r.extra = map[string]bool{}
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			r.extraPrefixes = append(r.extraPrefixes, normalizeHeaderName(p))
		} else {
			r.extra[normalizeHeaderName(n)] = true
		}
	}
	return r
}

func newReservedHeaders(assertionHeader string) reservedHeaders {
	return reservedHeaders{
		// Both impersonation profiles are always reserved, whichever is
		// configured: an app behind Portero must never receive a client's
		// Impersonate-User, even if Portero does not use that profile.
		prefixes: []string{"x-portero-", "impersonate-"},
		names:    map[string]bool{normalizeHeaderName(assertionHeader): true},
	}
}

// normalizeHeaderName lower-cases a header name and writes every character
// other than a letter or digit as '-': CGI, PHP, WSGI and Rack turn '-',
// '_', '.' (and more) alike into '_', so X_Portero_User and X.Portero.User
// reach such an app as X-Portero-User.
func normalizeHeaderName(name string) string {
	if n, ok := lowerHeaderNames[name]; ok {
		return n
	}
	return normalizeHeaderNameOf(name)
}

// normalizeHeaderNameOf works normalizeHeaderName out.
func normalizeHeaderNameOf(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			b[i] = '-'
		}
	}
	return string(b)
}

// lowerHeaderNames maps the header names most requests carry, and those
// the policy sets, as Go's server spells them (canonical), to their lower
// case, which for such a name (letters, digits and '-' only) is also its
// normalised form: every request's names are normalised for the reserved
// checks and lower-cased for the policy input, and working each out again
// cost two allocations a name. Read only after init; a name not in it is
// worked out as before.
var lowerHeaderNames = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization", "Baggage",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie",
		"Dnt", "Expect", "Forwarded", "From", "Host", "If-Match", "If-Modified-Since", "If-None-Match",
		"If-Range", "If-Unmodified-Since", "Keep-Alive", "Origin", "Pragma", "Priority",
		"Proxy-Authorization", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Websocket-Extensions",
		"Sec-Websocket-Key", "Sec-Websocket-Protocol", "Sec-Websocket-Version", "Te", "Traceparent",
		"Tracestate", "Trailer", "Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent",
		"Via", "X-Csrf-Token", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
		"X-Request-Id", "X-Requested-With",
		// What the default policy and master access set.
		"X-Portero-User", "X-Portero-Tenant", "X-Portero-Role", "X-Portero-Roles", "X-Portero-Scope",
		"X-Portero-Features", "X-Portero-Partner", "X-Portero-Assertion", "X-Portero-Impersonator",
		"X-Portero-Impersonation-Reason", "X-Portero-Impersonation-Id", "X-Portero-Impersonation-Expires",
		"X-Portero-Impersonation-Mode", "Impersonate-User", "Impersonate-Group", "Impersonate-Uid",
		"Impersonate-Extra-Impersonator", "Impersonate-Extra-Reason",
	} {
		if !plainHeaderName(name) || http.CanonicalHeaderKey(name) != name {
			panic("proxy: lowerHeaderNames: " + name + " is not a plain canonical header name")
		}
		m[name] = strings.ToLower(name)
	}
	return m
}()

// contains reports whether name is a header Portero may set.
func (r reservedHeaders) contains(name string) bool {
	return r.containsNormalized(normalizeHeaderName(name))
}

func (r reservedHeaders) containsNormalized(n string) bool {
	for _, p := range r.prefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return r.names[n]
}

// Headers a client must never be able to send to the app, besides
// Portero's own: those by which it could make the app see another method,
// path, host, scheme or client address than the one the policy decided on,
// or another user (the identity headers of other auth proxies, which an app
// moved behind Portero may still trust), and httpoxy's Proxy. Names compare
// normalised (normalizeHeaderName). Operators add their own with
// headers.strip.
var (
	strippedPrefixes = []string{
		// method, path, host, scheme and address overrides
		"x-forwarded-", "x-original-", "x-http-method", "x-envoy-original-",
		// identity headers of other auth proxies
		"x-remote-", "x-auth-request-", "x-webauth-", "x-authenticated-", "x-pomerium-",
		"x-goog-authenticated-", "cf-access-", "x-amzn-oidc-", "x-ms-client-principal",
	}
	strippedNames = map[string]bool{
		// method and path
		"x-method-override": true, "x-rewrite-url": true, "x-script-name": true,
		"x-sendfile-type": true, "x-accel-mapping": true,
		// host and scheme
		"x-host": true, "x-http-host-override": true, "front-end-https": true, "x-url-scheme": true,
		"x-scheme": true, "x-arr-ssl": true, "forwarded": true, "x-forwarded": true,
		// client address
		"x-real-ip": true, "x-client-ip": true, "client-ip": true, "true-client-ip": true,
		"x-cluster-client-ip": true, "cf-connecting-ip": true, "fastly-client-ip": true,
		"x-originating-ip": true, "x-remote-ip": true, "x-remote-addr": true, "proxy-client-ip": true,
		"wl-proxy-client-ip": true, "x-arr-clientip": true, "x-azure-clientip": true,
		"x-appengine-user-ip": true, "x-proxyuser-ip": true,
		// identity
		"remote-user": true, "x-user": true, "x-user-id": true, "x-tenant-id": true, "x-roles": true,
		// httpoxy: CGI stacks turn it into HTTP_PROXY, which outbound clients honour
		"proxy": true,
	}
)

func isStrippedHeader(n string) bool {
	for _, p := range strippedPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return strippedNames[n]
}

// controlled reports whether a client copy of the (normalised) header name
// must never reach the app: Portero's own headers and the override headers.
func (r reservedHeaders) controlled(n string) bool {
	if r.containsNormalized(n) || isStrippedHeader(n) || r.extra[n] {
		return true
	}
	for _, p := range r.extraPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// strip removes from h every header whose name is not plain letters,
// digits and '-', every reserved header, every method-, path-, address- or
// identity-override header, and every Connection token but close,
// keep-alive, upgrade and te (a client must not be able to make the
// forwarder delete what the policy saw or what Portero sets: the decision's
// headers are set after hop-by-hop removal anyway, and this keeps the rule
// visible in one place). It returns the
// override method the client asked for, if any, so a route that allows
// method override can honour it.
func (r reservedHeaders) strip(h http.Header) (override []string) {
	for name, vals := range h {
		n := normalizeHeaderName(name)
		if !plainHeaderName(name) {
			// '_', '.' and the like: stacks disagree on what such a name
			// means (CGI, PHP, WSGI read Content_Type as Content-Type), so,
			// like nginx by default, it never reaches the app.
			delete(h, name)
			continue
		}
		if !r.controlled(n) {
			continue
		}
		switch n {
		case "x-http-method-override", "x-http-method", "x-method-override":
			override = append(override, vals...)
		}
		delete(h, name)
	}
	if conn, ok := h["Connection"]; ok {
		var kept []string
		for _, line := range conn {
			for tok := range strings.SplitSeq(line, ",") {
				tok = strings.TrimSpace(tok)
				if connectionTokens[strings.ToLower(tok)] {
					kept = append(kept, tok)
				}
			}
		}
		if len(kept) == 0 {
			delete(h, "Connection")
		} else {
			h["Connection"] = []string{strings.Join(kept, ", ")}
		}
	}
	return override
}

// connectionTokens are the only Connection options kept: any other token
// would make the forwarder delete a header the policy saw (or one Portero
// sets) after the decision.
var connectionTokens = map[string]bool{"close": true, "keep-alive": true, "upgrade": true, "te": true}

// plainHeaderName reports whether a header name holds only letters, digits
// and '-'.
func plainHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return name != ""
}

// standardMethods are the methods every route accepts, in their only
// accepted spelling (upper case). CONNECT and TRACE are not among them.
var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

var (
	errMethodSpelling  = errors.New("method must be upper case")
	errMethodNotListed = errors.New("method not allowed")
)

// checkMethod accepts the standard methods and a route's extra ones, upper
// case only: "delete" is refused (400) rather than forwarded as a method
// the policy never decided on; anything else is 405.
func checkMethod(method string, extra []string) error {
	if standardMethods[method] || slices.Contains(extra, method) {
		return nil
	}
	up := strings.ToUpper(method)
	if up != method && (standardMethods[up] || slices.Contains(extra, up)) {
		return errMethodSpelling
	}
	return errMethodNotListed
}

// methodOverride works out the method a client tunnels through POST with
// the override headers (already removed by strip) or the _method query
// parameter, and removes the parameter from the query. allowed is the
// route's method_override setting: without it the override is dropped and
// the request keeps its own method; with it, the overridden method replaces
// the request's (the policy decides on it and the app receives it). Several
// differing overrides, or one that is not an accepted method, are an error.
func methodOverride(r *http.Request, headerValues []string, allowed bool, extra []string) error {
	var values []string
	for _, v := range headerValues {
		values = append(values, strings.TrimSpace(v))
	}
	if kept, found := methodParams(r.URL.RawQuery); len(found) > 0 {
		values = append(values, found...)
		r.URL.RawQuery = kept
	}
	if !allowed || len(values) == 0 {
		return nil
	}
	if r.Method != http.MethodPost {
		return errMethodNotListed
	}
	for _, v := range values {
		if v != values[0] {
			return errMethodNotListed
		}
	}
	if err := checkMethod(values[0], extra); err != nil {
		return err
	}
	r.Method = values[0]
	return nil
}

var (
	errBadPath = errors.New("ambiguous or malformed path")
	errBadHost = errors.New("malformed host")
)

// normalizePath is the single place a request path is interpreted. It takes
// the path as sent (percent-encoded) and returns the normalised encoded path
// and its decoded segments. Dot segments and repeated slashes are resolved;
// anything an upstream could read differently from Portero is refused:
// encoded '/', '\', '.', '%' (double encoding) and control bytes, raw '\'
// and control bytes, ".." above the root, and "..;" style segments that some
// servlet containers treat as "..".
func normalizePath(escaped string) (string, []string, error) {
	if escaped == "" || escaped[0] != '/' {
		return "", nil, errBadPath
	}
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case !pathChar(c):
			return "", nil, errBadPath
		case c == '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", nil, errBadPath
			}
			d := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			if d < 0x20 || d == 0x7f || d == '/' || d == '\\' || d == '.' || d == '%' || d == ';' {
				return "", nil, errBadPath
			}
			i += 2
		}
	}
	raw := strings.Split(escaped[1:], "/")
	out := make([]string, 0, len(raw))
	for _, seg := range raw {
		switch {
		case seg == "" || seg == ".":
			continue
		case seg == "..":
			if len(out) == 0 {
				return "", nil, errBadPath
			}
			out = out[:len(out)-1]
			continue
		}
		out = append(out, seg)
	}
	clean := "/" + strings.Join(out, "/")
	if len(out) > 0 && strings.HasSuffix(escaped, "/") {
		clean += "/"
	}
	segments := make([]string, len(out))
	for i, seg := range out {
		s, err := url.PathUnescape(seg)
		if err != nil || !plainSegment(s) {
			return "", nil, errBadPath
		}
		segments[i] = s
	}
	return clean, segments, nil
}

// plainSegment reports whether a decoded segment reads the same to every
// stack: valid UTF-8, no control, format (zero-width, bidi), separator or
// private-use characters, no whitespace but inner ASCII spaces, and already
// in NFKC form.
func plainSegment(s string) bool {
	if !utf8.ValidString(s) || strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") {
		return false
	}
	ascii := true
	for _, c := range s {
		if c >= utf8.RuneSelf {
			ascii = false
		}
		if c == ' ' {
			continue
		}
		if unicode.IsSpace(c) || unicode.IsControl(c) || unicode.In(c, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp, unicode.Zs) || c == utf8.RuneError {
			return false
		}
	}
	return ascii || norm.NFKC.IsNormalString(s)
}

// pathChar reports whether c may appear unencoded in a path: RFC 3986's
// pchar and '/', without ';' (see normalizePath). Everything else (control
// bytes, space, '\\', '#', '?', quotes, brackets, bytes above 0x7f) must
// arrive percent-encoded.
func pathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,=:@/%", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// canonicalTarget is the one place a request's host and path are brought
// to the form the policy decides on and the app receives: the normalised
// host, the decoded canonical path and its segments, or a refusal.
func canonicalTarget(hostport, escapedPath string) (host, path string, segments []string, d *deny.Denial) {
	host, err := normalizeHost(hostport)
	if err != nil {
		return "", "", nil, &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_host"}
	}
	clean, segments, err := normalizePath(escapedPath)
	if err != nil {
		return "", "", nil, &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_path"}
	}
	return host, decodedPath(segments, strings.HasSuffix(clean, "/") && len(segments) > 0), segments, nil
}

// splitHostPort is net.SplitHostPort, ok when it succeeds; most Host
// headers have no port, and without a ':' it does not try (its error cost
// two allocations a request).
func splitHostPort(hostport string) (host, port string, ok bool) {
	if !strings.Contains(hostport, ":") {
		return "", "", false
	}
	host, port, err := net.SplitHostPort(hostport)
	return host, port, err == nil
}

// normalizeHost returns the request's host name in the one form routing and
// tenant extraction use: lower-case, without port or trailing dot.
func normalizeHost(hostport string) (string, error) {
	host := hostport
	if h, _, ok := splitHostPort(hostport); ok {
		host = h
	} else if strings.HasPrefix(hostport, "[") {
		return "", errBadHost
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || len(host) > 253 {
		return "", errBadHost
	}
	if net.ParseIP(host) != nil {
		return host, nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return "", errBadHost
		}
	}
	if strings.Contains(host, "..") || host[0] == '.' || host[0] == '-' || host[len(host)-1] == '.' {
		return "", errBadHost
	}
	return host, nil
}

// methodParams splits a raw query into the _method parameters' values
// (isMethodParam, any encoding) and the query without them; found is nil
// when it has none.
func methodParams(rawQuery string) (kept string, found []string) {
	if rawQuery == "" {
		return rawQuery, nil
	}
	var rest []string
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(k); err == nil && isMethodParam(key) {
			val, _ := url.QueryUnescape(v)
			found = append(found, val)
			continue
		}
		rest = append(rest, part)
	}
	if found == nil {
		return rawQuery, nil
	}
	return strings.Join(rest, "&"), found
}

// isMethodParam reports whether a (decoded) query or body parameter name is
// _method as a framework reads it: any case, and with PHP's mangling of
// parameter names ('.', ' ' and '[' become '_'), so ".method", " method"
// and "[method" count too, and so does "_method" followed by a NUL byte and
// anything (PHP cuts the name there).
func isMethodParam(name string) bool {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i] // PHP reads a parameter name up to a NUL byte
	}
	if len(name) != len("_method") {
		return false
	}
	switch name[0] {
	case '_', '.', ' ', '[':
		return strings.EqualFold(name[1:], "method")
	}
	return false
}

// methodDenial applies checkMethod and methodOverride to a request: nil when
// its method is one the policy may decide on, else the refusal.
func methodDenial(r *http.Request, override []string, allowOverride bool, extra []string) *deny.Denial {
	err := checkMethod(r.Method, extra)
	if err == nil {
		err = methodOverride(r, override, allowOverride, extra)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errMethodSpelling):
		return &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_method"}
	default:
		return &deny.Denial{Status: http.StatusMethodNotAllowed, Reason: "request.method_not_allowed"}
	}
}

// upgradeRefused reports a protocol upgrade other than WebSocket. After a
// 101 answer ReverseProxy tunnels raw bytes, and an upstream that accepts
// h2c (or any other protocol) would then take requests Portero never
// sees ("h2c smuggling"); a WebSocket's handshake is a request the policy
// decides, and what follows is the app's own protocol.
func upgradeRefused(h http.Header) bool {
	vals := h.Values("Upgrade")
	if len(vals) == 0 {
		return false
	}
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			if !strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}
