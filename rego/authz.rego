# METADATA
# title: Portero authorization entry point
# description: |
#   The gateway evaluates data.portero.authz.decision for every request and
#   acts on the returned object: {allow, status, reason, headers, assertion}
#   (assertion: who the signed assertion names, under master access).
#   Anything other than a well-formed object denies.
package portero.authz

import data.portero.admin
import data.portero.features
import data.portero.master
import data.portero.members
import data.portero.requests
import data.portero.roles
import data.portero.subject

# METADATA
# title: Decision for one request
# description: |
#   With an access store (input.access present) the tenant must exist and be
#   active, and the caller's role, features, scope and delegation must allow
#   the request (see portero.subject, portero.members, portero.features,
#   portero.roles, portero.delegation and the route mapping in
#   portero.requests). A system admin's master-access session for the
#   tenant decides instead while it applies (portero.master). Without a
#   store, membership comes from token claims (the roles portero.membership
#   names, looked up inline: in rules of their own they cost ~40
#   allocations a request). Reasons
#   are stable ids shown to clients and logged. On allow the identity headers
#   for the upstream are returned; the gateway strips client-sent copies of
#   every one of them first.
# entrypoint: true
default decision := {"allow": false, "status": 403, "reason": "deny.default"}

decision := {"allow": false, "status": 401, "reason": "deny.unauthenticated"} if {
	not input.identity.sub
} else := {"allow": admin.allow, "status": 403, "reason": admin.reason} if {
	input.management
} else := {"allow": false, "status": 403, "reason": "deny.no_tenant"} if {
	not input.tenant.id
} else := _with_store if {
	input.access
} else := {"allow": true, "status": 200, "reason": "member", "headers": {
	"X-Portero-User": input.identity.sub,
	"X-Portero-Tenant": input.tenant.id,
	"X-Portero-Roles": concat(",", roles),
}} if {
	roles := input.identity.memberships[input.tenant.id]
} else := {"allow": false, "status": 403, "reason": "deny.not_a_member"}

# The decision with an access store (input.access): always defined, so
# that a request with store facts is never decided as one without.
default _with_store := {"allow": false, "status": 403, "reason": "deny.default"}

_with_store := {"allow": false, "status": 404, "reason": "tenant.unknown"} if {
	not input.access.tenant
} else := master.decision if {
	master.applies
} else := {"allow": false, "status": 403, "reason": "tenant.suspended"} if {
	input.access.tenant.status != "active"
} else := _refusal if {
	_denial
} else := {"allow": true, "status": 200, "reason": subject.current.reason, "headers": object.union(subject.current.headers, subject.grant_facts_current.headers)}

# A refusal, unless the caller is a member who is also a user of a
# partner organisation with an accepted delegation from the tenant: they
# have the union of both, so what the membership refuses the delegation
# may allow. (Worked out only for refused requests: an allowed one costs
# nothing more.)
_refusal := d if {
	members.also_partner
	d := _as_partner
	d.allow
} else := {"allow": false, "status": 403, "reason": _denial}

# The decision on the caller as the partner's user alone: the facts
# without the membership, and none of the gateway's memoised stages (they
# were worked out for the member).
_as_partner := d if {
	d := _own with input.access as object.remove(input.access, {"membership"})
		with input.subject as false
		with input.grant as false
		with input.grant_facts as false
		with input.operation_denial as false
}

# The end of _with_store, for _as_partner.
_own := {"allow": false, "status": 403, "reason": _denial} if {
	_denial
} else := {"allow": true, "status": 200, "reason": subject.current.reason, "headers": object.union(subject.current.headers, subject.grant_facts_current.headers)}

# The first refusal: one that holds for every request of this caller, then
# an operation the route mapping does not name (default deny), then one for
# the operation the request maps to (delegation, rights, role,
# feature level; worked out once per caller by portero.subject), then the
# business or location the path names, then the fields the body changes.
_denial := subject.current.denial if {
	subject.current.denial != ""
} else := "operation.unmapped" if {
	not requests.current.id
} else := d if {
	d := subject.operation_current
	d != ""
} else := d if {
	d := roles.scope_denial
} else := d if {
	d := features.field_denial
}
