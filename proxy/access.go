package proxy

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/policy"
)

// PrepareAccess turns a store lookup into input.access, once per lookup (the
// resolver caches the result beside the facts; the policy's caches key on
// its content, policy.Access.Key). Unknown tenants give an empty document;
// the policy denies them.
func PrepareAccess(f *access.Facts, now time.Time) *policy.Access {
	// The document is built as terms: through a map and
	// ast.InterfaceToValue it cost about a third of a store lookup.
	doc := make([][2]*ast.Term, 0, 5)
	if f != nil && f.Tenant != nil {
		t := f.Tenant
		doc = append(doc, field("tenant", ast.ObjectTerm(
			field("id", ast.StringTerm(t.ID)), field("name", ast.StringTerm(t.Name)),
			field("status", ast.StringTerm(t.Status)), field("owner", ast.StringTerm(t.Owner)),
			field("master_access", ast.BooleanTerm(t.MasterAccess)),
		)))
		if m := f.Member; m != nil {
			doc = append(doc, field("membership", ast.ObjectTerm(
				field("role", ast.StringTerm(m.Role)), field("businesses", stringList(m.Businesses)),
				field("locations", stringList(m.Locations)), field("features", stringMap(m.Features)),
				field("fields", stringListMap(m.Fields)), field("rights", stringList(m.Rights)),
				field("profile", ast.StringTerm(m.Profile)), field("status", ast.StringTerm(m.Status)),
			)))
		}
		if f.Partner != "" {
			doc = append(doc, field("partner", ast.StringTerm(f.Partner)))
		}
		if d := f.Delegation; d != nil {
			del := [][2]*ast.Term{
				field("id", ast.StringTerm(d.ID)), field("partner", ast.StringTerm(d.Partner)),
				field("scope", ast.StringTerm(d.Scope)), field("products", stringList(d.Products)),
				field("wallet", ast.BooleanTerm(d.Wallet)), field("status", ast.StringTerm(d.Status)),
				// A fact, not a decision: the resolver drops this entry
				// when the delegation expires, so it is exact.
				field("expired", ast.BooleanTerm(d.Expires != nil && !now.Before(*d.Expires))),
			}
			if d.Expires != nil {
				del = append(del, field("expires", ast.StringTerm(d.Expires.UTC().Format(time.RFC3339))))
			}
			doc = append(doc, field("delegation", ast.ObjectTerm(del...)))
		}
		if ms := f.Master; ms != nil {
			doc = append(doc, field("master", ast.ObjectTerm(
				field("id", ast.StringTerm(ms.ID)), field("admin", ast.StringTerm(ms.Admin)),
				field("tenant", ast.StringTerm(ms.Tenant)), field("reason", ast.StringTerm(ms.Reason)),
				field("ticket", ast.StringTerm(ms.Ticket)), field("mode", ast.StringTerm(ms.Mode)),
				field("session", ast.StringTerm(ms.Session)),
				field("expires", ast.StringTerm(ms.ExpiresAt.UTC().Format(time.RFC3339))),
				// Exact, as for delegations: the cached entry ends at expiry.
				field("expired", ast.BooleanTerm(!now.Before(ms.ExpiresAt))),
			)))
		}
	}
	return policy.AccessOf(ast.NewObject(doc...))
}

func field(name string, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{ast.StringTerm(name), v} }

// stringList is a list of strings as an array (none: an empty one).
func stringList(list []string) *ast.Term {
	terms := make([]*ast.Term, len(list))
	for i, s := range list {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

// stringMap and stringListMap are maps as objects (none: an empty one).
func stringMap(m map[string]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, field(k, ast.StringTerm(v)))
	}
	return ast.ObjectTerm(items...)
}

func stringListMap(m map[string][]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, field(k, stringList(v)))
	}
	return ast.ObjectTerm(items...)
}
