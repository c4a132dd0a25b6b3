// Package gatewaytest builds a whole gateway in-process for tests: a test
// OIDC issuer, the request path (proxy), the authenticator (proxy/authn)
// and the control plane (control) wired as cmd/portero wires them, an
// upstream that records what it received, and a browser that signs in.
// Tests of either plane use it from their external test packages, so each
// plane's tests see the other only through HTTP.
package gatewaytest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/control"
	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/internal/testlog"
	"github.com/portero-gateway/portero/internal/tracing"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/proxy"
	"github.com/portero-gateway/portero/proxy/authn"
	defaultrego "github.com/portero-gateway/portero/rego"
)

// Received is what the upstream saw.
type Received struct {
	Method  string
	Path    string
	Query   string
	Host    string
	Header  http.Header
	Trailer http.Header
	Body    string
}

// Harness is one gateway with its issuer and upstream.
type Harness struct {
	Iss      *testissuer.Issuer
	Gateway  *proxy.Gateway
	Control  *control.Plane
	Authn    *authn.Authenticator
	Engine   *policy.Engine
	Server   *httptest.Server // the gateway, for real HTTP clients
	Upstream *httptest.Server
	// Got receives what the upstream saw (buffered; extra requests are
	// dropped).
	Got      chan Received
	Registry *prometheus.Registry
	Logs     *SyncBuffer
	// Tracing is the tracer provider of tracing: (nil when off); Shutdown
	// exports every span still waiting.
	Tracing *tracing.Provider
	// Now is the gateway's clock.
	Now func() time.Time
}

// Config is the default test configuration; it gets the issuer's URL and
// the upstream's URL twice.
const Config = `
tenant:
  host: "{tenant}.apps.example.com"
  path: /t/{tenant}/
oidc:
  issuer: %s
  audiences: [portero, other-api]
routes:
  - name: api
    hosts: ["*.apps.example.com"]
    path_prefix: /api
    upstream: %s
    api: true
    body: {json: true, max_bytes: 64}
  - name: app
    upstream: %s/base
`

// LoginOIDCConfig and LoginSessionConfig turn on browser sign-in.
const LoginOIDCConfig = `  client_id: portero-test
  client_secret: s3cret
  redirect_url: http://localhost/.portero/callback
  scopes: [openid, email, offline_access]
`

const LoginSessionConfig = `
session:
  keys: ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
  lifetime: 8h
`

// LoginCookie is the login transaction's cookie.
const LoginCookie = "portero_login"

// Options vary the test gateway.
type Options struct {
	Login bool             // browser sign-in on
	Now   func() time.Time // a clock shared by gateway and issuer
	// Config replaces Config; it gets the issuer's and the upstream's URL.
	Config func(issuer, upstream string) string
	Store  *access.Store // an access store behind the gateway
	Extra  string        // appended to the configuration
	Audit  *audit.Log    // the master-access audit export
	// Engine replaces the policy engine built from the policy files.
	Engine *policy.Engine
	// NoDiscovery leaves OIDC discovery undone (the gateway is not ready).
	NoDiscovery bool
	// DiscardLogs: the gateway formats every log line as a served one
	// does but keeps none (Logs stays empty). For benchmarks of the
	// request path: a buffer growing by a line per request for the whole
	// run measured its own growth (copying and clearing ever larger
	// slices), which no gateway writing to stderr pays.
	DiscardLogs bool
}

// New is NewWith without options.
func New(t testing.TB, policyFS fstest.MapFS) *Harness { return NewWith(t, policyFS, Options{}) }

// NewWith builds the gateway for policyFS (nil: the embedded default
// policy) and o.
func NewWith(t testing.TB, policyFS fstest.MapFS, o Options) *Harness {
	t.Helper()
	now := o.Now
	h := &Harness{Iss: testissuer.New(t), Got: make(chan Received, 16), Registry: prometheus.NewRegistry(), Logs: &SyncBuffer{}, Now: time.Now}
	if now != nil {
		h.Iss.Now, h.Now = now, now
	}
	h.Upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case h.Got <- Received{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Host: r.Host,
			Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: string(body)}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(h.Upstream.Close)
	text := fmt.Sprintf(Config, h.Iss.URL, h.Upstream.URL, h.Upstream.URL)
	if o.Config != nil {
		text = o.Config(h.Iss.URL, h.Upstream.URL)
	}
	if o.Login {
		text = strings.Replace(text, "  audiences: [portero, other-api]\n", "  audiences: [portero, other-api]\n"+LoginOIDCConfig, 1) + LoginSessionConfig
	}
	text += o.Extra
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var sink io.Writer = h.Logs
	if o.DiscardLogs {
		sink = io.Discard
	}
	log := slog.New(slog.NewJSONHandler(sink, nil))
	h.Engine = o.Engine
	if h.Engine == nil {
		src := policy.Source{Name: "embedded", FS: defaultrego.Bundle}
		if policyFS != nil {
			src = policy.Source{Name: "test", FS: policyFS}
		}
		if h.Engine, err = policy.NewEngine(context.Background(), src, policy.NewMetrics(h.Registry), log); err != nil {
			t.Fatal(err)
		}
	}
	if h.Authn, err = authn.New(cfg, h.Registry, log, now); err != nil {
		t.Fatal(err)
	}
	if h.Tracing, err = tracing.New(cfg.Tracing, "test", log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Tracing.Shutdown(ctx)
	})
	opts := proxy.Options{Engine: h.Engine, Metrics: proxy.NewMetrics(h.Registry), Log: log, Now: now, Store: o.Store, Authn: h.Authn,
		Tracing: h.Tracing.TracerProvider()}
	if o.Store != nil {
		opts.Access = access.NewResolver(o.Store, 1000, proxy.PrepareAccess, now)
	}
	if h.Gateway, err = proxy.New(cfg, opts); err != nil {
		t.Fatal(err)
	}
	auditExport := o.Audit
	if auditExport == nil && cfg.Master.Enabled() {
		auditExport = audit.Discard()
	}
	if h.Control, err = control.New(cfg, control.Options{Authn: h.Authn, Decider: h.Gateway, Store: o.Store, Engine: h.Engine,
		Audit: auditExport, Registry: h.Registry, Log: log, Now: now}); err != nil {
		t.Fatal(err)
	}
	h.Gateway.SetControl(h.Control)
	if !o.NoDiscovery {
		if err := h.Authn.Bearer.Discover(context.Background(), http.DefaultClient); err != nil {
			t.Fatal(err)
		}
	}
	h.Server = httptest.NewServer(h.Gateway)
	t.Cleanup(h.Server.Close)
	return h
}

// Member returns a valid token for a member of acme.
func (h *Harness) Member(t testing.TB) string {
	c := h.Iss.Claims("alice", "portero")
	c["email"] = "alice@example.com"
	c["roles"] = []string{"acme:account_manager", "globex:administrator"}
	return h.Iss.Sign(t, c)
}

// Do sends one request through the gateway, with a bearer token when token
// is not "".
func (h *Harness) Do(t testing.TB, method, url, token string, hdr http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, url, rb)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.Gateway.ServeHTTP(rec, req)
	return rec
}

// UpstreamSaw waits for the upstream's next request.
func (h *Harness) UpstreamSaw(t testing.TB) Received {
	t.Helper()
	select {
	case r := <-h.Got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("upstream received nothing")
		return Received{}
	}
}

// UpstreamSawNothing fails when the upstream has received a request.
func (h *Harness) UpstreamSawNothing(t testing.TB) {
	t.Helper()
	select {
	case r := <-h.Got:
		t.Fatalf("upstream received a request it should not have: %s", r.Path)
	default:
	}
}

// Metric is the value of a counter or gauge on the harness's registry, for
// the series with the given label pairs ("route", "api", …); 0 when absent.
func (h *Harness) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := h.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ReasonOf is a JSON denial's reason.
func ReasonOf(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct{ Reason string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("denial is not JSON: %q", rec.Body.String())
	}
	return body.Reason
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// SyncBuffer is a log sink safe for concurrent writes.
type SyncBuffer = testlog.Buffer

// SeedSQL runs statements on a store's file directly.
func SeedSQL(t testing.TB, path, stmts string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmts); err != nil {
		t.Fatal(err)
	}
}
