package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// waitStatusWith polls url, sending one request header ("Name: value", or
// none when empty), until it answers want, for at most 20 s.
func waitStatusWith(url string, want int, header string) error {
	name, value, _ := strings.Cut(header, ": ")
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		if header != "" {
			req.Header.Set(name, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within 20s (last: %s)", url, want, last)
}

// extras are Portero's figures outside the load table.
type extras struct {
	startup   time.Duration // exec to /readyz 200
	idleMiB   float64       // resident after start
	reload    time.Duration // policy file written to new policy serving
	reloadErr string
	imported  storeImport // the store row's bulk import
}

// porteroExtras measures startup time, idle memory and how long a policy
// change takes to serve.
func (h *harness) porteroExtras() extras {
	var ex extras
	dir := filepath.Join(h.dir, "policy-dir")
	_ = os.MkdirAll(dir, 0o755)
	for _, f := range []string{"authz.rego", "membership.rego"} {
		b, err := os.ReadFile(filepath.Join(h.o.repo, "rego", f))
		if err != nil {
			ex.reloadErr = err.Error()
			return ex
		}
		_ = os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	cfg, public, ops := h.porteroConfigFor("portero-reload", false, "warn", "", "policy:\n  dir: "+dir+"\n")
	start := time.Now()
	p := h.start("portero-reload", nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfg)
	defer p.stop()
	if err := waitStatus(ops+"/readyz", 200); err != nil {
		ex.reloadErr = err.Error()
		return ex
	}
	ex.startup = time.Since(start)
	time.Sleep(500 * time.Millisecond) // let start-up garbage settle before reading RSS
	ex.idleMiB = rss(treePIDs([]*proc{p}))

	// A request the policy denies names its reason: change the reason and
	// time how long until the gateway answers with the new one.
	deniedURL := public + "/t/initech/items"
	body := func() string {
		req, _ := http.NewRequest("GET", deniedURL, nil)
		req.Header.Set("Authorization", h.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if !strings.Contains(body(), "deny.not_a_member") {
		ex.reloadErr = "unexpected answer before the change"
		return ex
	}
	authz, _ := os.ReadFile(filepath.Join(dir, "authz.rego"))
	changed := strings.Replace(string(authz), "deny.not_a_member", "deny.not_a_member_v2", 1)
	tmp := filepath.Join(dir, ".authz.rego.tmp")
	_ = os.WriteFile(tmp, []byte(changed), 0o644)
	written := time.Now()
	_ = os.Rename(tmp, filepath.Join(dir, "authz.rego"))
	for time.Since(written) < 10*time.Second {
		if strings.Contains(body(), "deny.not_a_member_v2") {
			ex.reload = time.Since(written)
			return ex
		}
		time.Sleep(2 * time.Millisecond)
	}
	ex.reloadErr = "the new policy was not served within 10 s"
	return ex
}
