package opamgmt

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/portero-gateway/portero/policy"
)

// BenchmarkRecord is what policy.decision_logs costs per decision, with an
// input the size of a typical masked policy input.
func BenchmarkRecord(b *testing.B) {
	col := newCollector(&testing.T{})
	defer col.srv.Close()
	h := newHarness(&testing.T{}, Options{DecisionLogs: &LogsOptions{Service: Service{URL: col.srv.URL}, BufferEvents: 1 << 20}}, true)
	defer h.client.Stop(context.Background())
	h.start(context.Background())
	input := json.RawMessage(`{"request":{"method":"GET","host":"acme.apps.example.com","path":"/t/acme/orders/o1","segments":["t","acme","orders","o1"],"app_segments":["orders","o1"],"headers":{"accept":"application/json","user-agent":"curl/8"}},"route":{"name":"app","api":true},"tenant":{"id":"acme","status":"active"},"identity":{"sub":"leo","email":"leo@example.com","roles":["member"],"auth":"bearer"},"now":"2026-01-01T00:00:00Z"}`)
	result := map[string]any{"allow": true, "reason": "member.role", "headers": map[string][]string{"X-Portero-User": {"leo"}}}
	rec := &policy.DecisionRecord{ID: "d", At: time.Now(), Input: input, Result: result, Revision: "r", Duration: time.Microsecond}
	// queue: what the request's goroutine pays (the queue never full).
	b.Run("queue", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			h.client.Record(context.Background(), rec)
			if n++; n%512 == 0 {
				b.StopTimer()
				for len(h.client.queue) > 0 { // emptied, not logged: the plugin is measured below
					<-h.client.queue
				}
				b.StartTimer()
			}
		}
	})
	// plugin: the CPU OPA's decision_logs plugin spends per decision, on
	// the goroutine that hands decisions over.
	b.Run("plugin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.client.log1(rec)
		}
	})
}
