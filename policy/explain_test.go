package policy

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

// `portero eval --explain` prints the trace EvalExplain renders: OPA's
// pretty trace with each step's file and line; without explain, none.
func TestEvalExplain(t *testing.T) {
	loaded, err := Compile(context.Background(), Source{Name: "t", FS: fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": true} if input.a
default decision := {"allow": false, "reason": "no"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	d, trace, err := loaded.EvalExplain(context.Background(), map[string]any{"a": true}, true)
	if err != nil || !d.Allow {
		t.Fatalf("decision %+v, %v", d, err)
	}
	for _, want := range []string{"p.rego:2", "Enter data.portero.authz.decision", "Exit data.portero.authz.decision"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	d, trace, err = loaded.EvalExplain(context.Background(), map[string]any{"a": false}, false)
	if err != nil || d.Allow || d.Reason != "no" || trace != "" {
		t.Fatalf("without explain: %+v, %v, trace %q", d, err, trace)
	}
}
