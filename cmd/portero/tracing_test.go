package main

import (
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/internal/gatewaytest"
)

// The real binary with tracing: on: the upstream gets a traceparent, and
// the request's spans reach the collector by the time the process has
// stopped (serve flushes them after the servers have drained).
func TestServeBinaryTracing(t *testing.T) {
	rcv := gatewaytest.NewOTLPReceiver(t)
	example, err := os.ReadFile("../../gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "gateway.yaml")
	text := string(example) + "\ntracing:\n  endpoint: " + rcv.URL + "\n  service_name: portero-binary\n"
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	traceparents := make(chan string, 1)
	// Registered before the binary starts, so it runs after the binary has
	// been stopped (cleanups run last first).
	t.Cleanup(func() {
		var traceID string
		select {
		case tp := <-traceparents:
			parts := strings.Split(tp, "-")
			if len(parts) != 4 {
				t.Fatalf("upstream traceparent %q", tp)
			}
			traceID = parts[1]
		default:
			t.Fatal("the upstream got no traceparent")
		}
		for _, s := range rcv.Spans() {
			if s.Name == "GET tenant-api" && hex.EncodeToString(s.TraceId) == traceID && s.Service == "portero-binary" {
				return
			}
		}
		t.Errorf("no request span of trace %s exported by shutdown; got %d spans", traceID, len(rcv.Spans()))
	})
	public, _, iss := serveBinaryConfig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case traceparents <- r.Header.Get("Traceparent"):
		default:
		}
	}), config)
	claims := iss.Claims("alice", "portero")
	claims["roles"] = []string{"acme:administrator"}
	req, _ := http.NewRequest("GET", "http://"+public+"/api/orders", nil)
	req.Host = "acme.apps.localhost"
	req.Header.Set("Authorization", "Bearer "+iss.Sign(t, claims))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
