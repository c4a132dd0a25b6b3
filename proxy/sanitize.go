package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// reservedHeaders decides which header names belong to Portero. Every one of
// them is removed from inbound requests before anything else looks at the
// request, and only these may be set from a policy decision. Names compare
// case-insensitively with '_' and '-' alike, because some upstream stacks
// (CGI, WSGI, PHP) map both to the same variable.
type reservedHeaders struct {
	prefixes []string // normalised, e.g. "x-portero-"
	names    map[string]bool
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

func normalizeHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// contains reports whether name is a header Portero may set.
func (r reservedHeaders) contains(name string) bool {
	n := normalizeHeaderName(name)
	for _, p := range r.prefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return r.names[n]
}

// strip removes every reserved header from h, whatever its spelling.
func (r reservedHeaders) strip(h http.Header) {
	for name := range h {
		if r.contains(name) {
			delete(h, name)
		}
	}
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
		case c < 0x20 || c == 0x7f || c == '\\':
			return "", nil, errBadPath
		case c == '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", nil, errBadPath
			}
			d := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			if d < 0x20 || d == 0x7f || d == '/' || d == '\\' || d == '.' || d == '%' {
				return "", nil, errBadPath
			}
			i += 2
		}
	}
	raw := strings.Split(escaped[1:], "/")
	out := make([]string, 0, len(raw))
	for _, seg := range raw {
		name, _, _ := strings.Cut(seg, ";")
		switch {
		case seg == "" || seg == ".":
			continue
		case seg == "..":
			if len(out) == 0 {
				return "", nil, errBadPath
			}
			out = out[:len(out)-1]
			continue
		case name == "." || name == "..":
			return "", nil, errBadPath
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
		if err != nil {
			return "", nil, errBadPath
		}
		segments[i] = s
	}
	return clean, segments, nil
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

// normalizeHost returns the request's host name in the one form routing and
// tenant extraction use: lower-case, without port or trailing dot.
func normalizeHost(hostport string) (string, error) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
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
