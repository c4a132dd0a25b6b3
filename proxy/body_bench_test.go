package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkReadBody is the body stage of an edit: read, check and parse a
// small JSON body for the policy.
func BenchmarkReadBody(b *testing.B) {
	const body = `{"phone":"+1 555 0100","hours":"Mo-Fr 09:00-17:00","tags":["a","b"],"geo":{"lat":1.5,"lng":2.25}}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("PATCH", "http://h/x", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if _, refusal := readBody(r, 4096); refusal != nil {
			b.Fatal(refusal)
		}
	}
}
