package policy

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The request path's evaluations pass two options OPA would otherwise
// pay for on every evaluation:
//
//   - metrics: without EvalMetrics, every Eval builds a metrics registry
//     (maps, timers) nobody here reads; metrics.NoOp costs nothing.
//   - cancellation: without EvalExternalCancel, every Eval starts a
//     goroutine that waits on ctx.Done() to cancel the query. A context
//     that can be cancelled gets the same cancellation through
//     context.AfterFunc (no goroutine until it fires); one that never can
//     (context.Background) needs none.
var (
	noMetrics      = rego.EvalMetrics(metrics.NoOp())
	neverCancelled = rego.EvalExternalCancel(topdown.NewCancel())
)

// withInput evaluates a prepared query on input as the request path does
// (see noMetrics and neverCancelled), with a reused rule cache (see
// ruleCache).
func withInput(ctx context.Context, pq rego.PreparedEvalQuery, input ast.Value) (rego.ResultSet, error) {
	rc := newRuleCache()
	defer rc.release()
	if ctx.Done() == nil {
		return pq.Eval(ctx, rego.EvalParsedInput(input), noMetrics, neverCancelled, rego.EvalVirtualCache(rc))
	}
	c := topdown.NewCancel()
	stop := context.AfterFunc(ctx, c.Cancel)
	defer stop()
	return pq.Eval(ctx, rego.EvalParsedInput(input), noMetrics, rego.EvalExternalCancel(c), rego.EvalVirtualCache(rc))
}
