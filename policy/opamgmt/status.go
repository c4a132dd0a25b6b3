package opamgmt

import (
	"context"
	"time"
)

// StatusOptions configure status reports (policy.status) in OPA's status
// format: POST /status with the labels, the bundle's status, the decision
// logs' status, the plugins' states and OPA's metrics.
type StatusOptions struct {
	Service Service
	// Interval sends a report this often besides the one sent on every
	// bundle change; 0 reports on changes only.
	Interval time.Duration
}

// reportStatus sends a status report now (tests).
func (c *Client) reportStatus(ctx context.Context) error { return c.status.Trigger(ctx) }
