package opamgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/policy"
)

// BundleOptions configure policy from a bundle server (policy.bundle).
type BundleOptions struct {
	Service Service
	// Resource is the bundle's path on the service
	// ("bundles/portero.tar.gz").
	Resource string
	// Name names the bundle in status reports and decision logs.
	Name string
	// MinDelay and MaxDelay bound the wait between two polls (OPA counts
	// them in whole seconds).
	MinDelay, MaxDelay time.Duration
	// LongPollTimeout, when set, asks the server to hold each request
	// until the bundle changes or this much time passed (OPA's long
	// polling; a server that does not support it is polled).
	LongPollTimeout time.Duration
	// Signing, when set, makes every bundle carry a signature by this key
	// (OPA's .signatures.json); an unsigned or tampered bundle is refused.
	Signing *SigningKey
	// PersistDir keeps the last bundle that loaded, and serves it at
	// start when the server cannot be reached; empty keeps none.
	PersistDir string
	// StartTimeout bounds the first download at start (default 30s).
	StartTimeout time.Duration
	// Engine is how the engine loads (test gate, shadow policy, metrics,
	// log): its Source is the bundle's.
	Engine policy.EngineOptions
}

// SigningKey verifies bundle signatures.
type SigningKey struct {
	KeyID string
	// PublicKey is a PEM public key (RS*, PS*, ES*) or an HMAC secret
	// (HS*).
	PublicKey []byte
	Algorithm string // default RS256
	// Scope, when set, must match the signature's scope claim.
	Scope string
}

// bundleClient downloads the bundle with OPA's downloader and offers each
// new one to the engine.
type bundleClient struct {
	c      *Client
	o      BundleOptions
	dl     *download.Downloader
	source string // names the source in logs and errors

	mu       sync.Mutex
	engine   *policy.Engine   // nil until the first load
	first    *download.Update // the first download, before there is an engine
	firstRaw []byte
	status   bundleplugin.Status
	// active is read on every decision logged (activeRevision), never
	// waiting for a load that holds mu.
	active atomic.Pointer[activeBundle]

	metrics bundleMetrics
}

// activeBundle is the bundle being served: its revision (the manifest's)
// and the policy revision it loaded as (the content hash).
type activeBundle struct {
	revision string
	policy   string
}

type bundleMetrics struct {
	info      *prometheus.GaugeVec
	downloads *prometheus.CounterVec
	activate  prometheus.Histogram
}

// Results of a bundle request (portero_policy_bundle_downloads_total).
const (
	downloadNew         = "new"
	downloadNotModified = "not_modified"
	downloadFailed      = "failed"
	downloadRefused     = "refused" // downloaded and verified, but it did not load
)

var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}

func newBundleClient(c *Client, o BundleOptions) (*bundleClient, error) {
	if o.Name == "" {
		o.Name = "portero"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	dc := download.Config{Trigger: c.trigger()}
	secs := func(d time.Duration) *int64 { s := max(int64(d/time.Second), 1); return &s }
	if o.MinDelay > 0 || o.MaxDelay > 0 {
		dc.Polling.MinDelaySeconds, dc.Polling.MaxDelaySeconds = secs(o.MinDelay), secs(max(o.MaxDelay, o.MinDelay))
	}
	if o.LongPollTimeout > 0 {
		dc.Polling.LongPollingTimeoutSeconds = secs(o.LongPollTimeout)
	}
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("policy.bundle: %w", err)
	}
	b := &bundleClient{c: c, o: o, source: "bundle " + strings.TrimSuffix(o.Service.URL, "/") + "/" + strings.TrimPrefix(o.Resource, "/")}
	b.status.Name = o.Name
	b.dl = download.New(dc, c.manager.Client(bundleService), o.Resource).
		WithCallback(b.onUpdate).
		WithBundleName(o.Name).
		WithBundlePersistence(true). // the raw bytes, to keep the last good bundle
		WithBundleParserOpts(parserOptions).
		WithLogAttrs(map[string]any{"bundle": o.Name})
	if vc := b.verification(); vc != nil {
		b.dl = b.dl.WithBundleVerificationConfig(vc)
	}
	reg := c.o.Registry
	b.metrics = bundleMetrics{
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portero_policy_bundle_info",
			Help: "The bundle being served (policy.bundle) and its revision (the manifest's); always 1. portero_policy_info has the policy's content revision.",
		}, []string{"bundle", "revision"}),
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_policy_bundle_downloads_total",
			Help: "Requests to the bundle server by result: new (a bundle that loaded), not_modified (304), failed (unreachable, an HTTP error, a bad or unverified bundle), refused (verified but it did not compile or its tests failed; the last good policy keeps serving).",
		}, []string{"result"}),
		activate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portero_policy_bundle_activation_seconds",
			Help:    "Time from a bundle's download to its policy being served (compile, tests, swap).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
	}
	for _, r := range []string{downloadNew, downloadNotModified, downloadFailed, downloadRefused} {
		b.metrics.downloads.WithLabelValues(r)
	}
	reg.MustRegister(b.metrics.info, b.metrics.downloads, b.metrics.activate)
	return b, nil
}

// verification is the signature check of every bundle, or nil when
// bundles need not be signed.
func (b *bundleClient) verification() *bundle.VerificationConfig {
	s := b.o.Signing
	if s == nil {
		return nil
	}
	return bundle.NewVerificationConfig(b.c.manager.PublicKeys(), s.KeyID, s.Scope, nil)
}

// NewEngine builds the policy engine from the bundle: it downloads the
// bundle once (within BundleOptions.StartTimeout) and loads it; when the
// server cannot be reached, or what it serves does not load, it loads the
// bundle persisted by an earlier run. It fails when neither loads.
func (c *Client) NewEngine(ctx context.Context) (*policy.Engine, error) {
	b := c.bundle
	if b == nil {
		return nil, errors.New("policy.bundle is not configured")
	}
	persisted, perr := b.readPersisted()
	if persisted != nil {
		b.dl.SetCache(persisted.etag) // 304 when the server has nothing newer
	}
	dctx, cancel := context.WithTimeout(ctx, b.o.StartTimeout)
	derr := b.dl.Trigger(dctx)
	cancel()
	b.mu.Lock()
	first, raw := b.first, b.firstRaw
	b.first, b.firstRaw = nil, nil
	b.mu.Unlock()

	type candidate struct {
		from   string
		bundle *bundle.Bundle
		raw    []byte // to persist; nil when it came from disk
		etag   string
	}
	var candidates []candidate
	if first != nil && first.Bundle != nil {
		candidates = append(candidates, candidate{"server", first.Bundle, raw, first.ETag})
	}
	if persisted != nil {
		candidates = append(candidates, candidate{"persisted", persisted.bundle, nil, persisted.etag})
	}
	errs := []error{}
	if derr != nil {
		errs = append(errs, fmt.Errorf("download: %w", derr))
	}
	if perr != nil {
		errs = append(errs, fmt.Errorf("persisted bundle: %w", perr))
	}
	for _, cand := range candidates {
		start := time.Now()
		files, err := bundleFiles(cand.bundle)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s bundle: %w", cand.from, err))
			continue
		}
		o := b.o.Engine
		o.Source = policy.FilesSource(b.source, files)
		e, err := policy.NewEngineWith(ctx, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s bundle: %w", cand.from, err))
			b.metrics.downloads.WithLabelValues(downloadRefused).Inc()
			continue
		}
		rev := cand.bundle.Manifest.Revision
		b.mu.Lock()
		b.engine = e
		b.activated(rev, e.Current().Revision, cand.from == "server")
		// A download that finished after the start timeout was kept for
		// want of an engine; from now on onUpdate offers them itself.
		late, lateRaw := b.first, b.firstRaw
		b.first, b.firstRaw = nil, nil
		b.mu.Unlock()
		b.metrics.activate.Observe(time.Since(start).Seconds())
		if cand.raw != nil {
			b.persist(cand.raw, cand.etag)
		}
		b.c.manager.UpdatePluginStatus("bundle", &plugins.Status{State: plugins.StateOK})
		attrs := []any{"bundle", b.o.Name, "bundle_revision", rev, "revision", e.Current().Revision, "from", cand.from}
		if len(errs) > 0 {
			attrs = append(attrs, "error", errors.Join(errs...).Error())
			b.c.log.Warn("policy bundle: serving the persisted bundle; the server's did not load", attrs...)
		} else {
			b.c.log.Info("policy bundle loaded", attrs...)
		}
		if late != nil && late.Bundle != nil {
			b.mu.Lock()
			b.offer(ctx, late, lateRaw)
			b.mu.Unlock()
		}
		return e, nil
	}
	where := "no persistence directory is set (policy.bundle.persist_dir)"
	if b.o.PersistDir != "" {
		where = "nothing usable is persisted in " + b.o.PersistDir
	}
	return nil, fmt.Errorf("load policy %s: no bundle to serve: %w; and %s", b.source, errors.Join(errs...), where)
}

// onUpdate is the downloader's callback: the first download is kept for
// NewEngine; from then on each new bundle is offered to the engine. An
// error it returns is the download's (the downloader backs off).
func (b *bundleClient) onUpdate(ctx context.Context, u download.Update) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status.SetRequest()
	if u.Error != nil {
		b.metrics.downloads.WithLabelValues(downloadFailed).Inc()
		b.status.SetError(u.Error)
		if code, ok := httpCode(u.Error); ok {
			b.status.HTTPCode = json.Number(fmt.Sprint(code))
		}
		if b.engine != nil {
			b.c.log.Warn("policy bundle download failed; still serving the last good policy",
				"bundle", b.o.Name, "source", b.source, "error", u.Error.Error())
			b.reportStatus()
		}
		return nil // the downloader has the error already
	}
	if u.Bundle == nil { // 304: nothing new
		b.metrics.downloads.WithLabelValues(downloadNotModified).Inc()
		b.status.LastSuccessfulRequest = b.status.LastRequest
		return nil
	}
	raw, err := io.ReadAll(u.Raw)
	if err != nil {
		return err
	}
	b.status.LastSuccessfulRequest = b.status.LastRequest
	b.status.SetDownloadSuccess()
	b.status.SetBundleSize(u.Size)
	if b.engine == nil {
		b.first, b.firstRaw = &u, raw
		return nil
	}
	b.offer(ctx, &u, raw)
	return nil
}

// offer hands a downloaded bundle to the engine and records the outcome.
// The caller holds mu.
func (b *bundleClient) offer(ctx context.Context, u *download.Update, raw []byte) {
	start := time.Now()
	rev := u.Bundle.Manifest.Revision
	files, err := bundleFiles(u.Bundle)
	if err == nil {
		err = b.engine.Offer(ctx, files, "bundle", b.o.Name, "bundle_revision", rev, "etag", u.ETag)
	}
	if err != nil {
		// The engine logged and counted the refusal; the downloader keeps
		// this ETag, so the refused bundle is not fetched again.
		b.metrics.downloads.WithLabelValues(downloadRefused).Inc()
		b.status.SetError(err)
		b.reportStatus()
		return
	}
	b.metrics.activate.Observe(time.Since(start).Seconds())
	b.metrics.downloads.WithLabelValues(downloadNew).Inc()
	b.activated(rev, b.engine.Current().Revision, true)
	b.persist(raw, u.ETag)
	b.reportStatus()
}

// activated records the bundle now served. The caller holds mu.
func (b *bundleClient) activated(revision, policyRevision string, downloaded bool) {
	b.active.Store(&activeBundle{revision: revision, policy: policyRevision})
	b.status.SetActivateSuccess(revision)
	b.status.SetError(nil)
	if !downloaded {
		b.status.Message = "serving the persisted bundle"
	}
	b.metrics.info.Reset()
	b.metrics.info.WithLabelValues(b.o.Name, revision).Set(1)
}

// activeRevision is the bundle revision of the policy revision rev, when
// rev is the bundle's served policy.
func (b *bundleClient) activeRevision(rev string) (string, bool) {
	a := b.active.Load()
	if a == nil || a.policy != rev {
		return "", false
	}
	return a.revision, true
}

// reportStatus hands the bundle's status to the status plugin, which
// reports it at once. The caller holds mu, or the client is starting.
func (b *bundleClient) reportStatus() {
	if b.c.status == nil {
		return
	}
	s := b.status
	s.Errors = append([]error(nil), s.Errors...)
	b.c.status.BulkUpdateBundleStatus(map[string]*bundleplugin.Status{b.o.Name: &s})
}

func (b *bundleClient) start(ctx context.Context) {
	if !b.c.o.manual {
		b.dl.Start(ctx)
	}
}

func (b *bundleClient) stopPolling(ctx context.Context) {
	b.dl.Stop(ctx)
}

// poll downloads once now (tests).
func (b *bundleClient) poll(ctx context.Context) error { return b.dl.Trigger(ctx) }

// bundleFiles turns a bundle into the policy files the engine loads: its
// modules by their paths in the bundle (tests included: the test gate runs
// them) and its data as one data.json at the root.
func bundleFiles(b *bundle.Bundle) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, m := range b.Modules {
		name := strings.TrimPrefix(m.RelativePath, "/")
		if name == "" {
			name = strings.TrimPrefix(m.Path, "/")
		}
		files[name] = m.Raw
	}
	if len(files) == 0 {
		return nil, errors.New("the bundle has no .rego files")
	}
	if len(b.Data) > 0 {
		data, err := json.Marshal(b.Data)
		if err != nil {
			return nil, fmt.Errorf("bundle data: %w", err)
		}
		files["data.json"] = data
	}
	return files, nil
}

// persisted is a bundle read back from PersistDir.
type persisted struct {
	bundle *bundle.Bundle
	etag   string
}

// persistPaths are where the last good bundle and its ETag are kept.
func (b *bundleClient) persistPaths() (tarball, etag string) {
	dir := filepath.Join(b.o.PersistDir, "bundles", b.o.Name)
	return filepath.Join(dir, "bundle.tar.gz"), filepath.Join(dir, "etag")
}

// persist keeps raw as the last good bundle: written beside, then renamed
// over the old one, so a crash never leaves half a bundle.
func (b *bundleClient) persist(raw []byte, etag string) {
	if b.o.PersistDir == "" {
		return
	}
	tarball, etagFile := b.persistPaths()
	err := writeAtomic(tarball, raw)
	if err == nil {
		err = writeAtomic(etagFile, []byte(etag))
	}
	if err != nil {
		b.c.log.Warn("policy bundle: could not persist the bundle; a restart while the server is down will have no policy", "bundle", b.o.Name, "error", err.Error())
	}
}

func writeAtomic(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// readPersisted reads the persisted bundle, its signature verified again
// (the file may have been changed on disk): nil, nil when there is none.
func (b *bundleClient) readPersisted() (*persisted, error) {
	if b.o.PersistDir == "" {
		return nil, nil
	}
	tarball, etagFile := b.persistPaths()
	raw, err := os.ReadFile(tarball)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	r := bundle.NewCustomReader(bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), "")).
		WithRegoVersion(parserOptions.RegoVersion).
		WithProcessAnnotations(true).
		WithBundleName(b.o.Name)
	if vc := b.verification(); vc != nil {
		r = r.WithBundleVerificationConfig(vc)
	}
	bu, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tarball, err)
	}
	etag, _ := os.ReadFile(etagFile) // without it the server sends the bundle again
	return &persisted{bundle: &bu, etag: strings.TrimSpace(string(etag))}, nil
}

// httpCode is the HTTP status of a failed download, when it got one.
func httpCode(err error) (int, bool) {
	if he, ok := errors.AsType[download.HTTPError](err); ok {
		return he.StatusCode, true
	}
	return 0, false
}

// PersistedSource is the last good bundle a running gateway persisted in
// policy.bundle.persist_dir, its signature verified again: the policy the
// commands that load it without serving (portero check, eval, explain,
// admin) read when it comes from a bundle server.
func (c *Client) PersistedSource() (policy.Source, error) {
	b := c.bundle
	if b == nil {
		return policy.Source{}, errors.New("policy.bundle is not set")
	}
	p, err := b.readPersisted()
	if err != nil {
		return policy.Source{}, fmt.Errorf("policy.bundle: the persisted bundle: %w", err)
	}
	if p == nil {
		where := "policy.bundle.persist_dir is not set"
		if b.o.PersistDir != "" {
			where = "nothing is persisted in " + b.o.PersistDir + " yet (portero serve keeps the last good bundle there)"
		}
		return policy.Source{}, fmt.Errorf("policy.bundle: this command reads the policy a gateway last served, and %s; to check a bundle's source, run portero test on its directory", where)
	}
	files, err := bundleFiles(p.bundle)
	if err != nil {
		return policy.Source{}, err
	}
	return policy.FilesSource("bundle "+b.o.Name+" (persisted in "+b.o.PersistDir+")", files), nil
}
