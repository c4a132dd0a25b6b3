package proxy

import (
	"context"

	"github.com/portero-gateway/portero/policy"
)

// Decisions to an OPA decision-log collector (policy.decision_logs,
// policy/opamgmt): authorize hands every decision to the recorder, its
// input masked exactly as the decision log masks a recorded input
// (decisioninput.go): credentials always, log.decision_inputs.mask
// besides, with the same pseudonyms, so a collector's event and the local
// log line of one decision can be matched. The Authorization, Cookie and
// Proxy-Authorization headers never reach the input (inputHeaders).
// Without a recorder authorize tests one nil field: nothing is built.

// SetDecisionRecorder sends every decision to r too. It is set once,
// before serving.
func (g *Gateway) SetDecisionRecorder(r policy.DecisionRecorder) { g.recorder = r }

// recordDecision builds the decision's record and hands it to the
// recorder, which queues it without waiting on the collector.
func (g *Gateway) recordDecision(ctx context.Context, id string, in *policy.Input, ev policy.Evaluation) {
	m := newInputMasker(g.cfg.Log.DecisionInputs.MaskPaths, g.pseudonymKey)
	// The input first: masking it teaches m the secrets to hide in the
	// decision's headers and assertion.
	input := in.AppendJSON(make([]byte, 0, 2048), m)
	d := ev.Decision
	result := map[string]any{"allow": d.Allow, "reason": d.Reason}
	if d.Status != 0 {
		result["status"] = d.Status
	}
	if len(d.Headers) > 0 {
		result["headers"] = m.maskHeaders(d.Headers)
	}
	if a := d.Assertion; a != nil {
		result["assertion"] = map[string]any{"sub": m.maskString(a.Subject), "act": m.maskString(a.Actor), "roles": m.maskStrings(a.Roles)}
	}
	g.recorder.Record(ctx, &policy.DecisionRecord{ID: id, At: in.Now, Input: input, Result: result,
		Revision: ev.Revision, Duration: ev.Duration, Cached: ev.Cached, Err: ev.Err})
}
