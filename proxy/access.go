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
	doc := make([]policy.Field, 0, 5)
	if f != nil && f.Tenant != nil {
		t := f.Tenant
		doc = append(doc, policy.ObjectField("tenant",
			policy.StringField("id", t.ID), policy.StringField("name", t.Name),
			policy.StringField("status", t.Status), policy.StringField("owner", t.Owner),
			policy.BoolField("master_access", t.MasterAccess),
		))
		if m := f.Member; m != nil {
			doc = append(doc, policy.ObjectField("membership",
				policy.StringField("role", m.Role), policy.StringsField("businesses", m.Businesses),
				policy.StringsField("locations", m.Locations), policy.StringMapField("features", m.Features),
				policy.StringsMapField("fields", m.Fields), policy.StringsField("rights", m.Rights),
				policy.StringField("profile", m.Profile), policy.StringField("status", m.Status),
			))
		}
		if f.Partner != "" {
			doc = append(doc, policy.StringField("partner", f.Partner))
		}
		if d := f.Delegation; d != nil {
			del := []policy.Field{
				policy.StringField("id", d.ID), policy.StringField("partner", d.Partner),
				policy.StringField("scope", d.Scope), policy.StringsField("products", d.Products),
				policy.BoolField("wallet", d.Wallet), policy.StringField("status", d.Status),
				// A fact, not a decision: the resolver drops this entry
				// when the delegation expires, so it is exact.
				policy.BoolField("expired", d.Expires != nil && !now.Before(*d.Expires)),
			}
			if d.Expires != nil {
				del = append(del, policy.StringField("expires", d.Expires.UTC().Format(time.RFC3339)))
			}
			doc = append(doc, policy.ObjectField("delegation", del...))
		}
		if ms := f.Master; ms != nil {
			doc = append(doc, policy.ObjectField("master",
				policy.StringField("id", ms.ID), policy.StringField("admin", ms.Admin),
				policy.StringField("tenant", ms.Tenant), policy.StringField("reason", ms.Reason),
				policy.StringField("ticket", ms.Ticket), policy.StringField("mode", ms.Mode),
				policy.StringField("session", ms.Session),
				policy.StringField("expires", ms.ExpiresAt.UTC().Format(time.RFC3339)),
				// Exact, as for delegations: the cached entry ends at expiry.
				policy.BoolField("expired", !now.Before(ms.ExpiresAt)),
			))
		}
	}
	return policy.AccessOf(doc...)
}
