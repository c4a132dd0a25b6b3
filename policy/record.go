package policy

import (
	"context"
	"encoding/json"
	"time"
)

// DecisionRecord is one decision as a decision-log collector receives it
// (OPA's decision-log API, policy/opamgmt): the masked input and the
// decision, built by the request path only when a collector is configured.
type DecisionRecord struct {
	ID string
	At time.Time
	// Input is the policy input as JSON, masked (never a credential).
	Input json.RawMessage
	// Result is the decision document as the policy answered it
	// ({allow, status, reason, headers, assertion}), masked likewise.
	Result   map[string]any
	Revision string
	Duration time.Duration
	Cached   bool
	Err      error
}

// DecisionRecorder receives the gateway's decisions. Record must not
// block: a collector buffers and drops what it cannot keep.
type DecisionRecorder interface {
	Record(ctx context.Context, d *DecisionRecord)
}
