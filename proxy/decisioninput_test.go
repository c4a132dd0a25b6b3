package proxy_test

import (
	"context"
	"net/http/httptest"
	"testing"
)

// BenchmarkRequestPathRecorded is BenchmarkRequestPath with the policy
// input recorded in the decision log: off, for every decision, and for a
// tenth of them (the extra cost per request is the difference).
func BenchmarkRequestPathRecorded(b *testing.B) {
	for _, bc := range []struct{ name, extra string }{
		{"off", ""},
		{"every", "log:\n  decision_inputs: {enabled: true}\n"},
		{"tenth", "log:\n  decision_inputs: {enabled: true, sample: 0.1}\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarnessWith(b, nil, harnessOpts{Extra: bc.extra})
			tok := h.Member(b)
			go func() {
				for range h.Got {
				}
			}()
			req := httptest.NewRequest("GET", "http://acme.apps.example.com/api/orders?page=2", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "bench")
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.Gateway.ServeHTTP(rec, req.Clone(context.Background()))
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body)
				}
			}
		})
	}
}
