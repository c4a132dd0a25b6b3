package policy

import (
	"context"
	"strings"

	"github.com/open-policy-agent/opa/v1/topdown"
)

// EvalExplain is EvalRaw for `portero eval`: with explain, the evaluation
// trace comes back rendered as text (OPA's pretty trace, each step with its
// source location), so that callers need no OPA package. The trace is empty
// when nothing was traced.
func (p *Loaded) EvalExplain(ctx context.Context, input any, explain bool) (Decision, string, error) {
	d, events, err := p.EvalRaw(ctx, input, explain)
	if events == nil {
		return d, "", err
	}
	var b strings.Builder
	topdown.PrettyTraceWithLocation(&b, events)
	return d, b.String(), err
}
