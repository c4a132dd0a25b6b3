package opamgmt

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// bundleServer speaks OPA's bundle protocol: an ETag per revision, 304
// for a known one, and long polling (Prefer: wait=N) when asked.
type bundleServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	tarball  []byte
	etag     string
	changed  chan struct{} // closed when a new bundle is published
	requests []bundleRequest
	down     bool
}

type bundleRequest struct {
	ifNoneMatch, prefer, auth string
	status                    int
}

func newBundleServer(t *testing.T) *bundleServer {
	s := &bundleServer{t: t, changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *bundleServer) publish(tarball []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tarball, s.etag = tarball, etag
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *bundleServer) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *bundleServer) log() []bundleRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bundleRequest(nil), s.requests...)
}

func (s *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/bundles/portero.tar.gz" {
		http.NotFound(w, r)
		return
	}
	wait := 0
	for _, part := range strings.Split(r.Header.Get("Prefer"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "wait="); ok {
			wait, _ = strconv.Atoi(v)
		}
	}
	s.mu.Lock()
	req := bundleRequest{ifNoneMatch: r.Header.Get("If-None-Match"), prefer: r.Header.Get("Prefer"), auth: r.Header.Get("Authorization")}
	if s.down {
		s.requests = append(s.requests, bundleRequest{status: 503})
		s.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if wait > 0 && req.ifNoneMatch != "" && req.ifNoneMatch == s.etag {
		// Long poll: hold the request until the bundle changes.
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(time.Duration(wait) * time.Second):
		case <-r.Context().Done():
			return
		}
		s.mu.Lock()
	}
	tarball, etag := s.tarball, s.etag
	if wait > 0 {
		w.Header().Set("Content-Type", "application/vnd.openpolicyagent.bundles")
	} else {
		w.Header().Set("Content-Type", "application/gzip")
	}
	if req.ifNoneMatch == etag {
		req.status = http.StatusNotModified
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	req.status = http.StatusOK
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	_, _ = w.Write(tarball)
}

// Policies as a bundle: a decision that allows GET, and its test.
const (
	authzRego = `package portero.authz

default decision := {"allow": false, "status": 403, "reason": "test.refused"}

decision := {"allow": true, "reason": data.portero.greeting} if input.request.method == "GET"
`
	authzTestRego = `package portero.authz_test

import data.portero.authz

test_get_allowed if authz.decision.allow with input as {"request": {"method": "GET"}}

test_post_refused if not authz.decision.allow with input as {"request": {"method": "POST"}}
`
	failingTestRego = `package portero.authz_test

import data.portero.authz

test_post_allowed if authz.decision.allow with input as {"request": {"method": "POST"}}
`
)

// makeBundle builds a bundle tarball with the revision, the greeting in
// its data, and the given test file; signed with key when it is set.
func makeBundle(t *testing.T, revision, greeting, testRego string, key *signer) []byte {
	t.Helper()
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision},
		Data:     map[string]any{"portero": map[string]any{"greeting": greeting}},
		Modules: []bundle.ModuleFile{
			{URL: "/authz.rego", Path: "/authz.rego", Raw: []byte(authzRego)},
			{URL: "/authz_test.rego", Path: "/authz_test.rego", Raw: []byte(testRego)},
		},
	}
	b.Manifest.Init()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, "RS256", ""), key.id, false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type signer struct {
	id              string
	private, public string
}

func newSigner(t *testing.T, id string) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{id: id,
		private: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))}
}

// collector speaks OPA's decision-log and status APIs: gzipped JSON arrays
// POSTed to /logs, status JSON POSTed to /status.
type collector struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	failing  bool
	batches  [][]map[string]any
	statuses []map[string]any
	got      chan string // "logs" or "status" on each request received
}

func newCollector(t *testing.T) *collector {
	c := &collector{t: t, got: make(chan string, 100)}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) setFailing(f bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing = f
}

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	failing := c.failing
	c.mu.Unlock()
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if failing {
		http.Error(w, "collector down", http.StatusServiceUnavailable)
		return
	}
	// A request cut off in transit is the sender going away (a process
	// stopped at the end of a test while an upload was under way), not a
	// malformed upload: only what arrived whole is judged.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		c.t.Logf("%s: the sender went away mid-request: %v", r.URL.Path, err)
		return
	}
	switch {
	case r.URL.Path == "/logs":
		if r.Header.Get("Content-Encoding") != "gzip" {
			c.t.Errorf("decision logs sent with Content-Encoding %q, want gzip", r.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			c.t.Errorf("decision logs: not gzip: %v", err)
			return
		}
		var events []map[string]any
		if err := json.NewDecoder(zr).Decode(&events); err != nil {
			c.t.Errorf("decision logs: not a JSON array: %v", err)
			return
		}
		c.mu.Lock()
		c.batches = append(c.batches, events)
		c.mu.Unlock()
		c.got <- "logs"
	case strings.HasPrefix(r.URL.Path, "/status"):
		var st map[string]any
		if err := json.Unmarshal(body, &st); err != nil {
			c.t.Errorf("status: not JSON: %v", err)
			return
		}
		c.mu.Lock()
		c.statuses = append(c.statuses, st)
		c.mu.Unlock()
		c.got <- "status"
	default:
		http.NotFound(w, r)
	}
}

func (c *collector) events() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, b := range c.batches {
		out = append(out, b...)
	}
	return out
}

func (c *collector) lastStatus() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.statuses) == 0 {
		return nil
	}
	return c.statuses[len(c.statuses)-1]
}

// logRecorder is a slog handler that hands every record's message and
// attributes to a channel, for tests that wait for "policy loaded".
type logRecorder struct {
	ch chan logLine
}

type logLine struct {
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder { return &logRecorder{ch: make(chan logLine, 1000)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l := logLine{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool { l.attrs[a.Key] = a.Value.String(); return true })
	select {
	case h.ch <- l:
	default:
	}
	return nil
}
func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler         { return h }

// waitFor reads log lines until one has msg and the attribute, or fails
// after a generous deadline (a hung test, not a timing assertion).
func (h *logRecorder) waitFor(t *testing.T, msg, key, value string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-h.ch:
			if l.msg == msg && l.attrs[key] == value {
				return
			}
		case <-deadline:
			t.Fatalf("no log line %q with %s=%s", msg, key, value)
		}
	}
}

// untar reads a bundle tarball's files by their paths ("/authz.rego").
func untar(t *testing.T, tarball []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		} else if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimPrefix(h.Name, "/")] = data
	}
}

// retar writes files back as a bundle tarball, signatures untouched.
func retar(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
