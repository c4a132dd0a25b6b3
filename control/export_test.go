package control

import (
	"context"
	"time"
)

// Hooks for the external tests (package control_test).

func (p *Plane) SweepExpiredMasters(ctx context.Context) { p.sweepExpiredMasters(ctx) }

func (p *Plane) TenantAppURL(tenant string) string { return p.tenantAppURL(tenant) }

// RunNotifier runs the master-access notifier with a short backoff until
// ctx ends.
func (p *Plane) RunNotifier(ctx context.Context, backoff []time.Duration) {
	p.master.notify.backoff = backoff
	go p.master.notify.run(ctx)
}
