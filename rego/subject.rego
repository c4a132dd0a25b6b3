# METADATA
# title: The caller in the request's tenant, independent of the request
# description: |
#   Everything the policy knows about the caller that does not depend on
#   the request: who they are in the tenant (owner, member, partner or
#   none), their role and its rank, their level per feature, the scope and
#   the identity headers for the upstream, a refusal that holds for every
#   request (deactivated member, unaccepted or expired delegation), and,
#   per operation of the route mapping, the refusal that depends only on
#   the caller (delegation products, rights, role actions, feature levels).
#
#   It is worked out in stages the gateway memoises (see the README's
#   "Policy stages"):
#   - facts: the caller's facts (kind, role, standing refusal, identity
#     headers), and their grant: the part their levels and refusals per
#     operation depend on (kind, role, profile, feature rights, extra
#     rights, delegation scope, products and wallet), with nothing that
#     names them. Passed as input.subject, and its grant as input.grant;
#   - grant_facts: what a grant gives (levels, the levels that take
#     effect, the X-Portero-Features header), from input.grant alone. Many callers share
#     a grant, so this is worked out once per grant, not once per caller;
#   - operation_denial: the refusal of the request's operation, from
#     input.grant, input.grant_facts and the operation alone, once per
#     grant and mapping entry.
#   Rules that decide a request read the caller through current,
#   grant_facts_current and operation_current, which work everything out
#   here when the gateway did not pass it (in tests, `portero eval`). The
#   gateway memoises a stage only while the rules it uses read nothing but
#   its key's input parts and call no non-deterministic builtin; otherwise
#   it evaluates it for every request.
package portero.subject

import data.portero.delegation
import data.portero.features
import data.portero.members
import data.portero.requests
import data.portero.roles

# The caller's facts for this request: as the gateway computed them, or
# computed here (in tests, `portero eval`, or any evaluation without them).
current := input.subject if {
	input.subject
} else := facts

facts := {
	"kind": kind,
	"role": role,
	"denial": members.denial,
	"headers": _headers,
	"reason": sprintf("%s.%s", [kind, role]),
	"grant": grant,
} if {
	kind := members.kind
	role := members.role
}

# The caller's grant: the parts of their facts that their levels and their
# refusals per operation depend on, and nothing that names them. Callers
# with the same role, profile, rights and delegation share one.
grant := {
	"kind": members.kind,
	"role": members.role,
	"membership": object.filter(object.get(input.access, "membership", {}), {"role", "profile", "features", "rights"}),
	"delegation": object.filter(object.get(input.access, "delegation", {}), {"scope", "products", "wallet"}),
}

# What a grant gives, from input.grant alone: the level per feature
# (levels), the levels that take effect (effective) and the
# X-Portero-Features header that reports them.
grant_facts := _given(input.grant)

grant_facts_current := input.grant_facts if {
	input.grant_facts
} else := _given(current.grant)

_given(g) := {
	"levels": levels,
	"effective": effective,
	"headers": {"X-Portero-Features": json.marshal(effective)},
} if {
	levels := features.levels_for(g)
	effective := features.effective_for(g, levels)
}

# The refusal of the request's operation that depends only on the caller
# (delegation products, rights, role actions, then feature levels): as the
# gateway worked it out (input.operation_denial), or worked out here. ""
# when nothing refuses it, as far as the caller goes; the request may
# still be refused for its scope or fields.
operation_current := input.operation_denial if {
	input.operation_denial
} else := d if {
	requests.current.id
	d := _op_denial(current.grant, grant_facts_current.levels, requests.current)
} else := "" if {
	# Nothing refuses it, as far as the grant goes: said only when there
	# is a grant (a hand-written input.subject may lack one).
	current.grant
	grant_facts_current
}

# The refusal of the operation in input.operation (a route mapping entry),
# "" when none, from input.grant and input.grant_facts alone. It reads the
# entry without its scope (the ids the path names), so the gateway works
# it out once per grant and mapping entry and memoises it: a caller's
# first request costs at most one operation, and none when another caller
# with the same grant used it before.
operation_denial := d if {
	input.operation.id
	d := _op_denial(input.grant, input.grant_facts.levels, object.remove(input.operation, {"scope"}))
} else := "" if {
	# Nothing refuses it: said only when the grant and its facts were
	# given, so an input without them leaves it undefined (and the
	# decision works it out) rather than refusing nothing.
	input.grant
	input.grant_facts
}

# The refusal of operation e for grant g, whose levels are granted.
_op_denial(g, granted, e) := d if {
	d := delegation.op_denial(g, e)
} else := d if {
	d := roles.op_denial(g, e)
} else := d if {
	d := features.op_denial(g, granted, e)
}

# The identity headers but X-Portero-Features, which comes from the grant's
# facts (grant_facts_current.headers; portero.authz joins them).
_headers := object.union(
	{
		"X-Portero-User": input.identity.sub,
		"X-Portero-Tenant": input.tenant.id,
		"X-Portero-Role": role,
		"X-Portero-Roles": role,
		"X-Portero-Scope": roles.scope,
	},
	_partner_header,
) if {
	role := members.role
}

_partner_header := {"X-Portero-Partner": input.access.partner} if {
	members.kind == "partner"
} else := {}
