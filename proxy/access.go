package proxy

import (
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/policy"
)

// PrepareAccess turns a store lookup into input.access, once per lookup (the
// resolver caches the result beside the facts; the policy's caches key on
// its content, policy.Access.Key). Unknown tenants give an empty document;
// the policy denies them.
func PrepareAccess(f *access.Facts, now time.Time) *policy.Access {
	doc := map[string]any{}
	if f != nil && f.Tenant != nil {
		t := f.Tenant
		doc["tenant"] = map[string]any{
			"id": t.ID, "name": t.Name, "status": t.Status, "owner": t.Owner, "master_access": t.MasterAccess,
		}
		if m := f.Member; m != nil {
			doc["membership"] = map[string]any{
				"role": m.Role, "businesses": m.Businesses, "locations": m.Locations,
				"features": m.Features, "fields": m.Fields, "rights": m.Rights,
				"profile": m.Profile, "status": m.Status,
			}
		}
		if f.Partner != "" {
			doc["partner"] = f.Partner
		}
		if d := f.Delegation; d != nil {
			del := map[string]any{
				"id": d.ID, "partner": d.Partner, "scope": d.Scope, "products": d.Products,
				"wallet": d.Wallet, "status": d.Status, "expired": false,
			}
			if d.Expires != nil {
				del["expires"] = d.Expires.UTC().Format(time.RFC3339)
				// A fact, not a decision: the resolver drops this entry when
				// the delegation expires, so it is exact.
				del["expired"] = !now.Before(*d.Expires)
			}
			doc["delegation"] = del
		}
		if ms := f.Master; ms != nil {
			doc["master"] = map[string]any{
				"id": ms.ID, "admin": ms.Admin, "tenant": ms.Tenant, "reason": ms.Reason, "ticket": ms.Ticket,
				"mode": ms.Mode, "session": ms.Session, "expires": ms.ExpiresAt.UTC().Format(time.RFC3339),
				// Exact, as for delegations: the cached entry ends at expiry.
				"expired": !now.Before(ms.ExpiresAt),
			}
		}
	}
	a, err := policy.NewAccess(toJSONish(doc))
	if err != nil {
		// Only JSON-able values are put in doc; keep failing closed anyway.
		a, _ = policy.NewAccess(map[string]any{})
	}
	return a
}

// toJSONish converts typed slices and maps to the []any / map[string]any
// shapes ast.InterfaceToValue handles without reflection surprises.
func toJSONish(v any) map[string]any {
	var conv func(any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = conv(e)
			}
			return out
		case map[string]string:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = e
			}
			return out
		case map[string][]string:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = conv(e)
			}
			return out
		case []string:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = e
			}
			return out
		default:
			return v
		}
	}
	return conv(v).(map[string]any)
}
