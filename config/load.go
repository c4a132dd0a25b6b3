package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes and validates a configuration file. All problems found
// are returned together as Errors.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, src)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates configuration source; file names it in errors
// and anchors relative paths.
func Parse(file string, src []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		e := &Error{File: file, Msg: "not valid YAML: " + err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Column = 1
			e.Msg = "not valid YAML: " + m[2]
		}
		return nil, Errors{e}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Msg: "the file is empty; see gateway.yaml in the Portero repository for a working example"}}
	}
	d := &decoder{file: file, positions: map[string]position{}}
	cfg := &Config{File: file}
	d.decode(root.Content[0], reflect.ValueOf(cfg).Elem(), "")
	// Validate even after decoding errors, so every error is reported at
	// once; a key that failed to decode is not reported again (see at).
	v := validator{decoder: d, dir: filepath.Dir(file)}
	v.validate(cfg)
	if len(d.errs) > 0 {
		// In the order of the file; errors without a position last.
		slices.SortStableFunc(d.errs, func(a, b *Error) int {
			switch {
			case a.Line == b.Line:
				return a.Column - b.Column
			case a.Line == 0:
				return 1
			case b.Line == 0:
				return -1
			}
			return a.Line - b.Line
		})
		return nil, d.errs
	}
	return cfg, nil
}

// validator applies defaults and checks values that decoded but make no sense.
type validator struct {
	*decoder
	dir string
}

// at reports an error at key's value, or at its nearest parent that appears in
// the file (for a missing value).
func (v validator) at(key, format string, args ...any) {
	for _, prev := range v.errs {
		if prev.Key == key {
			return // its value did not decode: that error says it already
		}
	}
	e := &Error{File: v.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	for k := key; ; {
		if p, ok := v.positions[k]; ok {
			e.Line, e.Column = p.line, p.column
			break
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	v.errs = append(v.errs, e)
}

func (v validator) validate(c *Config) {
	v.listen(&c.Listen)
	if len(c.Routes) == 0 {
		v.at("routes", "at least one route is required, e.g. routes: [{name: app, upstream: http://127.0.0.1:3000}]")
	}
	names := map[string]bool{}
	for i := range c.Routes {
		v.route(&c.Routes[i], fmt.Sprintf("routes[%d]", i), names)
	}
	v.tenant(c.Tenant)
	v.oidc(&c.OIDC)
	v.policy(&c.Policy)
	v.opaManagement(&c.Policy)
	switch c.Headers.Profile {
	case "":
		c.Headers.Profile = ProfilePortero
	case ProfilePortero, ProfileKubernetes:
	default:
		v.at("headers.profile", "unknown profile %q; expected portero or kubernetes", c.Headers.Profile)
	}
	for i, n := range c.Headers.Strip {
		if !headerPattern.MatchString(n) {
			v.at(fmt.Sprintf("headers.strip[%d]", i), "%q is not a header name, or a prefix ending in * such as X-Internal-*", n)
		}
	}
	v.assertion(&c.Assertion)
	v.browserLogin(c)
	v.access(&c.Access)
	v.master(c)
	v.limits(&c.Limits)
	v.forwardAuth(&c.ForwardAuth, c.Listen)
	v.tracing(&c.Tracing)
	v.mail(c)
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		v.at("log.level", "unknown level %q; expected debug, info, warn or error", c.Log.Level)
	}
	v.decisionInputs(&c.Log.DecisionInputs)
	if c.Log.DecisionInputs.Enabled && (c.Log.Level == "warn" || c.Log.Level == "error") {
		v.at("log.decision_inputs.enabled", "decision lines are logged at info, so log.level %s records no input; set log.level: info, or turn recording off", c.Log.Level)
	}
}

// inputRoots are the top-level keys of the policy input, where a mask path
// starts.
var inputRoots = []string{"request", "route", "tenant", "identity", "access", "management", "gateway", "now"}

func (v validator) decisionInputs(d *DecisionInputs) {
	if s := d.Sample; s != nil && !(*s >= 0 && *s <= 1) {
		v.at("log.decision_inputs.sample", "must be between 0 and 1 (the fraction of decisions whose input is recorded), got %v", *s)
	}
	d.MaskPaths = nil
	for i, m := range d.Mask {
		path := strings.Split(m, ".")
		if slices.Contains(path, "") || !slices.Contains(inputRoots, path[0]) {
			v.at(fmt.Sprintf("log.decision_inputs.mask[%d]", i), "%q is not a path into the policy input; give dotted keys from one of %s, such as identity.claims.phone or request.headers.x-api-key", m, strings.Join(inputRoots, ", "))
			continue
		}
		if len(path) > 2 && path[0] == "request" && path[1] == "headers" {
			path[2] = strings.ToLower(path[2]) // the input's header names are lower case
		}
		d.MaskPaths = append(d.MaskPaths, path)
	}
}

func (v validator) forwardAuth(f *ForwardAuth, l Listen) {
	if !f.On() {
		if len(f.TrustedProxies) > 0 {
			v.at("forward_auth", "trusted_proxies is set but no endpoint is: add listen (host:port), path (e.g. /.portero/auth) or envoy (host:port)")
		}
		return
	}
	for key, addr := range map[string]string{"forward_auth.listen": f.Listen, "forward_auth.envoy": f.Envoy} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			v.at(key, "expected host:port such as 127.0.0.1:9091, got %q", addr)
		} else if addr == l.Public || addr == l.Ops {
			v.at(key, "%q is already listen.public or listen.ops; give forward-auth an address of its own, or use forward_auth.path on the public listener", addr)
		}
	}
	if f.Listen != "" && f.Listen == f.Envoy {
		v.at("forward_auth.envoy", "%q is also forward_auth.listen; the HTTP and gRPC endpoints need an address each", f.Envoy)
	}
	if f.Path != "" && (!strings.HasPrefix(f.Path, "/.portero/") || strings.ContainsAny(f.Path, "?#%") || strings.Contains(f.Path, "//") || strings.HasSuffix(f.Path, "/")) {
		v.at("forward_auth.path", "%q must be a plain path under /.portero/, such as /.portero/auth (no route can claim it there)", f.Path)
	}
	switch {
	case f.Path != "" && f.Secret == "":
		v.at("forward_auth.secret", "required with forward_auth.path: the front proxy passes clients' /.portero/ requests to the public listener from its own address, so only a secret tells its checks apart; set secret: ${PORTERO_FORWARD_AUTH_SECRET} (32 characters or more) and send it in X-Portero-Forward-Auth-Secret from the check location, or use forward_auth.listen on an address clients cannot reach")
	case f.Secret != "" && len(f.Secret) < 32:
		v.at("forward_auth.secret", "must be at least 32 characters (e.g. openssl rand -hex 32), got %d", len(f.Secret))
	}
	if len(f.TrustedProxies) == 0 {
		v.at("forward_auth.trusted_proxies", "required: the addresses of the front proxies (CIDRs, e.g. [127.0.0.1/32, 10.0.0.0/8]); the headers that describe the original request are believed only from them")
	}
	f.Trusted = nil
	for i, c := range f.TrustedProxies {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			if a, aerr := netip.ParseAddr(c); aerr == nil {
				p, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			v.at(fmt.Sprintf("forward_auth.trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8 or an address such as 127.0.0.1", c)
			continue
		}
		if p.Bits() == 0 {
			v.at(fmt.Sprintf("forward_auth.trusted_proxies[%d]", i), "%q trusts every address: anyone could describe any request as theirs; list the front proxies' addresses", c)
			continue
		}
		f.Trusted = append(f.Trusted, p.Masked())
	}
}

func (v validator) listen(l *Listen) {
	l.Public = orDefault(l.Public, ":8080")
	l.Ops = orDefault(l.Ops, "127.0.0.1:9090")
	for key, addr := range map[string]string{"listen.public": l.Public, "listen.ops": l.Ops} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			v.at(key, "expected host:port such as :8080 or 127.0.0.1:9090, got %q", addr)
		}
	}
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	switch {
	case l.MaxConnections == 0:
		l.MaxConnections = 10000
	case l.MaxConnections < 0 || l.MaxConnections > 1000000:
		v.at("listen.max_connections", "must be between 1 and 1000000 (0 or absent: 10000), got %d", l.MaxConnections)
	}
	if l.ClientConnections.PerMinute == 0 {
		l.ClientConnections.PerMinute = 3000
	} else if l.ClientConnections.PerMinute < 0 {
		v.at("listen.client_connections.per_minute", "must be 1 or more (0 or absent: 3000), got %d", l.ClientConnections.PerMinute)
	}
	if l.ClientConnections.Burst == 0 {
		l.ClientConnections.Burst = 500
	} else if l.ClientConnections.Burst < 0 {
		v.at("listen.client_connections.burst", "must be 1 or more (0 or absent: 500), got %d", l.ClientConnections.Burst)
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = 120 * time.Second
	}
	if l.ShutdownTimeout == 0 {
		l.ShutdownTimeout = 15 * time.Second
	}
	v.listenTLS(l.TLS)
}

var headerPattern = regexp.MustCompile("^[A-Za-z0-9!#$%&'+.^_`|~-]+\\*?$")

var methodToken = regexp.MustCompile(`^[A-Z][A-Z0-9_-]{0,31}$`)

var routeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
var hostName = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (v validator) route(r *Route, key string, names map[string]bool) {
	switch {
	case r.Name == "":
		v.at(key+".name", "a route needs a name (lower-case letters, digits, - and _); it labels metrics and logs")
	case !routeName.MatchString(r.Name):
		v.at(key+".name", "%q is not a valid name; use lower-case letters, digits, - and _", r.Name)
	case names[r.Name]:
		v.at(key+".name", "route name %q is used twice; names must be unique", r.Name)
	}
	names[r.Name] = true
	for i, h := range r.Hosts {
		if !hostName.MatchString(h) {
			v.at(fmt.Sprintf("%s.hosts[%d]", key, i), "%q is not a lower-case host name or a wildcard like *.apps.example.com", h)
		}
	}
	if r.PathPrefix == "" {
		r.PathPrefix = "/"
	} else if !strings.HasPrefix(r.PathPrefix, "/") {
		v.at(key+".path_prefix", "%q must start with /", r.PathPrefix)
	}
	if r.Upstream == "" {
		v.at(key+".upstream", "an upstream URL is required, such as http://127.0.0.1:3000")
	} else if u, err := url.Parse(r.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.at(key+".upstream", "%q is not an absolute http:// or https:// URL", r.Upstream)
	} else {
		r.UpstreamURL = u
	}
	v.upstreamTLS(r, key)
	if r.Timeout == 0 {
		r.Timeout = 30 * time.Second
	}
	for i, m := range r.ExtraMethods {
		if !methodToken.MatchString(m) {
			v.at(fmt.Sprintf("%s.extra_methods[%d]", key, i), "%q is not an upper-case method name such as PROPFIND", m)
		}
	}
	if r.Body.Inspected() {
		const maxCap = 10 << 20
		switch {
		case r.Body.MaxBytes == 0:
			r.Body.MaxBytes = 64 << 10
		case r.Body.MaxBytes < 0 || r.Body.MaxBytes > maxCap:
			v.at(key+".body.max_bytes", "must be between 1 and %d bytes, got %d", maxCap, r.Body.MaxBytes)
		}
	}
}

func (v validator) policy(p *Policy) {
	dirOK := false
	if p.Dir != "" {
		p.Dir = v.path(p.Dir)
		if st, err := os.Stat(p.Dir); err != nil || !st.IsDir() {
			v.at("policy.dir", "%q is not a directory; give a directory of .rego files, or remove the key to use the embedded policy", p.Dir)
		} else {
			dirOK = true
		}
	}
	shadowOK := false
	if s := p.ShadowSample; s != nil && !(*s > 0 && *s <= 1) {
		v.at("policy.shadow_sample", "must be above 0 and at most 1 (the fraction of decisions the shadow policy also makes), got %v; remove shadow_dir to turn the shadow off", *s)
	}
	if p.ShadowDir != "" {
		p.ShadowDir = v.path(p.ShadowDir)
		if st, err := os.Stat(p.ShadowDir); err != nil || !st.IsDir() {
			v.at("policy.shadow_dir", "%q is not a directory; give a directory of .rego files holding the candidate policy, or remove the key", p.ShadowDir)
		} else if p.Dir != "" && filepath.Clean(p.ShadowDir) == filepath.Clean(p.Dir) {
			v.at("policy.shadow_dir", "%q is policy.dir itself; a shadow policy is a candidate in another directory (a copy of policy.dir with your change)", p.ShadowDir)
		} else {
			shadowOK = true
		}
	}
	if p.RequireTests != nil && *p.RequireTests {
		// The embedded policy has tests; a directory must too.
		switch {
		case dirOK && !hasRegoTests(p.Dir):
			v.at("policy.require_tests", "%q has no *_test.rego files, so every load would be refused; add the policy's tests, or set require_tests: false", p.Dir)
		case shadowOK && !hasRegoTests(p.ShadowDir):
			v.at("policy.require_tests", "%q (policy.shadow_dir) has no *_test.rego files, so the shadow policy would never load; add its tests, or set require_tests: false", p.ShadowDir)
		}
	}
}

// hasRegoTests reports whether a policy directory holds a *_test.rego file
// (hidden directories aside, as the policy loader skips them).
func hasRegoTests(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil || found:
			return filepath.SkipAll
		case d.IsDir() && p != dir && strings.HasPrefix(d.Name(), "."):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(d.Name(), "_test.rego") && !strings.HasPrefix(d.Name(), "."):
			found = true
		}
		return nil
	})
	return found
}

func (v validator) tenant(t Tenant) {
	if t.Host != "" {
		labels := strings.Split(t.Host, ".")
		n := 0
		for _, l := range labels {
			if l == "{tenant}" {
				n++
			} else if !hostName.MatchString(l) || strings.HasPrefix(l, "*") {
				n = -100
			}
		}
		if n != 1 {
			v.at("tenant.host", "%q must be a lower-case host name with {tenant} as exactly one whole label, e.g. {tenant}.apps.example.com", t.Host)
		}
	}
	if t.Path != "" {
		segs := strings.Split(strings.Trim(t.Path, "/"), "/")
		n := 0
		for _, s := range segs {
			if s == "{tenant}" {
				n++
			} else if s == "" || strings.ContainsAny(s, "{}%") {
				n = -100
			}
		}
		if !strings.HasPrefix(t.Path, "/") || n != 1 {
			v.at("tenant.path", "%q must start with / and hold {tenant} as exactly one whole segment, e.g. /t/{tenant}/", t.Path)
		}
	}
}

func (v validator) oidc(o *OIDC) {
	if o.Issuer == "" {
		v.at("oidc.issuer", "the OpenID provider's issuer URL is required, e.g. https://login.example.com/realms/acme")
	} else if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		v.at("oidc.issuer", "%q must be an https:// URL (plain http is allowed only for localhost)", o.Issuer)
	}
	if len(o.Audiences) == 0 {
		v.at("oidc.audiences", "list the audiences a token must carry (at least one), e.g. [portero]")
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = []string{"RS256", "ES256", "PS256"}
	}
	for i, alg := range o.Algorithms {
		switch alg {
		case "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA":
		default:
			v.at(fmt.Sprintf("oidc.algorithms[%d]", i), "%q is not allowed; use asymmetric algorithms only (RS256, ES256, PS256, EdDSA, ...): 'none' and HMAC let a forger sign tokens", alg)
		}
	}
	c := &o.Claims
	c.Subject = orDefault(c.Subject, "sub")
	c.Email = orDefault(c.Email, "email")
	c.Roles = orDefault(c.Roles, "roles")
	c.Groups = orDefault(c.Groups, "groups")
	c.Org = orDefault(c.Org, "org")
	c.Tenants = orDefault(c.Tenants, "tenants")
	switch {
	case o.ClockSkew == 0:
		o.ClockSkew = 60 * time.Second
	case o.ClockSkew < 0 || o.ClockSkew > 10*time.Minute:
		v.at("oidc.clock_skew", "must be between 1s and 10m, got %s", o.ClockSkew)
	}
	if o.TokenCacheSize == 0 {
		o.TokenCacheSize = 10000
	} else if o.TokenCacheSize < 0 {
		v.at("oidc.token_cache_size", "must be 0 (default 10000) or more, got %d", o.TokenCacheSize)
	}
}

func (v validator) assertion(a *Assertion) {
	if a.KeyFile != "" {
		a.KeyFile = v.path(a.KeyFile)
		if _, err := os.Stat(a.KeyFile); err != nil {
			v.at("assertion.key_file", "cannot read %q: %v (create one with: portero keygen > %s)", a.KeyFile, errors.Unwrap(err), a.KeyFile)
		}
	}
	a.Header = orDefault(a.Header, "X-Portero-Assertion")
	a.Issuer = orDefault(a.Issuer, "portero")
	a.Audience = orDefault(a.Audience, "portero-upstream")
	if a.TTL == 0 {
		a.TTL = time.Minute
	}
}

// sessionKeys checks every session key given, whether or not browser
// sign-in is on: a key that would be refused later must not pass now.
func (v validator) sessionKeys(s *Session) {
	for i, k := range s.Keys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(k)
		}
		if err != nil || len(b) != 32 {
			v.at(fmt.Sprintf("session.keys[%d]", i), "must be 32 random bytes, base64-encoded (head -c 32 /dev/urandom | base64)")
			continue
		}
		s.KeyBytes = append(s.KeyBytes, b)
	}
}

func (v validator) browserLogin(c *Config) {
	o, s := &c.OIDC, &c.Session
	s.CookieName = orDefault(s.CookieName, "portero_session")
	if s.Lifetime == 0 {
		s.Lifetime = 12 * time.Hour
	}
	if !cookieName.MatchString(s.CookieName) {
		v.at("session.cookie_name", "%q is not a valid cookie name; use letters, digits, - and _", s.CookieName)
	}
	v.sessionKeys(s)
	if o.ClientID == "" {
		return
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"openid", "email", "profile", "offline_access"}
	}
	if o.RedirectURL == "" {
		v.at("oidc.redirect_url", "browser sign-in (oidc.client_id) needs the callback URL registered with the IdP, e.g. https://apps.example.com/.portero/callback")
	} else if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" || u.Path != "/.portero/callback" ||
		!(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		v.at("oidc.redirect_url", "%q must be an https:// URL ending in /.portero/callback (plain http only for localhost)", o.RedirectURL)
	} else {
		s.Secure = u.Scheme == "https"
		if o.PostLogoutRedirectURL == "" {
			o.PostLogoutRedirectURL = u.Scheme + "://" + u.Host + "/"
		}
	}
	if len(s.Keys) == 0 {
		v.at("session.keys", "browser sign-in needs at least one session key: 32 random bytes, base64 (head -c 32 /dev/urandom | base64)")
	}
	if s.Domain != "" && !hostName.MatchString(strings.TrimPrefix(s.Domain, ".")) {
		v.at("session.domain", "%q is not a domain name such as apps.example.com", s.Domain)
	}
	for i, h := range c.Login.AllowedRedirectHosts {
		if !hostName.MatchString(h) {
			v.at(fmt.Sprintf("login.allowed_redirect_hosts[%d]", i), "%q is not a lower-case host name or a wildcard like *.apps.example.com", h)
		}
	}
}

func (v validator) master(c *Config) {
	m := &c.Master
	if !m.Enabled() {
		return
	}
	if c.Access.Store == "" {
		key := "master_access.enabled"
		if m.AuditLog != "" {
			key = "master_access.audit_log"
		}
		v.at(key, "master access needs the access store (it keeps the audit trail): set access.store too")
	}
	if m.AuditLog != "" {
		m.AuditLog = v.path(m.AuditLog)
		if st, err := os.Stat(filepath.Dir(m.AuditLog)); err != nil || !st.IsDir() {
			v.at("master_access.audit_log", "the directory of %q does not exist; create it or point to another file", m.AuditLog)
		}
	}
	switch {
	case m.ReasonMinLength == 0:
		m.ReasonMinLength = 10
	case m.ReasonMinLength < 0 || m.ReasonMinLength > 500:
		v.at("master_access.reason_min_length", "must be between 1 and 500, got %d", m.ReasonMinLength)
	}
	if m.DefaultDuration == 0 {
		m.DefaultDuration = 30 * time.Minute
	}
	if m.MaxDuration == 0 {
		m.MaxDuration = 4 * time.Hour
	}
	switch {
	case m.DefaultDuration < 0 || m.MaxDuration < 0:
		v.at("master_access.max_duration", "durations must be positive")
	case m.DefaultDuration > m.MaxDuration:
		v.at("master_access.default_duration", "%v is longer than max_duration %v", m.DefaultDuration, m.MaxDuration)
	}
	if m.AdminURL == "" {
		m.AdminURL = "/"
	} else if !strings.HasPrefix(m.AdminURL, "/") || strings.HasPrefix(m.AdminURL, "//") {
		if u, err := url.Parse(m.AdminURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.at("master_access.admin_url", "%q must be a path on this site (/admin) or an http(s) URL", m.AdminURL)
		}
	}
	v.webhook("master_access.webhook", m.Webhook)
	for tenant, hook := range m.TenantWebhooks {
		v.webhook("master_access.tenant_webhooks."+tenant, hook)
	}
	if m.WebhookTimeout == 0 {
		m.WebhookTimeout = 5 * time.Second
	}
}

func (v validator) webhook(key, hook string) {
	if hook == "" {
		return
	}
	if u, err := url.Parse(hook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.at(key, "%q is not an http(s) URL", hook)
	}
}

func (v validator) access(a *Access) {
	switch {
	case strings.HasPrefix(a.Store, "postgres://") || strings.HasPrefix(a.Store, "postgresql://"):
		v.postgres(a)
	case a.Store != "":
		a.Store = v.path(a.Store)
		if st, err := os.Stat(filepath.Dir(a.Store)); err != nil || !st.IsDir() {
			v.at("access.store", "the directory of %q does not exist; create it or point to another file", a.Store)
		}
	}
	switch {
	case a.CacheSize == 0:
		a.CacheSize = 20000
	case a.CacheSize < 0:
		v.at("access.cache_size", "must be positive, got %d", a.CacheSize)
	}
	if a.WatchInterval == 0 {
		a.WatchInterval = 250 * time.Millisecond
	}
	switch {
	case a.CheckpointInterval == 0:
		a.CheckpointInterval = time.Minute
	case a.CheckpointInterval < 0:
		v.at("access.checkpoint_interval", "must be a positive duration, got %v", a.CheckpointInterval)
	}
	switch {
	case a.InvitationTTL == 0:
		a.InvitationTTL = 14 * 24 * time.Hour
	case a.InvitationTTL < time.Minute:
		v.at("access.invitation_ttl", "must be a duration of a minute or more, got %v", a.InvitationTTL)
	}
}

// postgres checks a PostgreSQL store's URL and pool, and reads its
// password from the environment.
func (v validator) postgres(a *Access) {
	u, err := url.Parse(a.Store)
	switch {
	case err != nil:
		v.at("access.store", "not a PostgreSQL URL: %v; write postgres://user@host:5432/database", err)
		return
	case u.Host == "":
		v.at("access.store", "the PostgreSQL URL names no host; write postgres://user@host:5432/database")
	case strings.Trim(u.Path, "/") == "":
		v.at("access.store", "the PostgreSQL URL names no database; write postgres://user@host:5432/database")
	}
	if _, has := u.User.Password(); has {
		v.at("access.store", "the PostgreSQL URL carries a password; remove it and put the password in the environment variable named by access.password_env (default PORTERO_DB_PASSWORD)")
	}
	if a.PasswordEnv == "" {
		a.PasswordEnv = "PORTERO_DB_PASSWORD"
	}
	a.Password = os.Getenv(a.PasswordEnv)
	p := &a.Pool
	switch {
	case p.MaxOpen == 0:
		p.MaxOpen = 20
	case p.MaxOpen < 0 || p.MaxOpen > 1000:
		v.at("access.pool.max_open", "must be between 1 and 1000, got %d", p.MaxOpen)
	}
	switch {
	case p.MaxIdle == 0:
		p.MaxIdle = max(1, p.MaxOpen/2)
	case p.MaxIdle < 0 || p.MaxIdle > p.MaxOpen:
		v.at("access.pool.max_idle", "must be between 1 and max_open (%d), got %d", p.MaxOpen, p.MaxIdle)
	}
	switch {
	case p.MaxLifetime == 0:
		p.MaxLifetime = 30 * time.Minute
	case p.MaxLifetime < time.Second:
		v.at("access.pool.max_lifetime", "must be at least 1s, got %v", p.MaxLifetime)
	}
}

func (v validator) limits(l *Limits) {
	for _, e := range []struct {
		key string
		r   Rate
	}{{"sign_in", l.SignIn}, {"callback", l.Callback}, {"master_access", l.MasterAccess},
		{"management_writes", l.ManagementWrites}, {"audited_refusals", l.AuditedRefusals}} {
		key, r := e.key, e.r
		if r.PerMinute < 0 || r.PerMinute > 1000000 {
			v.at("limits."+key+".per_minute", "must be between 1 and 1000000 (0 or absent: the default), got %d", r.PerMinute)
		}
		if r.Burst < 0 || r.Burst > 100000 {
			v.at("limits."+key+".burst", "must be between 1 and 100000 (0 or absent: the default), got %d", r.Burst)
		}
	}
	if l.MaxClients < 0 || l.MaxClients > 10000000 {
		v.at("limits.max_clients", "must be between 1 and 10000000 (0 or absent: 10000), got %d", l.MaxClients)
	}
	*l = l.WithDefaults()
}

var cookieName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// path makes a relative path relative to the config file's directory.
func (v validator) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.dir, p)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
