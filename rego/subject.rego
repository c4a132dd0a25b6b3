# METADATA
# title: The caller in the request's tenant, independent of the request
# description: |
#   Everything the policy knows about the caller that does not depend on
#   the request: who they are in the tenant (owner, member, partner or
#   none), their role and its rank, their level per feature, the scope and
#   the identity headers for the upstream, a refusal that holds for every
#   request (deactivated member, unaccepted or expired delegation), and the
#   refusal of each operation of the route mapping that depends only on
#   the caller (delegation products, rights, role actions, feature levels).
#   The gateway evaluates facts once per identity and store lookup and
#   passes the result as input.subject to the evaluations of that caller's
#   requests, until a store write or a policy reload; rules that decide a
#   request read the caller through current. The gateway memoises facts only
#   while it and the rules it uses read nothing but input.identity,
#   input.access and input.tenant and call no non-deterministic builtin;
#   otherwise it evaluates facts for every request.
package portero.subject

import data.portero.definitions as defs
import data.portero.delegation
import data.portero.features
import data.portero.members
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
	"headers": _headers,
	"reason": sprintf("%s.%s", [members.kind, _role]),
	"ops": _ops,
}

# Refusals by operation: route mapping entry id -> the first refusal of
# that operation by delegation, rights and role, then feature level. An
# operation missing here is allowed, as far as the caller goes; the request
# may still be refused for its scope or fields.
_ops := {id: d |
	some method, buckets in defs.routes
	some entries in buckets
	some e in entries
	d := _op_denial(e)
	id := concat(" ", [method, e.path])
}

_op_denial(e) := d if {
	d := delegation.op_denial(e)
} else := d if {
	d := roles.op_denial(e)
} else := d if {
	d := features.op_denial(e)
}

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
