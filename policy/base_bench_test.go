package policy

import (
	"context"
	"testing"
	"testing/fstest"
)

func BenchmarkDecideTrivialPolicy(b *testing.B) {
	e, _ := newTestEngine(b, Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": true}`)}}})
	e.Current().cache = nil
	in := memberInput()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(ctx, in)
	}
}
func BenchmarkInputValue(b *testing.B) {
	in := memberInput()
	b.ReportAllocs()
	for b.Loop() {
		in.Value()
	}
}
