package main

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"os/exec"
)

// oauth2ProxyBinary returns the oauth2-proxy to run: --oauth2-proxy, or
// one in PATH. bench/run builds it into bench/bin except in --smoke mode,
// where the rows are skipped when it is missing.
func (h *harness) oauth2ProxyBinary() (string, error) {
	name := h.o.oauth2Proxy
	if name == "" {
		name = "oauth2-proxy"
	}
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	return "", errors.New("oauth2-proxy is not built (bench/run builds it into bench/bin outside --smoke, about ten minutes the first time)")
}

// oauth2ProxyRow runs oauth2-proxy as the reverse proxy in front of the
// upstream, with the bench issuer as its OIDC provider. Its client id is
// the bench token's audience, so the same bearer token is accepted
// (--skip-jwt-bearer-tokens); with session, it signs in through the
// issuer's code flow and the row loads with the session cookie instead.
// Request logging is off, like Portero's decision log in the rows it is
// compared with.
func (h *harness) oauth2ProxyRow(session bool) func() (target, error) {
	return func() (target, error) {
		bin, err := h.oauth2ProxyBinary()
		if err != nil {
			return target{}, err
		}
		port := freePort()
		url := "http://" + hostport(port)
		p := h.start("oauth2-proxy", nil, bin,
			"--http-address="+hostport(port),
			"--upstream="+h.upstream+"/",
			"--provider=oidc",
			"--oidc-issuer-url="+h.issuer,
			"--client-id=portero",
			"--client-secret=bench",
			"--redirect-url="+url+"/oauth2/callback",
			"--code-challenge-method=S256",
			"--cookie-secret=0123456789abcdef0123456789abcdef",
			"--cookie-secure=false",
			"--email-domain=*",
			"--skip-jwt-bearer-tokens",
			"--set-xauthrequest",
			"--reverse-proxy",
			"--skip-provider-button",
			"--request-logging=false",
		)
		if err := waitStatus(url+"/ping", 200); err != nil {
			return target{}, fmt.Errorf("%v\n%s", err, p.tail())
		}
		header := "Authorization: " + h.auth
		if session {
			c, _, err := sessionCookie(url, page)
			if err != nil {
				return target{}, fmt.Errorf("sign in: %v\n%s", err, p.tail())
			}
			header = c
		}
		if err := waitStatusWith(url+page, 200, header); err != nil {
			return target{}, fmt.Errorf("%v\n%s", err, p.tail())
		}
		return target{url: url + page, headers: []string{header}, measured: []*proc{p}}, nil
	}
}

// oauth2ProxyVersion names the module version the binary was built from
// (go install leaves `oauth2-proxy --version` saying "undefined"), or "".
func (h *harness) oauth2ProxyVersion() string {
	bin, err := h.oauth2ProxyBinary()
	if err != nil {
		return ""
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("oauth2-proxy %s (built with %s)", info.Main.Version, info.GoVersion)
}
