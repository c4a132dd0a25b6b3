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
#   The gateway evaluates facts once per identity and store lookup and
#   passes the result as input.subject to the evaluations of that caller's
#   requests, until a store write or a policy reload; it evaluates
#   operation_denial once per caller and operation and passes it as
#   input.operation_denial. Rules that decide a request read the caller
#   through current and operation_current. The gateway memoises each only
#   while it and the rules it uses read nothing but input.identity,
#   input.access and input.tenant (and input.operation for
#   operation_denial) and call no non-deterministic builtin; otherwise it
#   evaluates them for every request.
package portero.subject

import data.portero.definitions as defs
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
	"kind": members.kind,
	"role": _role,
	"rank": object.get(defs.roles, _role, 0),
	"denial": _denial,
	"levels": features.effective,
	"granted": features.levels,
	"headers": _headers,
	"reason": sprintf("%s.%s", [members.kind, _role]),
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
	d := _op_denial(requests.current)
} else := ""

# The refusal of the operation in input.operation (a route mapping entry),
# "" when none. It reads the entry without its scope (the ids the path
# names), so the gateway works it out once per caller and mapping entry,
# when the caller first uses it, and memoises it per (identity, store
# lookup, tenant, entry): a caller's first request costs one operation,
# not every operation of the mapping.
operation_denial := d if {
	input.operation.id
	d := _op_denial(object.remove(input.operation, {"scope"}))
} else := ""

_op_denial(e) := d if {
	d := delegation.op_denial(e)
} else := d if {
	d := roles.op_denial(e)
} else := d if {
	d := features.op_denial(e)
}

# The caller's role as portero.members names it (undefined when it names
# none), read from current when current names one: rules that work on the
# facts the gateway passed need not work the role out again.
role_current := current.role if {
	current.role != ""
} else := members.role

_role := r if {
	r := members.role
} else := ""

# "" when nothing refuses every request.
_denial := d if {
	d := members.denial
} else := d if {
	d := delegation.standing_denial
} else := ""

_headers := object.union(
	{
		"X-Portero-User": input.identity.sub,
		"X-Portero-Tenant": input.tenant.id,
		"X-Portero-Role": _role,
		"X-Portero-Roles": _role,
		"X-Portero-Scope": roles.scope,
		"X-Portero-Features": json.marshal(features.effective),
	},
	_partner_header,
)

_partner_header := {"X-Portero-Partner": input.access.partner} if {
	members.kind == "partner"
} else := {}
