package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	defaultrego "github.com/portero-gateway/portero/rego"
)

// The binary as an operator runs it against OPA's management APIs: the
// embedded policy served as a bundle by a bundle server, every decision to
// a decision-log collector, status reports; a request's event carries no
// credential, and the status names the bundle's revision.
func TestServeBinaryWithOPAManagement(t *testing.T) {
	tarball := bundleOf(t, defaultrego.Bundle, "bin-r1")
	bundles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundles/portero.tar.gz" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("If-None-Match") == `"bin-r1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"bin-r1"`)
		_, _ = w.Write(tarball)
	}))
	t.Cleanup(bundles.Close)
	var mu sync.Mutex
	var events []map[string]any
	var status map[string]any
	got := make(chan struct{}, 100)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == "/logs":
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("decision logs not gzipped: %v", err)
				return
			}
			var batch []map[string]any
			if err := json.NewDecoder(zr).Decode(&batch); err != nil {
				t.Errorf("decision logs: %v", err)
				return
			}
			events = append(events, batch...)
		case strings.HasPrefix(r.URL.Path, "/status"):
			_ = json.NewDecoder(r.Body).Decode(&status)
		}
		got <- struct{}{}
	}))
	t.Cleanup(collector.Close)

	dir := t.TempDir()
	base, err := os.ReadFile("../../gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "gateway.yaml")
	src := string(base) + `
policy:
  bundle:
    url: ` + bundles.URL + `
    persist_dir: state
  decision_logs:
    url: ` + collector.URL + `
    min_delay: 1s
    max_delay: 1s
  status:
    url: ` + collector.URL + `
    interval: 1s
`
	if err := os.WriteFile(config, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// Before any gateway has served: nothing persisted for check to read.
	if out, code := runCLI(t, "check", "-c", config); code == 0 || !strings.Contains(out, "nothing is persisted in") {
		t.Fatalf("check before a bundle was persisted: %d %s", code, out)
	}
	public, ops, iss := serveBinaryConfig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), config)
	claims := iss.Claims("alice", "portero")
	claims["roles"] = []string{"acme:administrator"}
	token := iss.Sign(t, claims)
	req, _ := http.NewRequest("GET", "http://"+public+"/api/orders", nil)
	req.Host = "acme.apps.localhost"
	req.Header.Set("Authorization", "Bearer "+token)
	req.AddCookie(&http.Cookie{Name: "other", Value: "cookie-value-0001"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d with the policy from the bundle server", resp.StatusCode)
	}
	// check, eval and explain read the bundle the gateway persisted.
	if out, code := runCLI(t, "check", "-c", config); code != 0 || !strings.Contains(out, "policy bundle portero (persisted in") {
		t.Fatalf("check with policy.bundle: %d %s", code, out)
	}

	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		done := len(events) > 0 && status != nil
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatal("the collector received no decision or no status")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	raw, _ := json.Marshal(events)
	for _, secret := range []string{token, "cookie-value-0001"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("a decision-log event holds a credential: %s", raw)
		}
	}
	e := events[0]
	if e["path"] != "portero/authz/decision" || e["result"].(map[string]any)["allow"] != true ||
		e["bundles"].(map[string]any)["portero"].(map[string]any)["revision"] != "bin-r1" {
		t.Errorf("event = %v", e)
	}
	if rev := status["bundles"].(map[string]any)["portero"].(map[string]any)["active_revision"]; rev != "bin-r1" {
		t.Errorf("status bundles = %v", status["bundles"])
	}
	metrics, err := http.Get("http://" + ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(body), `portero_policy_bundle_info{bundle="portero",revision="bin-r1"} 1`) {
		t.Error("metrics have no portero_policy_bundle_info for bin-r1")
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "portero_policy_bundle_activation_seconds_sum") {
			t.Logf("the default policy from the bundle server: download to served (compile, tests, swap) %s s", strings.Fields(line)[1])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "bundles", "portero", "bundle.tar.gz")); err != nil {
		t.Errorf("the bundle was not persisted: %v", err)
	}
}

// bundleOf packs a policy directory as an OPA bundle (a gzipped tarball
// with a .manifest naming the revision).
func bundleOf(t *testing.T, fsys fs.FS, revision string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	add(".manifest", []byte(`{"revision": "`+revision+`"}`))
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, ".json")) {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err == nil {
			add(name, data)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
