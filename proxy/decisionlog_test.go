package proxy

import (
	"io"
	"log/slog"
	"testing"

	"github.com/portero-gateway/portero/policy"
)

// TestDecisionLogCostsNothingWhenOff: above info the decision log line is
// not built at all (it runs on every request).
func TestDecisionLogCostsNothingWhenOff(t *testing.T) {
	g := &Gateway{log: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	in := &policy.Input{Route: policy.Route{Name: "app"}, Request: policy.Request{Method: "GET", Path: "/"},
		Tenant: &policy.Tenant{ID: "acme"}, Identity: &policy.Identity{Subject: "u"}}
	ev := policy.Evaluation{Decision: policy.Decision{Allow: true, Status: 200}}
	if n := testing.AllocsPerRun(100, func() { g.logDecision("id", in, ev, "") }); n != 0 {
		t.Fatalf("%v allocations per request with the decision log off", n)
	}
}
