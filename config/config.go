// Package config parses and validates gateway.yaml into typed structs. The rest
// of Portero never sees raw YAML: every value here has been checked, and every
// error names the file, line and column of the offending value.
package config

import (
	"net/netip"
	"net/url"
	"time"
)

// Config is a validated gateway configuration.
type Config struct {
	// File is the path the configuration was read from.
	File string `yaml:"-"`

	Listen    Listen    `yaml:"listen"`
	Routes    []Route   `yaml:"routes"`
	Tenant    Tenant    `yaml:"tenant"`
	OIDC      OIDC      `yaml:"oidc"`
	Policy    Policy    `yaml:"policy"`
	Headers   Headers   `yaml:"headers"`
	Assertion Assertion `yaml:"assertion"`
	Session   Session   `yaml:"session"`
	Login     Login     `yaml:"login"`
	Access    Access    `yaml:"access"`
	Master    Master    `yaml:"master_access"`
	// Console is the admin console's own settings.
	Console Console `yaml:"console"`
	Limits  Limits  `yaml:"limits"`
	Log     Log     `yaml:"log"`
	// ForwardAuth answers another proxy's "may this request pass?" (nginx
	// auth_request, Traefik forwardAuth, Caddy forward_auth, Envoy
	// ext_authz) with the same decision the proxy path makes.
	ForwardAuth ForwardAuth `yaml:"forward_auth"`
	// Tracing exports OpenTelemetry traces (OTLP/HTTP); off by default.
	Tracing Tracing `yaml:"tracing"`
	// Mail sends Portero's own e-mail from the store's outbox; off unless
	// mail.smtp.host is set.
	Mail Mail `yaml:"mail"`
}

// Console is the admin console's own settings.
type Console struct {
	// PasswordResetURL is the identity provider's page where a user resets
	// their password or manages their account (Portero keeps no
	// passwords). When set, the console's tenant menu offers "Reset
	// password", which gives the owner's link: {email} and {user} in it
	// are replaced by the owner's e-mail and id (URL-escaped).
	PasswordResetURL string `yaml:"password_reset_url"`
}

// ForwardAuth is the decision endpoint for a front proxy that forwards the
// request itself. It is off unless at least one of Listen, Path and Envoy is
// set, and then TrustedProxies is required.
type ForwardAuth struct {
	// Listen is a listener of its own (host:port) where every path answers
	// forward-auth checks.
	Listen string `yaml:"listen"`
	// Path is a path on the public listener that answers them (under
	// /.portero/, e.g. /.portero/auth).
	Path string `yaml:"path"`
	// Envoy is a listener (host:port) for Envoy's ext_authz gRPC service
	// (envoy.service.auth.v3.Authorization).
	Envoy string `yaml:"envoy"`
	// Secret, when set, must come with every check (header
	// X-Portero-Forward-Auth-Secret, set by the front proxy's check
	// location). Required with Path: on the public listener it is what
	// tells the front proxy's check from a client's request that the front
	// proxy passes on to /.portero/ from the same address. At least 32
	// characters; give it from the environment (${PORTERO_FORWARD_AUTH_SECRET}).
	Secret string `yaml:"secret"`
	// TrustedProxies are the CIDRs a check may come from. The X-Forwarded-*
	// and X-Original-* headers that describe the original request are
	// believed only from these; a check from anywhere else is refused.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Trusted is TrustedProxies parsed.
	Trusted []netip.Prefix `yaml:"-"`
}

// On says whether any forward-auth endpoint is configured.
func (f ForwardAuth) On() bool { return f.Listen != "" || f.Path != "" || f.Envoy != "" }

// Trusts says whether a check from addr may be believed.
func (f ForwardAuth) Trusts(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range f.Trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Limits bounds how often one client may try the control endpoints, with a
// token bucket per client (golang.org/x/time/rate): over its limit a client
// gets 429 with Retry-After, counted in portero_rate_limited_total{endpoint}.
type Limits struct {
	// SignIn is per client IP (IPv6 per /64): /.portero/login, which starts
	// the code flow.
	SignIn Rate `yaml:"sign_in"`
	// Callback is per client IP: /.portero/callback.
	Callback Rate `yaml:"callback"`
	// MasterAccess is per user: attempts to start master access, checked
	// before anything is decided or written to the audit log.
	MasterAccess Rate `yaml:"master_access"`
	// ManagementWrites is per user: management API writes and console forms.
	ManagementWrites Rate `yaml:"management_writes"`
	// AuditedRefusals is for everyone together: refused master-access
	// attempts written to the fsync'ed audit log. Refusals beyond it are
	// logged and counted (portero_master_access_refusals_suppressed_total)
	// but not written, so no one can flood the audit log.
	AuditedRefusals Rate `yaml:"audited_refusals"`
	// MaxClients bounds the buckets kept per endpoint (default 10000).
	// Buckets that are full again are dropped first; while every one is in
	// use, new clients share one bucket.
	MaxClients int `yaml:"max_clients"`
}

// Rate is a token bucket: PerMinute tokens a minute, at most Burst at once.
type Rate struct {
	PerMinute int `yaml:"per_minute"`
	Burst     int `yaml:"burst"`
}

// DefaultLimits are the limits of keys gateway.yaml leaves out.
var DefaultLimits = Limits{
	SignIn:           Rate{PerMinute: 30, Burst: 20},
	Callback:         Rate{PerMinute: 30, Burst: 20},
	MasterAccess:     Rate{PerMinute: 10, Burst: 10},
	ManagementWrites: Rate{PerMinute: 120, Burst: 60},
	AuditedRefusals:  Rate{PerMinute: 30, Burst: 30},
	MaxClients:       10000,
}

// WithDefaults fills the limits left at zero from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	for _, p := range []struct{ v, def *Rate }{
		{&l.SignIn, &d.SignIn}, {&l.Callback, &d.Callback}, {&l.MasterAccess, &d.MasterAccess},
		{&l.ManagementWrites, &d.ManagementWrites}, {&l.AuditedRefusals, &d.AuditedRefusals},
	} {
		if p.v.PerMinute == 0 {
			p.v.PerMinute = p.def.PerMinute
		}
		if p.v.Burst == 0 {
			p.v.Burst = min(p.def.Burst, max(p.v.PerMinute, 1))
		}
	}
	if l.MaxClients == 0 {
		l.MaxClients = d.MaxClients
	}
	return l
}

// Access configures the access store: tenants, members, partners and
// delegations.
type Access struct {
	// Store is the SQLite file, or a postgres:// URL of a PostgreSQL
	// database shared by several replicas; empty means no store
	// (membership then comes from token claims).
	Store string `yaml:"store"`
	// PasswordEnv names the environment variable holding the PostgreSQL
	// password (the URL must not carry one). Default PORTERO_DB_PASSWORD;
	// unset or empty: no password (trust or certificate authentication).
	PasswordEnv string `yaml:"password_env"`
	// Password is read from PasswordEnv at load; never from the file.
	Password string `yaml:"-"`
	// Pool bounds the PostgreSQL connections of this replica.
	Pool Pool `yaml:"pool"`
	// CacheSize bounds how many (user, tenant) lookups are kept in memory.
	CacheSize int `yaml:"cache_size"`
	// WatchInterval is how often writes by other processes on the same file
	// (portero admin) are looked for.
	WatchInterval time.Duration `yaml:"watch_interval"`
	// CheckpointInterval is how often the audit trail's head is signed
	// (when it moved); it is signed at shutdown too.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// InvitationTTL is how long an invitation by e-mail (a member's) or
	// to a partner organisation can be answered (default 14 days); a
	// resend renews it.
	InvitationTTL time.Duration `yaml:"invitation_ttl"`
}

// Pool bounds a replica's connections to a PostgreSQL store.
type Pool struct {
	// MaxOpen is the most connections open at once (default 20); one
	// more listens for other replicas' writes.
	MaxOpen int `yaml:"max_open"`
	// MaxIdle is how many stay open between bursts (default MaxOpen/2).
	MaxIdle int `yaml:"max_idle"`
	// MaxLifetime is how long one connection is reused (default 30m).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

// Master configures master access: system admins entering a tenant's app
// as the tenant, for support. It needs the access store, which keeps the
// audit trail.
type Master struct {
	// Enable turns master access on.
	Enable bool `yaml:"enabled"`
	// AuditLog is a JSON lines export of the audit trail kept in the store
	// (every record, hash-chained, mirrored as it commits and caught up at
	// start). Setting it also turns master access on, as it did when the
	// file was the trail itself.
	AuditLog string `yaml:"audit_log"`
	// ReasonMinLength is the shortest reason accepted (default 10).
	ReasonMinLength int `yaml:"reason_min_length"`
	// DefaultDuration (30m) and MaxDuration (4h) bound a session.
	DefaultDuration time.Duration `yaml:"default_duration"`
	MaxDuration     time.Duration `yaml:"max_duration"`
	// AdminURL is where "return to the admin panel" goes (default "/").
	AdminURL string `yaml:"admin_url"`
	// Webhook is called on start and end, for every tenant or for those in
	// TenantWebhooks (which take precedence).
	Webhook        string            `yaml:"webhook"`
	TenantWebhooks map[string]string `yaml:"tenant_webhooks"`
	// WebhookTimeout bounds one call (default 5s); failed calls are retried
	// 3 times with backoff, in the background.
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
}

// Enabled says whether master access is configured.
func (m Master) Enabled() bool { return m.Enable || m.AuditLog != "" }

// Listen holds the two listeners: the public proxy and the ops endpoints.
type Listen struct {
	Public            string        `yaml:"public"`
	Ops               string        `yaml:"ops"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	// MaxConnections bounds the open client connections of the public
	// listener (default 10000); one more is answered 503 and closed.
	MaxConnections int `yaml:"max_connections"`
	// ClientConnections is a token bucket of new connections per client
	// address (IPv6 per /64): over it, a new connection is answered 503 and
	// closed (default 3000 a minute, 500 at once).
	ClientConnections Rate `yaml:"client_connections"`
	// TLS serves the public listener over HTTPS (see ListenTLS); absent,
	// it speaks plain HTTP/1.1.
	TLS *ListenTLS `yaml:"tls"`
	// Pprof serves Go's profiles under /debug/pprof/ on the ops listener
	// (off by default: a profile costs CPU and shows the heap).
	Pprof bool `yaml:"pprof"`
}

// Route sends the requests whose host and path match to one upstream.
type Route struct {
	Name string `yaml:"name"`
	// Hosts are exact host names or one-label wildcards ("*.apps.example.com").
	// Empty means any host.
	Hosts []string `yaml:"hosts"`
	// PathPrefix matches whole segments: "/api" matches "/api" and "/api/x",
	// not "/apix".
	PathPrefix string `yaml:"path_prefix"`
	Upstream   string `yaml:"upstream"`
	// API routes answer unauthenticated requests with 401 and errors as JSON.
	API bool `yaml:"api"`
	// PreserveHost forwards the client's Host header instead of the upstream's.
	PreserveHost bool `yaml:"preserve_host"`
	// Timeout bounds the wait for the upstream's response headers.
	Timeout time.Duration `yaml:"timeout"`
	Body    Body          `yaml:"body"`
	// ExtraMethods are methods besides the standard ones (GET, HEAD, POST,
	// PUT, PATCH, DELETE, OPTIONS) this route accepts, upper case (e.g.
	// PROPFIND for WebDAV). Any other method is refused with 405.
	ExtraMethods []string `yaml:"extra_methods"`
	// MethodOverride lets clients of this route tunnel a method through POST
	// (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override or the
	// _method query parameter): Portero forwards the overridden method
	// itself and the policy decides on it. Off, those headers and the
	// parameter are removed.
	MethodOverride bool `yaml:"method_override"`
	// TLS is how Portero verifies an https upstream and which client
	// certificate it shows (see UpstreamTLS).
	TLS *UpstreamTLS `yaml:"tls"`

	UpstreamURL *url.URL `yaml:"-"`
}

// Body says whether Portero reads request bodies into the policy input
// (input.request.body). On by default: a body of a method other than GET,
// HEAD and OPTIONS is parsed (JSON, or form-encoded into the same shape),
// and one Portero cannot parse is refused whatever its label (415), so a
// field the policy limits can never be changed unseen.
type Body struct {
	// Inspect turns body reading off when set to false (routes that take
	// uploads Portero cannot parse); the policy then refuses edits whose
	// fields it must check.
	Inspect *bool `yaml:"inspect"`
	// JSON is the older spelling of inspect: true.
	JSON     bool  `yaml:"json"`
	MaxBytes int64 `yaml:"max_bytes"`
}

// Inspected says whether request bodies are read for the policy.
func (b Body) Inspected() bool { return b.Inspect == nil || *b.Inspect || b.JSON }

// Tenant says where the tenant id of a request is found.
type Tenant struct {
	// Host is a host template such as "{tenant}.apps.example.com".
	Host string `yaml:"host"`
	// Path is a path template such as "/t/{tenant}/".
	Path string `yaml:"path"`
}

// OIDC configures how bearer tokens are verified.
type OIDC struct {
	Issuer     string   `yaml:"issuer"`
	Audiences  []string `yaml:"audiences"`
	Algorithms []string `yaml:"algorithms"`
	Claims     Claims   `yaml:"claims"`
	// ClientID turns on browser sign-in (authorization code flow with PKCE).
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	RedirectURL  string   `yaml:"redirect_url"`
	Scopes       []string `yaml:"scopes"`
	// PostLogoutRedirectURL is where the IdP sends the browser after
	// sign-out; it must be registered with the IdP.
	PostLogoutRedirectURL string `yaml:"post_logout_redirect_url"`
	// ClockSkew is how far a token's iat and nbf may lie in the future
	// (default 60s); a token claiming to be issued later is refused.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// TokenCacheSize bounds how many verified tokens are remembered until they
	// expire, so a token's signature is checked once, not on every request.
	TokenCacheSize int `yaml:"token_cache_size"`
}

// Claims maps token claims to identity fields. A value may be a dotted path
// into nested claims, such as "realm_access.roles".
type Claims struct {
	Subject string `yaml:"subject"`
	Email   string `yaml:"email"`
	Roles   string `yaml:"roles"`
	Groups  string `yaml:"groups"`
	Org     string `yaml:"org"`
	Tenants string `yaml:"tenants"`
}

// Session configures the encrypted session cookie of browser sign-in.
type Session struct {
	// Keys are base64-encoded 32-byte keys; the first encrypts, all decrypt.
	Keys       []string      `yaml:"keys"`
	CookieName string        `yaml:"cookie_name"`
	Domain     string        `yaml:"domain"`
	Lifetime   time.Duration `yaml:"lifetime"`

	KeyBytes [][]byte `yaml:"-"`
	// Secure is derived: false only when the redirect URL is plain-http
	// localhost.
	Secure bool `yaml:"-"`
}

// Login configures where a browser may be sent back to after sign-in.
type Login struct {
	// AllowedRedirectHosts lists hosts (or "*.example.com") an absolute
	// return URL may name, besides the routes' hosts.
	AllowedRedirectHosts []string `yaml:"allowed_redirect_hosts"`
}

// BrowserLogin reports whether browser sign-in is configured.
func (c *Config) BrowserLogin() bool { return c.OIDC.ClientID != "" }

// Policy says where the Rego policy comes from.
type Policy struct {
	// Dir is a directory of .rego and data files; empty means the bundle
	// embedded in the binary.
	Dir string `yaml:"dir"`
	// Watch reloads Dir (and ShadowDir) when its files change. Defaults to
	// true when Dir (or ShadowDir) is set.
	Watch *bool `yaml:"watch"`
	// RequireTests makes every load, at start and on each reload, run the
	// policy's own tests (test_* rules in *_test.rego files) and refuse a
	// policy whose tests fail, as it refuses one that does not compile.
	// Absent: on when the policy has tests (the embedded one has).
	RequireTests *bool `yaml:"require_tests"`
	// ShadowDir is a candidate policy evaluated beside the active one on
	// every request and never enforced: its disagreements with the active
	// decisions are counted and logged (a dry run). Loaded, watched and
	// test-gated like Dir.
	ShadowDir string `yaml:"shadow_dir"`
	// ShadowSample is the fraction of decisions the shadow policy also
	// makes, 0 to 1 (absent: 1, every one). A decision that cannot come
	// from the cache (a body, say) costs a second evaluation with a
	// shadow: sampling bounds that cost on busy gateways.
	ShadowSample *float64 `yaml:"shadow_sample"`
	// Bundle, DecisionLogs and Status speak OPA's management APIs
	// (config/opa.go): the policy from a bundle server instead of Dir,
	// every decision to a collector, status reports.
	Bundle       *PolicyBundle `yaml:"bundle"`
	DecisionLogs *DecisionLogs `yaml:"decision_logs"`
	Status       *OPAStatus    `yaml:"status"`
}

// ShadowFraction is the share of decisions a shadow policy, when there is
// one, also makes: ShadowSample, 1 when absent.
func (p Policy) ShadowFraction() float64 {
	if p.ShadowSample == nil {
		return 1
	}
	return *p.ShadowSample
}

// Headers selects the header profile for identity and impersonation headers.
type Headers struct {
	Profile string `yaml:"profile"`
	// Strip names more headers removed from every inbound request, besides
	// Portero's own and the built-in override and identity headers: exact
	// names, or prefixes ending in '*' (X-Internal-*).
	Strip []string `yaml:"strip"`
}

// Assertion configures the signed JWT passed upstream with every allowed request.
type Assertion struct {
	// KeyFile is a PEM file with an EC P-256 private key. Empty means a key is
	// generated at start (assertions then do not survive a restart).
	KeyFile  string        `yaml:"key_file"`
	Header   string        `yaml:"header"`
	Issuer   string        `yaml:"issuer"`
	Audience string        `yaml:"audience"`
	TTL      time.Duration `yaml:"ttl"`
}

// Log configures structured logging.
type Log struct {
	Level string `yaml:"level"`
	// DecisionInputs records the policy input in decision log lines, for
	// portero policy replay. Off by default.
	DecisionInputs DecisionInputs `yaml:"decision_inputs"`
}

// DecisionInputs says which decisions' policy inputs the decision log
// records ("input"), and what in them is masked. Credentials are always
// masked (see proxy/decisioninput.go); Mask names more.
type DecisionInputs struct {
	Enabled bool `yaml:"enabled"`
	// Sample is the fraction of decisions recorded, 0 to 1 (absent: 1).
	Sample *float64 `yaml:"sample"`
	// Mask lists input paths whose values are replaced by pseudonyms:
	// dotted, from the input's root, "*" for any key or element
	// ("identity.claims.phone", "request.headers.x-api-key",
	// "request.body.*.iban").
	Mask []string `yaml:"mask"`

	// MaskPaths are Mask split at the dots (header names lower case).
	MaskPaths [][]string `yaml:"-"`
}

// Fraction is the share of decisions whose input is recorded: 0 when
// recording is off, else Sample (1 when absent).
func (d DecisionInputs) Fraction() float64 {
	switch {
	case !d.Enabled:
		return 0
	case d.Sample == nil:
		return 1
	}
	return *d.Sample
}

// Header profiles.
const (
	ProfilePortero    = "portero"
	ProfileKubernetes = "kubernetes"
)

// WatchPolicy reports whether the policy directory is watched for changes.
func (p Policy) WatchPolicy() bool {
	if p.Dir == "" {
		return false
	}
	return p.Watch == nil || *p.Watch
}

// WatchShadow reports whether the shadow policy directory is watched for
// changes.
func (p Policy) WatchShadow() bool {
	if p.ShadowDir == "" {
		return false
	}
	return p.Watch == nil || *p.Watch
}
