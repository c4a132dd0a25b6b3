package opamgmt

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/policy"
)

// harness is a Client against in-process protocol peers, with every loop
// off unless a test starts it: downloads, uploads and reports happen when
// the test asks.
type harness struct {
	t      *testing.T
	reg    *prometheus.Registry
	logs   *logRecorder
	client *Client
	engine *policy.Engine
}

func newHarness(t *testing.T, o Options, manual bool) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), logs: newLogRecorder()}
	log := slog.New(h.logs)
	o.Registry, o.Log, o.Version, o.manual = h.reg, log, "test", manual
	if o.Bundle != nil {
		o.Bundle.Engine = policy.EngineOptions{Metrics: policy.NewMetrics(h.reg), Log: log, Tests: policy.TestsRequired}
		if o.Bundle.Resource == "" {
			o.Bundle.Resource = "bundles/portero.tar.gz"
		}
		if o.Bundle.StartTimeout == 0 {
			o.Bundle.StartTimeout = 5 * time.Second
		}
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.client = c
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Stop(ctx)
	})
	return h
}

func (h *harness) start(ctx context.Context) {
	h.t.Helper()
	if h.client.bundle != nil && h.engine == nil {
		e, err := h.client.NewEngine(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		h.engine = e
	}
	if err := h.client.Start(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// reason is what the served policy answers a GET with.
func (h *harness) reason() string {
	h.t.Helper()
	ev := h.engine.Decide(context.Background(), &policy.Input{Request: policy.Request{Method: "GET"}})
	if ev.Err != nil {
		h.t.Fatal(ev.Err)
	}
	return ev.Decision.Reason
}

func (h *harness) downloads(result string) float64 {
	return testutil.ToFloat64(h.client.bundle.metrics.downloads.WithLabelValues(result))
}

func (h *harness) poll() {
	h.t.Helper()
	_ = h.client.bundle.poll(context.Background()) // outcomes are checked through the engine and the metrics
}

func bundleOpts(s *bundleServer) *BundleOptions {
	return &BundleOptions{Service: Service{URL: s.srv.URL, Token: "bundle-token"}}
}

// Polling: the first download, 304 while the ETag holds, a new bundle
// swapped in; the bearer token is sent.
func TestBundlePollingWithETag(t *testing.T) {
	t.Parallel()
	srv := newBundleServer(t)
	srv.publish(makeBundle(t, "v1", "hello v1", authzTestRego, nil), `"e1"`)
	h := newHarness(t, Options{Bundle: bundleOpts(srv)}, true)
	h.start(context.Background())
	if got := h.reason(); got != "hello v1" {
		t.Fatalf("served %q, want the v1 bundle", got)
	}
	h.poll()
	if got := h.downloads(downloadNotModified); got != 1 {
		t.Errorf("not_modified downloads = %v, want 1", got)
	}
	srv.publish(makeBundle(t, "v2", "hello v2", authzTestRego, nil), `"e2"`)
	h.poll()
	if got := h.reason(); got != "hello v2" {
		t.Fatalf("served %q after v2 was published, want v2", got)
	}
	if got := testutil.ToFloat64(h.client.bundle.metrics.info.WithLabelValues("portero", "v2")); got != 1 {
		t.Errorf("portero_policy_bundle_info{revision=v2} = %v, want 1", got)
	}
	reqs := srv.log()
	want := []bundleRequest{
		{ifNoneMatch: "", status: 200},
		{ifNoneMatch: `"e1"`, status: 304},
		{ifNoneMatch: `"e1"`, status: 200},
	}
	if len(reqs) != len(want) {
		t.Fatalf("requests = %+v, want %d", reqs, len(want))
	}
	for i, w := range want {
		if reqs[i].ifNoneMatch != w.ifNoneMatch || reqs[i].status != w.status {
			t.Errorf("request %d: If-None-Match %q → %d, want %q → %d", i, reqs[i].ifNoneMatch, reqs[i].status, w.ifNoneMatch, w.status)
		}
		if reqs[i].auth != "Bearer bundle-token" {
			t.Errorf("request %d: Authorization %q, want the bearer token", i, reqs[i].auth)
		}
	}
}

// Long polling: the server holds the request; a new bundle is served as
// soon as it is published.
func TestBundleLongPolling(t *testing.T) {
	t.Parallel()
	srv := newBundleServer(t)
	srv.publish(makeBundle(t, "v1", "hello v1", authzTestRego, nil), `"e1"`)
	o := bundleOpts(srv)
	o.LongPollTimeout = 30 * time.Second
	o.MinDelay, o.MaxDelay = 60*time.Second, 60*time.Second // polling alone would not see v2 in time
	h := newHarness(t, Options{Bundle: o}, false)
	h.start(context.Background())
	published := time.Now()
	srv.publish(makeBundle(t, "v2", "hello v2", authzTestRego, nil), `"e2"`)
	h.logs.waitFor(t, "policy loaded", "bundle_revision", "v2")
	if got := h.reason(); got != "hello v2" {
		t.Fatalf("served %q, want v2", got)
	}
	t.Logf("long poll: v2 served %v after it was published", time.Since(published).Round(time.Millisecond))
	for _, r := range srv.log() {
		if !strings.Contains(r.prefer, "wait=30") {
			t.Errorf("request without the long-poll preference: Prefer %q", r.prefer)
		}
	}
}

// Signed bundles: one signed by the configured key loads; a tampered one,
// an unsigned one and one signed by another key are refused, and the last
// good policy keeps serving.
func TestSignedBundles(t *testing.T) {
	t.Parallel()
	key, other := newSigner(t, "portero"), newSigner(t, "portero")
	good := makeBundle(t, "v1", "signed", authzTestRego, key)
	cases := []struct {
		name    string
		tarball []byte
	}{
		{"tampered", tamper(t, makeBundle(t, "v2", "signed", authzTestRego, key))},
		{"unsigned", makeBundle(t, "v3", "unsigned", authzTestRego, nil)},
		{"other key", makeBundle(t, "v4", "forged", authzTestRego, other)},
	}
	srv := newBundleServer(t)
	srv.publish(good, `"good"`)
	o := bundleOpts(srv)
	o.Signing = &SigningKey{KeyID: "portero", PublicKey: []byte(key.public), Algorithm: "RS256"}
	h := newHarness(t, Options{Bundle: o}, true)
	h.start(context.Background())
	if got := h.reason(); got != "signed" {
		t.Fatalf("served %q, want the signed bundle", got)
	}
	for i, c := range cases {
		srv.publish(c.tarball, `"bad`+c.name+`"`)
		h.poll()
		if got := h.reason(); got != "signed" {
			t.Errorf("%s bundle: served %q, want the last good one", c.name, got)
		}
		if got := h.downloads(downloadFailed); got != float64(i+1) {
			t.Errorf("%s bundle: failed downloads = %v, want %d", c.name, got, i+1)
		}
	}
}

// tamper changes the policy inside a signed bundle without re-signing it.
func tamper(t *testing.T, tarball []byte) []byte {
	t.Helper()
	files := untar(t, tarball)
	files["/authz.rego"] = []byte(strings.Replace(string(files["/authz.rego"]), `input.request.method == "GET"`, `true`, 1))
	return retar(t, files)
}

// Server down at start: the bundle persisted by the last run serves; with
// nothing persisted the start fails with the reason.
func TestPersistedBundleServesWhenServerIsDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := newSigner(t, "portero")
	srv := newBundleServer(t)
	srv.publish(makeBundle(t, "v1", "persisted", authzTestRego, key), `"e1"`)
	o := func() *BundleOptions {
		o := bundleOpts(srv)
		o.PersistDir = dir
		o.Signing = &SigningKey{KeyID: "portero", PublicKey: []byte(key.public)}
		return o
	}
	first := newHarness(t, Options{Bundle: o()}, true)
	first.start(context.Background())
	if _, err := os.Stat(filepath.Join(dir, "bundles", "portero", "bundle.tar.gz")); err != nil {
		t.Fatalf("bundle not persisted: %v", err)
	}

	// Restart with the server answering 304 to the persisted ETag.
	again := newHarness(t, Options{Bundle: o()}, true)
	again.start(context.Background())
	if got := again.reason(); got != "persisted" {
		t.Fatalf("served %q on restart, want the persisted bundle", got)
	}
	if reqs := srv.log(); reqs[len(reqs)-1].ifNoneMatch != `"e1"` || reqs[len(reqs)-1].status != 304 {
		t.Errorf("restart request = %+v, want the persisted ETag answered with 304", reqs[len(reqs)-1])
	}

	srv.setDown(true)
	down := newHarness(t, Options{Bundle: o()}, true)
	down.start(context.Background())
	if got := down.reason(); got != "persisted" {
		t.Fatalf("served %q with the server down, want the persisted bundle", got)
	}

	// A persisted file changed on disk fails its signature check.
	tarball := filepath.Join(dir, "bundles", "portero", "bundle.tar.gz")
	raw, _ := os.ReadFile(tarball)
	if err := os.WriteFile(tarball, tamper(t, raw), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := newHarness(t, Options{Bundle: o()}, true)
	if _, err := bad.client.NewEngine(context.Background()); err == nil || !strings.Contains(err.Error(), "persisted bundle") {
		t.Errorf("tampered persisted bundle with the server down: err = %v, want a refusal naming the persisted bundle", err)
	}

	none := newHarness(t, Options{Bundle: &BundleOptions{Service: Service{URL: srv.srv.URL}}}, true)
	_, err := none.client.NewEngine(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no persistence directory") || !strings.Contains(err.Error(), "Service Unavailable") {
		t.Errorf("server down, nothing persisted: err = %v, want the download error and the missing persist_dir", err)
	}
}

// A bundle whose own tests fail is refused, counted, not persisted and
// not fetched again; the last good policy keeps serving.
func TestBundleWithFailingTestsIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := newBundleServer(t)
	srv.publish(makeBundle(t, "v1", "good", authzTestRego, nil), `"e1"`)
	o := bundleOpts(srv)
	o.PersistDir = dir
	h := newHarness(t, Options{Bundle: o}, true)
	h.start(context.Background())
	persisted, _ := os.ReadFile(filepath.Join(dir, "bundles", "portero", "bundle.tar.gz"))

	srv.publish(makeBundle(t, "v2", "bad", failingTestRego, nil), `"e2"`)
	h.poll()
	if got := h.reason(); got != "good" {
		t.Fatalf("served %q, want the last good bundle", got)
	}
	if got := h.downloads(downloadRefused); got != 1 {
		t.Errorf("refused downloads = %v, want 1", got)
	}
	if tf := policy.FailedTests(h.engine.LastReloadError().Err); len(tf) != 1 || !strings.Contains(tf[0].Name, "test_post_allowed") {
		t.Errorf("failing tests = %+v, want test_post_allowed", tf)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "bundles", "portero", "bundle.tar.gz")); string(now) != string(persisted) {
		t.Error("the refused bundle was persisted")
	}
	h.poll()
	if reqs := srv.log(); reqs[len(reqs)-1].status != 304 {
		t.Errorf("after a refusal the same bundle was fetched again: %+v", reqs[len(reqs)-1])
	}
	if h.client.bundle.status.Code == "" {
		t.Error("the bundle status has no error after a refusal")
	}
}

// Decision logs: events in OPA's format, gzipped JSON arrays, with the
// bundle's revision and the labels.
func TestDecisionLogsReachTheCollector(t *testing.T) {
	t.Parallel()
	srv := newBundleServer(t)
	srv.publish(makeBundle(t, "v7", "logged", authzTestRego, nil), `"e7"`)
	col := newCollector(t)
	h := newHarness(t, Options{ID: "gw-1", Bundle: bundleOpts(srv), DecisionLogs: &LogsOptions{Service: Service{URL: col.srv.URL}}}, true)
	h.start(context.Background())
	ctx := context.Background()
	ev := h.engine.Decide(ctx, &policy.Input{Request: policy.Request{Method: "GET"}})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, id := range []string{"d1", "d2", "d3"} {
		h.client.Record(ctx, &policy.DecisionRecord{ID: id, At: at, Input: json.RawMessage(`{"request":{"method":"GET"}}`),
			Result: map[string]any{"allow": ev.Decision.Allow, "reason": ev.Decision.Reason}, Revision: ev.Revision, Duration: 42 * time.Microsecond})
	}
	if err := h.client.flushDecisionLogs(ctx); err != nil {
		t.Fatal(err)
	}
	events := col.events()
	if len(events) != 3 {
		t.Fatalf("collector received %d events, want 3", len(events))
	}
	e := events[0]
	checks := map[string]any{
		"decision_id": "d1",
		"path":        "portero/authz/decision",
		"timestamp":   "2026-01-02T03:04:05Z",
	}
	if _, ok := e["revision"]; ok {
		t.Errorf("event has revision %v besides the bundle's", e["revision"])
	}
	for k, want := range checks {
		if e[k] != want {
			t.Errorf("event %s = %v, want %v", k, e[k], want)
		}
	}
	if got := e["bundles"].(map[string]any)["portero"].(map[string]any)["revision"]; got != "v7" {
		t.Errorf("event bundles = %v, want portero at v7", e["bundles"])
	}
	if got := e["input"].(map[string]any)["request"].(map[string]any)["method"]; got != "GET" {
		t.Errorf("event input = %v", e["input"])
	}
	if got := e["result"].(map[string]any)["reason"]; got != "logged" {
		t.Errorf("event result = %v", e["result"])
	}
	labels := e["labels"].(map[string]any)
	if labels["id"] != "gw-1" || labels["version"] == "" || labels["portero_version"] != "test" {
		t.Errorf("event labels = %v, want id, version and portero_version", labels)
	}
	if got := e["metrics"].(map[string]any)["timer_rego_query_eval_ns"]; got != float64(42000) {
		t.Errorf("event metrics = %v", e["metrics"])
	}
}

// With the collector down, the bounded buffer keeps the newest decisions,
// counts the others as dropped, and sends the kept ones once it is back.
func TestDecisionLogDropsAreCounted(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	col.setFailing(true)
	h := newHarness(t, Options{DecisionLogs: &LogsOptions{Service: Service{URL: col.srv.URL}, BufferEvents: 3}}, true)
	h.start(context.Background())
	ctx := context.Background()
	for i := range 10 {
		h.client.Record(ctx, &policy.DecisionRecord{ID: "d" + string(rune('0'+i)), At: time.Now(), Input: json.RawMessage(`{}`), Result: map[string]any{"allow": true}})
	}
	if err := h.client.flushDecisionLogs(ctx); err == nil {
		t.Fatal("upload to a failing collector succeeded")
	}
	dropped := gathered(t, h.reg, "portero_decision_logs_dropped_total")
	if dropped != 7 {
		t.Errorf("portero_decision_logs_dropped_total = %v, want 7 (10 decisions, 3 kept)", dropped)
	}
	col.setFailing(false)
	if err := h.client.flushDecisionLogs(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range col.events() {
		ids = append(ids, e["decision_id"].(string))
	}
	if strings.Join(ids, ",") != "d7,d8,d9" {
		t.Errorf("collector received %v after it came back, want the newest three", ids)
	}
}

// Status: a report on start, one on every bundle change and one on each
// interval, with labels, the bundle's revision and the decision logs.
func TestStatusReports(t *testing.T) {
	t.Parallel()
	srv := newBundleServer(t)
	srv.publish(makeBundle(t, "v1", "status", authzTestRego, nil), `"e1"`)
	col := newCollector(t)
	h := newHarness(t, Options{ID: "gw-s", Bundle: bundleOpts(srv),
		DecisionLogs: &LogsOptions{Service: Service{URL: col.srv.URL}},
		Status:       &StatusOptions{Service: Service{URL: col.srv.URL}}}, true)
	ctx := context.Background()
	h.start(ctx)
	if err := h.client.reportStatus(ctx); err != nil {
		t.Fatal(err)
	}
	st := col.lastStatus()
	if st == nil {
		t.Fatal("no status report")
	}
	if got := st["labels"].(map[string]any)["id"]; got != "gw-s" {
		t.Errorf("status labels = %v", st["labels"])
	}
	b := st["bundles"].(map[string]any)["portero"].(map[string]any)
	if b["active_revision"] != "v1" || b["last_successful_download"] == nil || b["last_successful_activation"] == nil {
		t.Errorf("status bundles.portero = %v, want active_revision v1 with download and activation times", b)
	}
	for _, p := range []string{"bundle", "decision_logs", "status"} {
		if _, ok := st["plugins"].(map[string]any)[p]; !ok {
			t.Errorf("status plugins = %v, want %s", st["plugins"], p)
		}
	}

	// A refused bundle is reported with its error, the last good revision
	// still active.
	srv.publish(makeBundle(t, "v2", "bad", failingTestRego, nil), `"e2"`)
	h.poll()
	if err := h.client.reportStatus(ctx); err != nil {
		t.Fatal(err)
	}
	b = col.lastStatus()["bundles"].(map[string]any)["portero"].(map[string]any)
	if b["active_revision"] != "v1" || b["code"] == nil || !strings.Contains(b["message"].(string), "tests failed") {
		t.Errorf("status after a refused bundle = %v, want v1 active and the refusal", b)
	}
}

// gathered is the value of the unlabelled counter or gauge name in g.
func gathered(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
