// Command portero is the Portero gateway: serve, check, test, eval, keygen,
// version.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/control"
	"github.com/portero-gateway/portero/internal/certreload"
	"github.com/portero-gateway/portero/internal/tracing"
	"github.com/portero-gateway/portero/mail"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy"
	"github.com/portero-gateway/portero/proxy/authn"
	"github.com/portero-gateway/portero/proxy/extauthz"
	defaultrego "github.com/portero-gateway/portero/rego"
)

const usage = `portero — a policy enforcement gateway

Usage:
  portero serve   [-c gateway.yaml]          run the gateway (the default command)
  portero check   [-c gateway.yaml]          validate the config and compile the policy
  portero test    [--coverage] [-v] [--run REGEX] [DIR]
                                             run the Rego tests in DIR (default: the embedded policy)
  portero fmt     [-l] [-w] FILE_OR_DIR...   format Rego as OPA's formatter does (-l: list what differs, exit 1)
  portero eval    [-c gateway.yaml] --input req.json [--explain]
                                             print the decision for an input document
  portero explain [-c gateway.yaml] METHOD URL
                                             show which route mapping entry classifies a request
  portero admin   [-c gateway.yaml] NOUN VERB ...
                                             manage tenants, members, partners, delegations in the store
  portero audit verify [-c gateway.yaml | --store FILE | FILE]
                                             check the audit trail (hash chain, signed checkpoints) or an export
  portero audit export [-c gateway.yaml | --store FILE] OUT
                                             write the audit trail as JSON lines
  portero policy replay --log decisions.jsonl [--json] CANDIDATE_DIR
                                             replay the decision log's recorded inputs against a candidate
                                             policy; print what would change (exit 3: an allow or deny flips)
  portero keygen                             print a new ES256 assertion signing key (PEM)
  portero version                            print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(args, stderr)
	case "check":
		err = cmdCheck(args, stdout)
	case "test":
		err = cmdTest(args, stdout)
	case "eval":
		err = cmdEval(args, stdout)
	case "explain":
		err = cmdExplain(args, stdout)
	case "fmt":
		err = cmdFmt(args, stdout)
	case "keygen":
		err = cmdKeygen(stdout)
	case "admin":
		err = cmdAdmin(args, stdout)
	case "audit":
		err = cmdAudit(args, stdout)
	case "policy":
		return cmdPolicy(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "portero", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "portero: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "portero:", err)
		}
		return 1
	}
	return 0
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// loadConfig adds -c to fs (whose other flags the caller defined), parses
// args and loads the configuration.
func loadConfig(fs *flag.FlagSet, args []string) (*config.Config, error) {
	path := fs.String("c", "gateway.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return config.Load(*path)
}

// policySource is the configured policy directory, or the embedded bundle.
func policySource(cfg *config.Config) policy.Source {
	if cfg.Policy.Dir != "" {
		return policy.DirSource(cfg.Policy.Dir)
	}
	return policy.Source{Name: "embedded", FS: defaultrego.Bundle}
}

// shadowSource is policy.shadow_dir, or nil.
func shadowSource(cfg *config.Config) *policy.Source {
	if cfg.Policy.ShadowDir == "" {
		return nil
	}
	src := policy.DirSource(cfg.Policy.ShadowDir)
	return &src
}

// testGate is policy.require_tests: absent, gate when the policy has tests.
func testGate(cfg *config.Config) policy.TestGate {
	switch {
	case cfg.Policy.RequireTests == nil:
		return policy.TestsWhenPresent
	case *cfg.Policy.RequireTests:
		return policy.TestsRequired
	}
	return policy.TestsNotRequired
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func cmdServe(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.Level)
	tuneGC(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	// The policy is compiled and, with policy.require_tests, its tests
	// pass before it serves; failing tests stop the start like a compile
	// error does.
	// With policy.bundle the policy comes from the bundle server (opa.go).
	engine, opaMgmt, err := newPolicyEngine(ctx, cfg, policy.EngineOptions{Source: policySource(cfg), Metrics: policy.NewMetrics(reg),
		Log: log, Tests: testGate(cfg), Shadow: shadowSource(cfg)}, reg, log)
	if err != nil {
		return err
	}
	if cfg.Policy.WatchPolicy() {
		if _, err := engine.Watch(ctx, cfg.Policy.Dir); err != nil {
			return err
		}
	}
	if cfg.Policy.WatchShadow() {
		if _, err := engine.Shadow().Watch(ctx, cfg.Policy.ShadowDir); err != nil {
			return err
		}
	}
	auth, err := authn.New(cfg, reg, log, nil)
	if err != nil {
		return err
	}
	opts := proxy.Options{Engine: engine, Metrics: proxy.NewMetrics(reg), Log: log, Authn: auth}
	// tracing: spans of the request path, exported over OTLP/HTTP; the
	// last ones are flushed after the servers have drained.
	traces, err := tracing.New(cfg.Tracing, version(), log)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
		defer cancel()
		if err := traces.Shutdown(fctx); err != nil {
			log.Warn("tracing: spans lost at shutdown", "error", err.Error())
		}
	}()
	if traces != nil {
		opts.Tracing = traces.TracerProvider()
		log.Info("tracing on", "endpoint", cfg.Tracing.Endpoint, "sample", cfg.Tracing.Fraction(), "trust_incoming", cfg.Tracing.TrustIncoming)
	}
	var auditExport *audit.Log
	if cfg.Assertion.KeyFile != "" {
		if opts.AssertionKey, err = proxy.LoadAssertionKey(cfg.Assertion.KeyFile); err != nil {
			return err
		}
	} else {
		// Generated here rather than by the gateway: it signs the audit
		// trail's checkpoints too.
		if opts.AssertionKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return err
		}
		log.Warn("assertion.key_file is not set: signing assertions and audit checkpoints with a key generated at start; upstreams must refetch the JWKS after every restart")
	}
	// Background work on the store ends after the servers have drained,
	// so the shutdown checkpoint signs the last record.
	storeCtx, stopStore := context.WithCancel(context.Background())
	defer stopStore()
	var storeWork sync.WaitGroup
	if cfg.Access.Store != "" {
		store, err := access.Open(ctx, cfg.Access.Store, access.WithLogger(log), access.WithActors(control.ActorOf),
			access.WithPostgres(postgresOptions(cfg.Access)))
		if err != nil {
			return err
		}
		defer store.Close()
		defer func() { stopStore(); storeWork.Wait() }() // before the store closes
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portero_access_store_up",
			Help: "1 while the access store is usable, 0 while it fails closed (SQLite: file replaced, deleted or unreadable; PostgreSQL: not listening for other replicas' writes, the database unreachable; see /readyz)."},
			func() float64 {
				if store.Health() != nil {
					return 0
				}
				return 1
			}))
		storeWork.Add(1)
		go func() { defer storeWork.Done(); store.WatchWrites(storeCtx, cfg.Access.WatchInterval) }()
		storeWork.Add(1)
		go func() {
			defer storeWork.Done()
			store.RunCheckpoints(storeCtx, opts.AssertionKey, cfg.Access.CheckpointInterval)
		}()
		// mail: the outbox's sender, stopped with the store's other work
		// after the servers have drained.
		if cfg.Mail.On() {
			sender, err := mail.New(cfg.Mail, store, log, reg)
			if err != nil {
				return err
			}
			storeWork.Add(1)
			go func() { defer storeWork.Done(); sender.Run(storeCtx) }()
		}
		opts.Access = access.NewResolver(store, cfg.Access.CacheSize, proxy.PrepareAccess, nil)
		opts.Store = store
		log.Info("access store open", "store", access.RedactURL(cfg.Access.Store), "schema_version", schemaVersion(ctx, store))
		if cfg.Master.Enabled() {
			if auditExport, err = openAuditExport(ctx, cfg.Master.AuditLog, store, log); err != nil {
				return err
			}
			defer auditExport.Close()
			if cfg.Master.AuditLog != "" {
				go catchUpExport(storeCtx, auditExport, store, log, exportCatchUpEvery)
			}
			log.Info("master access on", "audit_trail", cfg.Access.Store, "audit_export", cfg.Master.AuditLog)
		}
	}
	// The request path, then the control plane, which decides through it
	// and is mounted under /.portero/.
	gw, err := proxy.New(cfg, opts)
	if err != nil {
		return err
	}
	ctl, err := control.New(cfg, control.Options{Authn: auth, Decider: gw, Store: opts.Store, Engine: engine,
		Audit: auditExport, Registry: reg, Log: log})
	if err != nil {
		return err
	}
	gw.SetControl(ctl)
	stopOPA, err := startOPAManagement(ctx, opaMgmt, cfg, gw, log)
	if err != nil {
		return err
	}
	defer stopOPA() // after the servers have drained: the last decisions are uploaded
	auth.Start(ctx, &http.Client{Timeout: 10 * time.Second})
	ctl.Start(ctx)

	public := &http.Server{
		Addr:              cfg.Listen.Public,
		Handler:           gw,
		ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout,
		IdleTimeout:       cfg.Listen.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if t := cfg.Listen.TLS; t != nil {
		// listen.tls: the certificate is looked up on every handshake, so
		// a renewed pair serves new connections while open ones go on.
		certs, err := certreload.New(t.CertFile, t.KeyFile, reg, log)
		if err != nil {
			return err
		}
		if _, err := certs.Watch(ctx, certStatEvery); err != nil {
			return err
		}
		public.TLSConfig = certs.ServerConfig()
	}
	ops := &http.Server{
		Addr:              cfg.Listen.Ops,
		Handler:           proxy.OpsHandler(gw, reg),
		ReadHeaderTimeout: 5 * time.Second,
	}
	servers := []*http.Server{public, ops}
	names := map[*http.Server]string{public: "public", ops: "ops"}
	if cfg.ForwardAuth.Listen != "" {
		// forward_auth.listen: front proxies ask here (every path).
		fa := &http.Server{
			Addr:              cfg.ForwardAuth.Listen,
			Handler:           gw.ForwardAuth(),
			ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout,
			// A check is small; one that declares a body it never sends
			// must not hold a connection for long.
			ReadTimeout:    10 * time.Second,
			IdleTimeout:    cfg.Listen.IdleTimeout,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, fa)
		names[fa] = "forward_auth"
	}
	go gw.ReleaseIdleMemory(ctx, idleMemoryEvery, idleMemoryQuiet)
	errc := make(chan error, len(servers)+1)
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", srv.Addr, err)
		}
		if srv == public {
			ln = proxy.LimitListener(ln, cfg.Listen, reg)
		}
		log.Info("listening", "addr", ln.Addr().String(), "listener", names[srv], "tls", srv.TLSConfig != nil)
		go func() {
			if srv.TLSConfig != nil {
				// TLS on top of the limited listener: a refused connection
				// costs no handshake. HTTP/2 by ALPN.
				errc <- srv.ServeTLS(ln, "", "")
				return
			}
			errc <- srv.Serve(ln)
		}()
	}
	var envoy *extauthz.Server
	if cfg.ForwardAuth.Envoy != "" {
		// forward_auth.envoy: Envoy's ext_authz asks here over gRPC.
		ln, err := net.Listen("tcp", cfg.ForwardAuth.Envoy)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.ForwardAuth.Envoy, err)
		}
		envoy = extauthz.New(gw, cfg.ForwardAuth, log)
		log.Info("listening", "addr", ln.Addr().String(), "listener", "envoy_ext_authz")
		go func() { errc <- envoy.Serve(ln) }() // the +1 of errc
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.Listen.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Listen.ShutdownTimeout)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		errs = append(errs, srv.Shutdown(sctx))
	}
	if envoy != nil {
		errs = append(errs, envoy.Shutdown(sctx))
	}
	return errors.Join(errs...)
}

// traceFlushTimeout bounds the export of the last spans at shutdown.
const traceFlushTimeout = 5 * time.Second

// certStatEvery is how often listen.tls's files are looked at when no file
// event came (some mounts send none).
const certStatEvery = time.Minute

// exportCatchUpEvery is how often the audit export copies records written
// by other processes (portero admin) from the store.
const exportCatchUpEvery = 10 * time.Second

// openAuditExport opens master_access.audit_log as the export of the trail
// in the store and mirrors every committed record to it; without the file,
// a Log that keeps nothing.
func openAuditExport(ctx context.Context, path string, store *access.Store, log *slog.Logger) (*audit.Log, error) {
	if path == "" {
		return audit.Discard(), nil
	}
	l, err := audit.OpenExport(ctx, path, store, log)
	if err != nil {
		return nil, err
	}
	store.OnCommit(func(recs []audit.Record) { l.Mirror(context.Background(), store, log, recs...) })
	return l, nil
}

func catchUpExport(ctx context.Context, l *audit.Log, store *access.Store, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if store.Health() != nil {
				continue
			}
			if err := l.CatchUp(ctx, store); err != nil && ctx.Err() == nil {
				log.Warn("audit export catch-up failed", "error", err.Error())
			}
		}
	}
}

// tuneGC raises the GC target unless GOGC is set. Portero's per-request
// garbage comes mostly from OPA's evaluator; at Go's default (100) the load
// bench spent about a third of the CPU collecting and regrowing goroutine
// stacks the collector had shrunk. 400 measured ~+50 % requests/s for
// ~+30 MiB of peak memory (docs/performance.md). GOGC in the environment wins.
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(400)
	log.Debug("GC target set to 400 (set GOGC to override)")
}

func cmdCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	// As serve loads it: compiled and, with policy.require_tests, tested.
	src, err := offlinePolicySource(cfg)
	if err != nil {
		return err
	}
	loaded, err := policy.Load(context.Background(), src, testGate(cfg))
	if err != nil {
		return err
	}
	var shadow *policy.Loaded
	if src := shadowSource(cfg); src != nil {
		if shadow, err = policy.Load(context.Background(), *src, testGate(cfg)); err != nil {
			return fmt.Errorf("policy.shadow_dir: %w", err)
		}
	}
	if cfg.Assertion.KeyFile != "" {
		if _, err := proxy.LoadAssertionKey(cfg.Assertion.KeyFile); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes, policy %s revision %s%s", cfg.File, len(cfg.Routes), src.Name, loaded.Revision, testsPassed(loaded))
	if shadow != nil {
		fmt.Fprintf(stdout, ", shadow policy %s revision %s%s", cfg.Policy.ShadowDir, shadow.Revision, testsPassed(shadow))
	}
	fmt.Fprintln(stdout, ")")
	return nil
}

// testsPassed says how many of a loaded policy's tests passed its test
// gate, or nothing when it was not gated.
func testsPassed(l *policy.Loaded) string {
	if l.Tests == 0 {
		return ""
	}
	return fmt.Sprintf(", %d tests passed", l.Tests)
}

func cmdTest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	coverage := fs.Bool("coverage", false, "report line coverage of the policy")
	verbose := fs.Bool("v", false, "list every test")
	runRe := fs.String("run", "", "run only tests whose name matches this regular expression")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src := policy.Source{Name: "embedded", FS: defaultrego.Bundle}
	if fs.NArg() > 0 {
		src = policy.DirSource(fs.Arg(0))
	}
	sum, err := policy.RunTests(context.Background(), src, policy.TestOptions{Coverage: *coverage, Verbose: *verbose, Run: *runRe}, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", sum.Passed, sum.Failed+sum.Errored)
	if sum.Failed+sum.Errored > 0 {
		return fmt.Errorf("%d of %d policy tests failed", sum.Failed+sum.Errored, sum.Passed+sum.Failed+sum.Errored)
	}
	if sum.Passed == 0 {
		return errors.New("no policy tests found (name them test_* in *_test.rego files)")
	}
	return nil
}

func cmdEval(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	inputPath := fs.String("input", "", "JSON file holding the policy input document (required)")
	explain := fs.Bool("explain", false, "print the evaluation trace")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *inputPath == "" {
		return errors.New("eval: --input FILE is required (a JSON policy input; see README)")
	}
	raw, err := os.ReadFile(*inputPath)
	if err != nil {
		return err
	}
	var input any
	if err := json.Unmarshal(raw, &input); err != nil {
		return fmt.Errorf("eval: %s is not JSON: %w", *inputPath, err)
	}
	src, err := offlinePolicySource(cfg)
	if err != nil {
		return err
	}
	loaded, err := policy.Compile(context.Background(), src)
	if err != nil {
		return err
	}
	d, trace, evalErr := loaded.EvalExplain(context.Background(), input, *explain)
	if trace != "" {
		fmt.Fprintln(stdout, trace)
	}
	out := map[string]any{"allow": d.Allow, "status": d.Status, "reason": d.Reason, "headers": d.Headers, "revision": loaded.Revision}
	if evalErr != nil {
		out["error"] = evalErr.Error()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// cmdExplain shows how the gateway classifies a request: the route, the
// tenant, the path as the app sees it, and the route mapping entry
// (data.portero.definitions.routes) that decides which feature, action,
// resource and scope it needs, or that none does, in which case the default
// policy refuses it (operation.unmapped).
func cmdExplain(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("explain: give a method and a URL or path, e.g. portero explain GET /t/acme/reviews/r1")
	}
	c, err := proxy.Classify(cfg, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	src, err := offlinePolicySource(cfg)
	if err != nil {
		return err
	}
	loaded, err := policy.Compile(context.Background(), src)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "request:   %s %s%s\n", c.Method, c.Host, c.Path)
	fmt.Fprintf(stdout, "route:     %s\n", c.Route)
	if c.Tenant == "" {
		fmt.Fprintln(stdout, "tenant:    none (the default policy refuses it: deny.no_tenant)")
		return nil
	}
	fmt.Fprintf(stdout, "tenant:    %s\n", c.Tenant)
	fmt.Fprintf(stdout, "app path:  /%s\n", strings.Join(c.AppSegments, "/"))
	entry, err := loaded.Operation(context.Background(), c.Method, c.AppSegments)
	if err != nil {
		return err
	}
	if entry == nil {
		fmt.Fprintln(stdout, "operation: none: no entry of data.portero.definitions.routes matches, so the default policy refuses it (operation.unmapped)")
		return nil
	}
	fmt.Fprintf(stdout, "operation: %v\n", entry["id"])
	for _, k := range []string{"feature", "action", "resource", "right", "open", "scope"} {
		if v, ok := entry[k]; ok {
			b, _ := json.Marshal(v)
			fmt.Fprintf(stdout, "  %-9s %s\n", k+":", b)
		}
	}
	return nil
}

// The gateway gives memory back to the system when fewer than
// idleMemoryQuiet requests arrived in idleMemoryEvery (under 100 a second).
const (
	idleMemoryEvery = 5 * time.Second
	idleMemoryQuiet = 500
)

func cmdKeygen(stdout io.Writer) error {
	pem, err := proxy.GenerateAssertionKey()
	if err != nil {
		return err
	}
	_, err = stdout.Write(pem)
	return err
}
