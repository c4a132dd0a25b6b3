package authn

import (
	"net/url"
	"strings"
)

// SafeReturnTarget is the single rule for where a browser may be sent after
// sign-in or sign-out (the "rd" parameter). It accepts a relative path on the
// same site, or an absolute http(s) URL whose host is in allowedHosts (exact
// names, or "*.example.com" for one label). Everything else is refused:
// scheme-relative "//evil", "/\evil", "https:evil", userinfo tricks, control
// characters, and the same again percent-encoded.
func SafeReturnTarget(rd string, allowedHosts []string) (string, bool) {
	if rd == "" {
		return "/", true
	}
	if len(rd) > 2048 || !cleanChars(rd) {
		return "", false
	}
	// Browsers decode before they resolve in places; judge the decoded form
	// too, so an encoded trick is refused like the plain one.
	decoded, err := url.PathUnescape(rd)
	if err != nil || !cleanChars(decoded) {
		return "", false
	}
	for _, s := range []string{rd, decoded} {
		if strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.Contains(s, "\\") {
			return "", false
		}
	}
	if strings.HasPrefix(rd, "/") {
		u, err := url.Parse(rd)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(decoded, "//") {
			return "", false
		}
		return rd, true
	}
	u, err := url.Parse(rd)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	if !hostAllowed(strings.ToLower(u.Hostname()), allowedHosts) {
		return "", false
	}
	return u.String(), true
}

func cleanChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func hostAllowed(host string, allowed []string) bool {
	if host == "" || strings.HasSuffix(host, ".") {
		return false
	}
	for _, a := range allowed {
		if suffix, ok := strings.CutPrefix(a, "*"); ok {
			label, found := strings.CutSuffix(host, suffix)
			if found && label != "" && !strings.Contains(label, ".") {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}
