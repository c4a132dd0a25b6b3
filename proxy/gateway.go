// Package proxy is Portero's request path: sanitize, route, authenticate,
// resolve access, evaluate the policy, forward. Each stage is a small
// function; ServeHTTP reads top to bottom as the request path of
// docs/architecture.md. The control plane (package control) is mounted
// under ControlPrefix and decides through DecideManagement.
package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn"
)

// JWKSPath is where upstreams fetch the keys that verify assertions.
const JWKSPath = "/.well-known/portero/jwks.json"

// Gateway is the public request handler.
type Gateway struct {
	cfg      *config.Config
	reserved reservedHeaders
	router   *router
	tenants  tenantExtractor
	authn    *authn.Authenticator
	control  http.Handler                     // everything under /.portero/; nil: 404
	resolver *access.Resolver[*policy.Access] // nil without an access store
	store    *access.Store                    // nil without an access store
	engine   *policy.Engine
	signer   *assertionSigner
	// assertionName is the assertion header's normalised name: a policy
	// may not set it in any spelling.
	assertionName string
	// shadowFraction is policy.shadow_sample: the share of decisions the
	// shadow policy also makes.
	shadowFraction float64
	// pseudonymKey keys the decision log's pseudonyms of masked input
	// values (log.decision_inputs).
	pseudonymKey []byte
	inputGW      *policy.Gateway // input.gateway, the same for every request
	metrics      *Metrics
	log          *slog.Logger
	now          func() time.Time
	// ownCookies are Portero's cookie names, removed from what the app
	// receives; nil without browser sign-in.
	ownCookies []string
	// served counts requests, for ReleaseIdleMemory's "quiet".
	served atomic.Int64
	// recorder is policy.decision_logs; nil: off (decisionrecord.go).
	recorder policy.DecisionRecorder
	// checkPath is forward_auth.path: "" when the public listener answers
	// no forward-auth checks.
	checkPath string
	// tracer makes the request's spans; its zero value is tracing off.
	tracer requestTracer
}

// Options are a gateway's collaborators.
type Options struct {
	Engine  *policy.Engine
	Metrics *Metrics
	Log     *slog.Logger
	// Authn is the authenticate stage (bearer tokens, browser sessions).
	Authn *authn.Authenticator
	// AssertionKey signs assertions; nil generates one (logged as a warning).
	AssertionKey *ecdsa.PrivateKey
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Access resolves store facts per request and Store is read for a
	// management caller's partner and for readiness; both nil without an
	// access store.
	Access *access.Resolver[*policy.Access]
	Store  *access.Store
	// Tracing makes the request path's spans (internal/tracing); nil is
	// tracing off.
	Tracing trace.TracerProvider
}

// New builds the gateway for a validated configuration. The control plane
// is mounted with SetControl before serving.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Authn == nil {
		return nil, errors.New("the gateway needs an authenticator (authn.New)")
	}
	key := opts.AssertionKey
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		opts.Log.Warn("assertion.key_file is not set: signing assertions with a key generated at start; upstreams must refetch the JWKS after every restart")
	}
	signer, err := newAssertionSigner(key, cfg.Assertion.Issuer, cfg.Assertion.Audience, cfg.Assertion.TTL)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:            cfg,
		reserved:       newReservedHeaders(cfg.Assertion.Header).withStrip(cfg.Headers.Strip),
		router:         newRouter(cfg.Routes),
		tenants:        newTenantExtractor(cfg.Tenant),
		authn:          opts.Authn,
		engine:         opts.Engine,
		resolver:       opts.Access,
		store:          opts.Store,
		signer:         signer,
		assertionName:  normalizeHeaderName(cfg.Assertion.Header),
		shadowFraction: cfg.Policy.ShadowFraction(),
		pseudonymKey:   newPseudonymKey(),
		inputGW:        policy.NewGateway(cfg.Headers.Profile),
		metrics:        opts.Metrics,
		log:            opts.Log,
		now:            opts.Now,
		checkPath:      cfg.ForwardAuth.Path,
		tracer:         newRequestTracer(opts.Tracing, cfg.Tracing.TrustIncoming),
	}
	for _, r := range g.router.routes {
		r.forward = newForwarder(r.cfg, g.metrics, g.log, g.tracer)
	}
	if s := opts.Authn.Sessions; s != nil {
		g.ownCookies = s.CookieNames()
	}
	return g, nil
}

// SetControl mounts the control plane: every request under ControlPrefix
// goes to h once it has been sanitized. It is set once, before serving
// (the control plane decides through the gateway, so it is built after it).
func (g *Gateway) SetControl(h http.Handler) { g.control = h }

// ControlPrefix is where the control plane is mounted: no route can claim
// it.
const ControlPrefix = "/.portero/"

// Ready says why the gateway cannot serve yet (every failing check of
// Readiness, see ops.go), or nil.
func (g *Gateway) Ready() error {
	var errs []error
	for _, c := range g.Readiness() {
		errs = append(errs, c.Err)
	}
	return errors.Join(errs...)
}

// JWKS returns the JSON Web Key Set upstreams verify assertions with.
func (g *Gateway) JWKS() []byte { return g.signer.jwks }

type ctxKey int

const stateKey ctxKey = 0

// requestState is what the stages of one request leave for later ones: the
// decision id (for logs and denials) and, once the policy allowed the
// request, the headers the forwarder sets on the outgoing request.
type requestState struct {
	id string
	// upstream are the decision's headers and the assertion, set by the
	// forwarder after hop-by-hop removal (see newForwarder), so nothing the
	// client sends can remove or change them.
	upstream http.Header
	// dropCookies are Portero's cookie names, removed from what the app
	// receives; nil without browser sign-in.
	dropCookies []string
	// host is the normalised host the policy decided on; the app receives
	// it in X-Forwarded-Host (and Host with preserve_host).
	host string
}

func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey).(*requestState)
	return st
}

func decisionID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

func newDecisionID() string {
	var b [12]byte
	var id [24]byte
	_, _ = rand.Read(b[:])
	hex.Encode(id[:], b[:])
	return string(id[:])
}

// ServeHTTP is the request path.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.checkPath != "" && r.URL.Path == g.checkPath && r.URL.RawPath == "" {
		g.serveForwardAuth(w, r) // forward_auth.path: a front proxy asks
		return
	}
	g.serve(w, r, nil)
}

// serve runs the stages on r. With chk nil Portero forwards an allowed
// request itself; otherwise another proxy forwards it (forward-auth, Envoy's
// ext_authz) and the allowed request's headers for the app go into chk
// instead. Check has already refused what Portero could not make so on the
// other proxy's request (see Check).
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, chk *Check) {
	start := g.now()
	g.served.Add(1)
	id := newDecisionID()
	st := &requestState{id: id}
	if chk != nil {
		chk.ID = id
	}
	ctx, span := g.tracer.start(r, id, chk != nil) // tracing off: r's own context
	r = r.WithContext(context.WithValue(ctx, stateKey, st))
	rec := &statusRecorder{ResponseWriter: w}
	routeName, outcome := "none", "reject"
	defer func() {
		g.metrics.requests.WithLabelValues(routeName, outcome, strconv.Itoa(rec.code())).Inc()
		if rec.denied != "" {
			g.metrics.denials.WithLabelValues(routeName, rec.denied).Inc()
		}
		g.metrics.duration.WithLabelValues(routeName).Observe(g.now().Sub(start).Seconds())
		span.end(rec.code(), rec.denied)
	}()

	// Sanitize: nothing the client sent may pose as Portero's own headers,
	// override the method, path or client address, or ride in a trailer;
	// the method, host, path and query are the one canonical form the
	// policy decides on and the app receives.
	override := g.reserved.strip(r.Header)
	r.Trailer = nil
	if chk != nil {
		// The front proxy forwards the request's own method: an override
		// is not honoured (Check refused or removed it).
		override = nil
		if r.URL.Path == JWKSPath || strings.HasPrefix(r.URL.Path, ControlPrefix) {
			// Portero's own paths are not the app's: the front proxy must
			// send them to Portero, not ask about them.
			deny.Write(rec, r, false, deny.Denial{Status: http.StatusForbidden, Reason: "forward_auth.portero_path", ID: id})
			return
		}
	}
	if r.URL.Path == JWKSPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		routeName, outcome = "jwks", "control"
		g.serveJWKS(rec, r)
		return
	}
	host, path, segments, refusal := canonicalTarget(r.Host, r.URL.EscapedPath())
	if refusal != nil {
		refusal.ID = id
		deny.Write(rec, r, false, *refusal)
		return
	}
	// The app receives the path in one encoding of exactly the segments the
	// policy sees (RawPath empty: net/http encodes Path canonically).
	r.URL.RawPath = ""
	r.URL.Path = path
	if upgradeRefused(r.Header) {
		deny.Write(rec, r, false, deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_upgrade", ID: id})
		return
	}
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		deny.Write(rec, r, false, deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_query", ID: id})
		return
	}
	if strings.HasPrefix(r.URL.Path, ControlPrefix) {
		routeName, outcome = "control", "control"
		span.routed(routeName, host, path)
		if d := methodDenial(r, override, false, nil); d != nil {
			d.ID = id
			deny.Write(rec, r, false, *d)
			return
		}
		if g.control == nil {
			deny.Write(rec, r, false, deny.Denial{Status: http.StatusNotFound, Reason: "control.disabled", ID: id})
			return
		}
		g.control.ServeHTTP(rec, r.WithContext(deny.WithID(r.Context(), id)))
		return
	}

	// Route and tenant.
	rt, refusal := g.router.routeFor(g.tenants, host, path, segments)
	if rt == nil {
		refusal.ID = id
		deny.Write(rec, r, false, *refusal)
		return
	}
	routeName = rt.cfg.Name
	api := rt.cfg.API
	span.routed(routeName, host, path)
	if refusal != nil {
		refusal.ID = id
		deny.Write(rec, r, api, *refusal)
		return
	}
	st.host = host
	if d := methodDenial(r, override, rt.cfg.MethodOverride, rt.cfg.ExtraMethods); d != nil {
		d.ID = id
		deny.Write(rec, r, api, *d)
		return
	}

	// Authenticate.
	_, authenticating := g.tracer.stage(r.Context(), "authenticate")
	identity, authErr := g.authn.Authenticate(rec, r, api)
	authenticating.end()
	if authErr != nil {
		g.log.Info("authentication failed", "decision_id", id, "route", routeName, "reason", authErr.Reason, "error", authErr.Err.Error())
		deny.Unauthenticated(rec, r, api, authErr.Reason, id)
		return
	}

	// Read the body the policy decides on (or refuse it), then resolve
	// access and evaluate.
	var body *policy.Body
	switch {
	case !rt.cfg.Body.Inspected():
	case chk != nil && !chk.withBody:
		// Checked without the body (nginx and Caddy cannot send it): a
		// route whose policy reads bodies decides no edit without one
		// (deciding on none would pass whatever the app then receives);
		// with body.inspect: false the policy sees no body on any route.
		if emptyBodyFor(r.Method) != nil {
			deny.Write(rec, r, api, deny.Denial{Status: http.StatusForbidden, Reason: "forward_auth.body_required", ID: id})
			return
		}
	default:
		var refusal *bodyRefusal
		if body, refusal = readBody(r, rt.cfg.Body.MaxBytes); refusal != nil {
			deny.Write(rec, r, api, deny.Denial{Status: refusal.status, Reason: refusal.reason, ID: id})
			return
		}
	}
	in := g.requestInput(r, policy.Route{Name: routeName, API: api}, identity, host, segments, start)
	in.Request.Body = body
	ev, err := g.authorize(r.Context(), in)
	if err != nil {
		deny.Write(rec, r, api, deny.Denial{Status: http.StatusServiceUnavailable, Reason: "access.unavailable", ID: id})
		return
	}
	d := ev.Decision
	span.decided(d)
	if !d.Allow {
		outcome = "deny"
		if d.Status == http.StatusUnauthorized && identity == nil {
			switch {
			case api:
				deny.Unauthenticated(rec, r, api, "", id)
				return
			case g.authn.Sessions != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead):
				g.authn.Sessions.RedirectToLogin(rec, r, host)
				return
			}
		}
		deny.Write(rec, r, api, deny.Denial{Status: d.Status, Reason: d.Reason, ID: id})
		return
	}
	outcome = "allow"

	// Forward with the decision's headers and a signed assertion.
	if err := g.planUpstream(st, in, d, start); err != nil {
		g.log.Error("sign assertion", "decision_id", id, "error", err.Error())
		deny.Write(rec, r, api, deny.Denial{Status: http.StatusInternalServerError, Reason: "assertion.error", ID: id})
		return
	}
	if chk != nil {
		chk.allow(st, r.Header)
		return
	}
	fr, forwarding := g.tracer.forwarding(r) // the upstream gets its trace context (see inject)
	rt.forward.ServeHTTP(rec, fr)
	forwarding.responded(rec.code())
	forwarding.end()
}

// requestInput is the one builder of the policy input for a request: the
// sanitized request (method, host, path and its segments, the segments as
// the tenant's app sees them, query, headers minus credentials), the route,
// the identity, and the tenant the host or path names. The proxy path and
// every management decision (API, console, master access) build their
// input here; access facts are added by authorize.
func (g *Gateway) requestInput(r *http.Request, route policy.Route, identity *policy.Identity, host string, segments []string, now time.Time) *policy.Input {
	in := &policy.Input{
		Request: policy.Request{
			Method: r.Method, Host: host, Path: r.URL.Path, Segments: segments,
			Query: r.URL.Query(), Headers: inputHeaders(r.Header),
		},
		Route:    route,
		Identity: identity,
		Gateway:  g.inputGW,
		Now:      now,
	}
	tenant, appSegments := g.tenants.extract(host, segments)
	in.Request.AppSegments = appSegments
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		in.Request.QueryKeys = make([]string, 0, len(in.Request.Query))
		for k := range in.Request.Query {
			in.Request.QueryKeys = append(in.Request.QueryKeys, k)
		}
		slices.Sort(in.Request.QueryKeys) // one order for a set: the decision cache's key
	}
	in.Request.Upgrade = r.Header.Get("Upgrade") != "" // only websocket gets this far (upgradeRefused)
	if tenant != "" {
		in.Tenant = &policy.Tenant{ID: tenant, Status: "active"}
	}
	return in
}

// authorize is the one place a decision is made: it adds the store's facts
// for the input's identity and tenant (when there is a store), evaluates the
// policy and logs the decision. An error means the facts could not be read;
// the caller denies (503) — fail closed.
func (g *Gateway) authorize(ctx context.Context, in *policy.Input) (policy.Evaluation, error) {
	masterID := ""
	if in.Tenant != nil && g.resolver != nil && in.Identity != nil {
		rctx, resolving := g.tracer.stage(ctx, "resolve access")
		facts, err := g.resolveAccess(rctx, in)
		resolving.fail(err)
		resolving.end()
		if err != nil {
			level := slog.LevelError
			if errors.Is(err, access.ErrUnavailable) {
				// The store is known to be down: /readyz and
				// portero_access_store_up say so; one line per request would
				// flood the log.
				level = slog.LevelDebug
			}
			g.log.Log(ctx, level, "access store lookup failed; denying", "decision_id", decisionID(ctx), "tenant", in.Tenant.ID, "error", err.Error())
			return policy.Evaluation{}, err
		}
		if facts != nil && facts.Master != nil && facts.Master.Session == in.Identity.Session {
			masterID = facts.Master.ID // marks the decision log
		}
	}
	ectx, evaluating := g.tracer.stage(ctx, "evaluate")
	ev := g.engine.Decide(ectx, in)
	evaluating.evaluated(ev)
	evaluating.end()
	if g.engine.ShadowOn() && inSample(g.shadowFraction) {
		// Dry run (policy.shadow_dir): the candidate decides the same
		// input (policy.shadow_sample of decisions); its disagreements
		// are counted and logged, ev is enforced.
		g.engine.DecideShadow(ctx, decisionID(ctx), in, ev)
	}
	g.logDecision(decisionID(ctx), in, ev, masterID)
	if g.recorder != nil { // policy.decision_logs: to an OPA collector
		g.recordDecision(ctx, decisionID(ctx), in, ev)
	}
	return ev, nil
}

// resolveAccess puts the store's facts for (identity, tenant) in the input
// and returns them. An error means the facts are unknown: the caller fails
// closed.
func (g *Gateway) resolveAccess(ctx context.Context, in *policy.Input) (*access.Facts, error) {
	res, hit, err := g.resolver.Resolve(ctx, in.Identity.Subject, in.Tenant.ID)
	switch {
	case err != nil:
		g.metrics.accessLookups.WithLabelValues("error").Inc()
		return nil, err
	case hit:
		g.metrics.accessLookups.WithLabelValues("hit").Inc()
	default:
		g.metrics.accessLookups.WithLabelValues("miss").Inc()
	}
	in.Access = res.Prepared
	if in.Access == nil {
		return nil, errors.New("access facts were not prepared")
	}
	if res.Facts == nil || res.Facts.Tenant == nil {
		in.Tenant.Status = "unknown"
	} else {
		in.Tenant.Status = res.Facts.Tenant.Status
	}
	return res.Facts, nil
}

// planUpstream works out the headers the app receives: the decision's
// headers, only within Portero's reserved names (client copies of which
// were stripped), and the signed assertion. The forwarder sets them on the
// outgoing request after hop-by-hop removal.
func (g *Gateway) planUpstream(st *requestState, in *policy.Input, d policy.Decision, now time.Time) error {
	out := make(http.Header, len(d.Headers)+1)
	// The values are copied (decisions may be cached: never share their
	// slices) into one array, each name's capped so an append copies.
	n := 0
	for _, vals := range d.Headers {
		n += len(vals)
	}
	values := make([]string, 0, n)
	for name, vals := range d.Headers {
		// Only plain names within Portero's reserved ones, and never a
		// spelling of the assertion's name (apps that read headers as
		// variables merge X_Portero_Assertion with X-Portero-Assertion).
		if !plainHeaderName(name) || !validHeaderValues(vals) {
			g.refuseHeader(name, st.id)
			continue
		}
		if n := normalizeHeaderName(name); !g.reserved.containsNormalized(n) || n == g.assertionName {
			g.refuseHeader(name, st.id)
			continue
		}
		start := len(values)
		values = append(values, vals...)
		out[http.CanonicalHeaderKey(name)] = values[start:len(values):len(values)]
	}
	claims := assertionClaims{ID: newDecisionID()}
	if in.Identity != nil {
		claims.Subject, claims.Email = in.Identity.Subject, in.Identity.Email
	}
	if in.Tenant != nil {
		claims.Tenant = in.Tenant.ID
		if in.Identity != nil {
			claims.Roles = in.Identity.Memberships[in.Tenant.ID]
		}
	}
	if a := d.Assertion; a != nil {
		// The policy names someone else (master access): never the
		// caller's own email or roles under that name.
		claims.Subject, claims.Email, claims.Roles = a.Subject, "", a.Roles
		if a.Actor != "" {
			claims.Act = &actClaim{Subject: a.Actor}
		}
	}
	token, err := g.signer.sign(claims, now)
	if err != nil {
		return err
	}
	out.Set(g.cfg.Assertion.Header, token)
	st.upstream = out
	st.dropCookies = g.ownCookies
	return nil
}

// refuseHeader counts and logs a decision header Portero will not set.
func (g *Gateway) refuseHeader(name, id string) {
	g.metrics.droppedHeaders.Inc()
	g.log.Warn("policy header refused", "header", name, "decision_id", id)
}

// stripCookies removes Portero's own cookies (every chunk) from the Cookie
// header, so the upstream never sees the session.
func stripCookies(h http.Header, names ...string) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if !isPorteroCookie(name, names) && strings.TrimSpace(part) != "" {
				kept = append(kept, strings.TrimSpace(part))
			}
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}

func isPorteroCookie(name string, names []string) bool {
	for _, n := range names {
		if name == n || strings.HasPrefix(name, n+"_") {
			return true
		}
	}
	return false
}

func validHeaderValues(vals []string) bool {
	for _, v := range vals {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return false
			}
		}
	}
	return true
}

// inputHeaders gives the policy the request headers, lower-cased, minus
// credentials.
func inputHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, vals := range h {
		switch name {
		case "Authorization", "Cookie", "Proxy-Authorization":
			continue
		}
		key, ok := lowerHeaderNames[name]
		if !ok {
			key = strings.ToLower(name)
		}
		out[key] = strings.Join(vals, ", ")
	}
	return out
}

func decodedPath(segments []string, trailingSlash bool) string {
	p := "/" + strings.Join(segments, "/")
	if trailingSlash {
		p += "/"
	}
	return p
}

func (g *Gateway) logDecision(id string, in *policy.Input, ev policy.Evaluation, masterID string) {
	level := slog.LevelInfo
	if ev.Err != nil {
		level = slog.LevelError
	}
	if !g.log.Enabled(context.Background(), level) {
		return // log.level above info: build nothing
	}
	attrs := []slog.Attr{
		slog.String("decision_id", id),
		slog.String("route", in.Route.Name),
		slog.String("method", in.Request.Method),
		slog.String("host", in.Request.Host),
		slog.String("path", in.Request.Path),
		slog.Bool("allow", ev.Decision.Allow),
		slog.Int("status", ev.Decision.Status),
		slog.String("reason", ev.Decision.Reason),
		slog.String("policy_revision", ev.Revision),
		slog.Float64("eval_us", float64(ev.Duration.Nanoseconds())/1e3),
		slog.Bool("cached", ev.Cached),
	}
	if in.Tenant != nil {
		attrs = append(attrs, slog.String("tenant", in.Tenant.ID))
	}
	if in.Identity != nil {
		attrs = append(attrs, slog.String("sub", in.Identity.Subject))
	}
	if masterID != "" {
		attrs = append(attrs, slog.String("master_access_id", masterID))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	if g.sampled() { // log.decision_inputs: the masked input, for portero policy replay
		attrs = append(attrs, g.decisionInputAttrs(in, ev.Decision)...)
	}
	g.log.LogAttrs(context.Background(), level, "decision", attrs...)
}

func (g *Gateway) serveJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if r.Method == http.MethodGet {
		_, _ = w.Write(g.signer.jwks)
	}
}

// statusRecorder remembers the response code for metrics. Unwrap lets
// http.ResponseController reach Flush and Hijack (WebSockets) underneath.
type statusRecorder struct {
	http.ResponseWriter
	status int
	denied string // the reason id of the denial written, if any
}

// Denied records the reason of the denial written (deny.Counter).
func (s *statusRecorder) Denied(reason string) {
	if s.denied == "" {
		s.denied = reason
	}
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
