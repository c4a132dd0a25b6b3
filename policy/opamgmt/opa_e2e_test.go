package opamgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/testport"
	"github.com/portero-gateway/portero/policy"
)

// opaBinary is the OPA built for the comparisons (bench/bin/opa: `GOBIN=$PWD/bench/bin
// go install github.com/open-policy-agent/opa@v1.22.2`). Without it the test
// skips, unless PORTERO_E2E=1 asks for every peer.
func opaBinary(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../../bench/bin/opa")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("PORTERO_E2E") == "1" {
			t.Fatalf("PORTERO_E2E=1 but %s is missing: GOBIN=$PWD/bench/bin go install github.com/open-policy-agent/opa@v1.22.2", bin)
		}
		t.Skipf("%s is missing (GOBIN=$PWD/bench/bin go install github.com/open-policy-agent/opa@v1.22.2 to run this test)", bin)
	}
	return bin
}

// Real OPA on both sides of the protocol: `opa build` builds and signs
// the bundle Portero verifies and serves, and `opa run --server` pulls the
// same bundle from the same server while sending its decision logs and
// status reports to a collector of its own. Portero's events and reports
// must carry what OPA's carry, in the same shape, for the same bundle.
func TestAgainstRealOPA(t *testing.T) {
	opa := opaBinary(t)
	if testing.Short() {
		t.Skip("runs opa")
	}
	dir := t.TempDir()
	key := newSigner(t, "portero")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("policy/authz.rego", authzRego)
	write("policy/authz_test.rego", authzTestRego)
	write("policy/data.json", `{"portero": {"greeting": "built by opa"}}`)
	priv := write("private.pem", key.private)
	tarball := filepath.Join(dir, "bundle.tar.gz")
	build := exec.Command(opa, "build", "-b", filepath.Join(dir, "policy"), "-r", "opa-r1", "--signing-key", priv,
		"--verification-key-id", "portero", "-o", tarball)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("opa build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	srv := newBundleServer(t)
	srv.publish(raw, `"opa-r1"`)

	// Portero: the signed bundle OPA built, decision logs and status to
	// its collector.
	ours := newCollector(t)
	o := bundleOpts(srv)
	o.Signing = &SigningKey{KeyID: "portero", PublicKey: []byte(key.public)}
	h := newHarness(t, Options{Bundle: o, DecisionLogs: &LogsOptions{Service: Service{URL: ours.srv.URL}},
		Status: &StatusOptions{Service: Service{URL: ours.srv.URL}}}, true)
	ctx := context.Background()
	h.start(ctx)
	if got := h.reason(); got != "built by opa" {
		t.Fatalf("Portero serves %q, want the bundle opa built", got)
	}
	ev := h.engine.Decide(ctx, &policy.Input{Request: policy.Request{Method: "GET"}})
	h.client.Record(ctx, &policy.DecisionRecord{ID: "portero-1", At: time.Now(), Input: json.RawMessage(`{"request":{"method":"GET"}}`),
		Result: map[string]any{"allow": ev.Decision.Allow, "reason": ev.Decision.Reason}, Revision: ev.Revision, Duration: ev.Duration})
	if err := h.client.flushDecisionLogs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.client.reportStatus(ctx); err != nil {
		t.Fatal(err)
	}

	// OPA: the same bundle from the same server, its logs and status to
	// another collector.
	theirs := newCollector(t)
	addr := testport.Addrs(t, 1)[0]
	cfgFile := write("opa.yaml", `services:
  bundles: {url: "`+srv.srv.URL+`"}
  collector: {url: "`+theirs.srv.URL+`"}
keys:
  portero: {key: `+jsonString(key.public)+`, algorithm: RS256}
bundles:
  portero:
    service: bundles
    resource: bundles/portero.tar.gz
    signing: {keyid: portero}
    polling: {min_delay_seconds: 1, max_delay_seconds: 2}
decision_logs:
  service: collector
  reporting: {min_delay_seconds: 1, max_delay_seconds: 1}
status:
  service: collector
`)
	cmd := exec.Command(opa, "run", "--server", "--addr", addr, "--config-file", cfgFile, "--log-level", "error")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("opa logs:\n%s", logs.String())
		}
	})
	// OPA is ready once its bundle is active; then one decision.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health?bundles")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("opa never activated the bundle")
		}
		time.Sleep(100 * time.Millisecond) // polling a separate process's readiness; not synchronisation within the test
	}
	resp, err := http.Post("http://"+addr+"/v1/data/portero/authz/decision", "application/json", strings.NewReader(`{"input": {"request": {"method": "GET"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ Result map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if answer.Result["reason"] != "built by opa" {
		t.Fatalf("opa answered %v", answer)
	}
	waitFor(t, theirs, func() bool { return len(theirs.events()) > 0 })
	waitFor(t, theirs, func() bool {
		st := theirs.lastStatus()
		return st != nil && st["bundles"] != nil && st["decision_logs"] != nil
	})

	// The same fields, the same revision.
	opaEvent, ourEvent := theirs.events()[0], ours.events()[0]
	t.Logf("OPA's event: %v; Portero's: %v", keys(opaEvent), keys(ourEvent))
	for _, k := range []string{"labels", "decision_id", "bundles", "path", "input", "result", "timestamp", "metrics"} {
		if _, ok := opaEvent[k]; !ok {
			t.Errorf("OPA's event has no %s (the comparison is wrong): %v", k, opaEvent)
		}
		if _, ok := ourEvent[k]; !ok {
			t.Errorf("Portero's event has no %s, OPA's has: %v", k, ourEvent)
		}
	}
	if opaEvent["path"] != ourEvent["path"] {
		t.Errorf("path: OPA %v, Portero %v", opaEvent["path"], ourEvent["path"])
	}
	if !jsonEqual(opaEvent["bundles"], ourEvent["bundles"]) {
		t.Errorf("bundles: OPA %v, Portero %v", opaEvent["bundles"], ourEvent["bundles"])
	}
	if !jsonEqual(opaEvent["result"], ourEvent["result"]) {
		t.Errorf("result: OPA %v, Portero %v", opaEvent["result"], ourEvent["result"])
	}
	for _, k := range []string{"id", "version"} {
		if _, ok := ourEvent["labels"].(map[string]any)[k]; !ok {
			t.Errorf("Portero's labels have no %s: %v", k, ourEvent["labels"])
		}
	}
	opaStatus, ourStatus := theirs.lastStatus(), ours.lastStatus()
	t.Logf("OPA's status: %v; Portero's: %v", keys(opaStatus), keys(ourStatus))
	for _, k := range []string{"labels", "bundles", "decision_logs", "plugins", "metrics"} {
		if _, ok := ourStatus[k]; !ok {
			t.Errorf("Portero's status has no %s; OPA's has %v", k, keys(opaStatus))
		}
	}
	opaBundle := opaStatus["bundles"].(map[string]any)["portero"].(map[string]any)
	ourBundle := ourStatus["bundles"].(map[string]any)["portero"].(map[string]any)
	if opaBundle["active_revision"] != "opa-r1" || ourBundle["active_revision"] != "opa-r1" {
		t.Errorf("active_revision: OPA %v, Portero %v; want opa-r1", opaBundle["active_revision"], ourBundle["active_revision"])
	}
	for k := range opaBundle {
		if _, ok := ourBundle[k]; !ok && !slices.Contains([]string{"type", "metrics", "size", "http_code"}, k) {
			t.Errorf("Portero's bundle status has no %s: OPA's %v, ours %v", k, opaBundle, ourBundle)
		}
	}
}

// waitFor waits for cond, re-checked on each request the collector
// receives, up to a generous deadline.
func waitFor(t *testing.T, c *collector, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-c.got:
		case <-deadline:
			t.Fatal("the collector never received what was expected")
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
