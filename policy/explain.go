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

// Trial is a request tried against the policy being served without being
// sent (the console's "try a request"): what the gateway made of it and
// what the policy decided, with the explain trace.
type Trial struct {
	Method string `json:"method"`
	Host   string `json:"host"`
	Path   string `json:"path"`
	Route  string `json:"route,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// Refused is set when the gateway would refuse the request before the
	// policy sees it (sanitize, route, method); Status and Reason then
	// say why and there is no trace.
	Refused  bool   `json:"refused_before_policy,omitempty"`
	Revision string `json:"revision,omitempty"`
	// Allow, Status, Reason and Headers are the decision.
	Allow   bool                `json:"allow"`
	Status  int                 `json:"status,omitempty"`
	Reason  string              `json:"reason"`
	Headers map[string][]string `json:"headers,omitempty"`
	Trace   string              `json:"trace,omitempty"`
	// TraceTruncated says Trace was cut at maxTrialTrace.
	TraceTruncated bool   `json:"trace_truncated,omitempty"`
	Error          string `json:"error,omitempty"`
}

// maxTrialTrace bounds the trace a Trial carries.
const maxTrialTrace = 256 << 10

// Try evaluates a whole input against this policy with the explain trace,
// as the gateway would decide it (the stages first), without the decision
// cache, for a Trial.
func (p *Loaded) Try(ctx context.Context, in *Input, t *Trial) {
	t.Revision = p.Revision
	d, trace, err := p.EvalExplain(ctx, in.Value(), true)
	t.Allow, t.Status, t.Reason, t.Headers = d.Allow, d.Status, d.Reason, d.Headers
	if len(trace) > maxTrialTrace {
		trace, t.TraceTruncated = trace[:maxTrialTrace], true
	}
	t.Trace = trace
	if err != nil {
		t.Error = err.Error()
	}
}
