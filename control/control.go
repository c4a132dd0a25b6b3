// Package control is Portero's control plane: what people click or script
// rather than the requests the gateway forwards. Sign-in and sign-out,
// master access, the management API, the admin console and master-access
// notifications, all under /.portero/. It depends on narrow pieces — an
// authenticator, a decider (the request path's one way to build a policy
// decision), the access store — never on the gateway itself.
package control

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy/authn"
)

// Prefix is where the control plane lives: a prefix no route can claim.
const Prefix = "/.portero/"

// Decider makes management decisions: it builds the policy input of a
// management call (the caller, its own facts, the call) the way the request
// path builds every input, evaluates the policy and logs the decision. An
// error means the caller's facts could not be read: the caller denies.
type Decider interface {
	DecideManagement(r *http.Request, route policy.Route, id *policy.Identity, m policy.Management) (policy.Decision, error)
	// TryRequest works out what the gateway would decide on a request by
	// subject (in tenant, when set), with the explain trace, sending
	// nothing (POST /policy/try).
	TryRequest(ctx context.Context, method, target, subject, tenant string) (*policy.Trial, error)
}

// Routes of management decisions in the policy input and the decision log.
var (
	routeAPI     = policy.Route{Name: "portero-api", API: true}
	routeConsole = policy.Route{Name: "portero-console"}
	routeMaster  = policy.Route{Name: "portero-master-access"}
)

// Options are the control plane's collaborators.
type Options struct {
	Authn   *authn.Authenticator
	Decider Decider
	// Store is the access store; nil disables the management API, the
	// console and master access.
	Store *access.Store
	// Engine is the policy engine, for the policy status page.
	Engine *policy.Engine
	// Audit is the optional JSONL export of the audit trail.
	Audit    *audit.Log
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Plane serves everything under Prefix.
type Plane struct {
	cfg         *config.Config
	authn       *authn.Authenticator
	sessions    *authn.Sessions // nil unless browser sign-in is configured
	decider     Decider
	store       *access.Store // nil without an access store
	engine      *policy.Engine
	master      *masterAccess  // nil unless master access is configured
	sess        serverSessions // sign-outs in the store, back-channel logout (sessions.go)
	returnHosts []string
	metrics     *metrics
	log         *slog.Logger
	now         func() time.Time

	mux         *http.ServeMux // every control endpoint
	api         *http.ServeMux // the management API's routes, behind serveAPI
	limits      *controlLimits
	crossOrigin *http.CrossOriginProtection
}

// New builds the control plane for a validated configuration.
func New(cfg *config.Config, opts Options) (*Plane, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Plane{
		cfg: cfg, authn: opts.Authn, sessions: opts.Authn.Sessions, decider: opts.Decider,
		store: opts.Store, engine: opts.Engine, metrics: newMetrics(opts.Registry), log: opts.Log, now: opts.Now,
		limits: newControlLimits(cfg.Limits), crossOrigin: http.NewCrossOriginProtection(),
	}
	// A sign-in may return to any route's host, the callback's host and
	// login.allowed_redirect_hosts.
	for _, r := range cfg.Routes {
		p.returnHosts = append(p.returnHosts, r.Hosts...)
	}
	if p.sessions != nil {
		p.returnHosts = append(p.returnHosts, p.sessions.ReturnHosts()...)
	}
	if cfg.Master.Enabled() {
		if opts.Audit == nil || opts.Store == nil {
			return nil, errors.New("master access needs the access store (its audit trail) and an export sink (audit.Discard() for none)")
		}
		p.metrics.masterMax.Set(cfg.Master.MaxDuration.Seconds())
		p.master = &masterAccess{cfg: cfg.Master, audit: opts.Audit,
			notify: newNotifier(cfg.Master.Webhook, cfg.Master.TenantWebhooks, cfg.Master.WebhookTimeout, p.metrics.notifyFailures, opts.Log)}
	}
	p.initSessions(opts.Store, opts.Registry)
	p.api = p.apiRoutes()
	p.mux = p.routes()
	return p, nil
}

// routes are the control endpoints. The request path has already
// sanitized the request and checked its method is a standard one.
func (p *Plane) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(apiPrefix, p.serveAPI)
	if !p.cfg.BrowserLogin() {
		mux.HandleFunc(Prefix, p.notFound("control.disabled"))
		return mux
	}
	mux.HandleFunc(authn.LoginPath, p.serveLogin)
	mux.HandleFunc(authn.CallbackPath, p.serveCallback)
	mux.HandleFunc("GET "+logoutPath, p.confirmLogout)
	mux.HandleFunc("POST "+logoutPath, p.logout)
	mux.HandleFunc(logoutPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, POST")
		deny.Write(w, r, false, deny.Denial{Status: http.StatusMethodNotAllowed, Reason: "logout.method", ID: deny.ID(r.Context())})
	})
	mux.HandleFunc(userinfoPath, p.userinfo)
	p.sessionRoutes(mux)
	p.masterRoutes(mux)
	p.invitationRoutes(mux)
	mux.Handle(strings.TrimSuffix(consolePrefix, "/"), http.RedirectHandler(consolePrefix, http.StatusMovedPermanently))
	p.consoleRoutes(mux)
	mux.HandleFunc(Prefix, p.notFound("control.unknown"))
	return mux
}

// ServeHTTP answers a request under Prefix.
func (p *Plane) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Start runs the control plane's background work (master-access
// notifications and the expiry sweep, the sweep of ended sign-outs) until
// ctx ends.
func (p *Plane) Start(ctx context.Context) {
	p.startSessions(ctx)
	if p.master != nil {
		go p.master.notify.run(ctx)
		go p.sweepMasters(ctx, masterSweepEvery)
	}
}

// masterSweepEvery is how often expired master-access sessions are ended
// and recorded. Requests are refused at the expiry itself regardless.
var masterSweepEvery = 2 * time.Second

func (p *Plane) notFound(reason string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		deny.Write(w, r, false, deny.Denial{Status: http.StatusNotFound, Reason: reason, ID: deny.ID(r.Context())})
	}
}

// crossSiteRefusal is the one CSRF rule of the control plane, used by
// every state-changing endpoint a browser reaches with its cookies
// (sign-out, master access, the console's forms, management API writes
// with a session). The browser must say the request comes from this
// origin — net/http's CrossOriginProtection reads Sec-Fetch-Site, else
// Origin; a request with neither is not from a browser that would attach
// cookies cross-site — and a signed-in session must present the token bound
// to it (a form's csrf field, or X-CSRF-Token on the API). It returns the
// refusal's reason, or "" when the request may go on.
func (p *Plane) crossSiteRefusal(r *http.Request, st *authn.Session, token string) string {
	if err := p.crossOrigin.Check(r); err != nil {
		return "csrf.cross_origin"
	}
	if st != nil && !p.sessions.ValidCSRF(st, token) {
		return "csrf.invalid"
	}
	return ""
}
