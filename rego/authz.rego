# METADATA
# title: Portero authorization entry point
# description: |
#   The gateway evaluates data.portero.authz.decision for every request and
#   acts on the returned object: {allow, status, reason, headers}. Anything
#   other than a well-formed object denies.
package portero.authz

import data.portero.admin
import data.portero.delegation
import data.portero.features
import data.portero.members
import data.portero.membership
import data.portero.roles

# METADATA
# title: Decision for one request
# description: |
#   With an access store (input.access present) the tenant must exist and be
#   active, and the caller's role, features, scope and delegation must allow
#   the request (see portero.members, portero.features, portero.roles,
#   portero.delegation and the route mapping in portero.requests). Without a
#   store, membership comes from token claims (portero.membership). Reasons
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
} else := _claims_decision if {
	not input.access
} else := {"allow": false, "status": 404, "reason": "tenant.unknown"} if {
	not input.access.tenant
} else := {"allow": false, "status": 403, "reason": "tenant.suspended"} if {
	input.access.tenant.status != "active"
} else := {"allow": false, "status": 403, "reason": _denial} if {
	_denial
} else := {"allow": true, "status": 200, "reason": sprintf("%s.%s", [members.kind, members.role]), "headers": _store_headers}

# The first refusal, by concern: who the caller is, then the delegation,
# then role and scope, then features and fields. Every rule that refuses a
# request adds its reason id to its package's denials.
_denial := min(members.denials) if count(members.denials) > 0
else := min(delegation.denials) if count(delegation.denials) > 0
else := min(roles.denials) if count(roles.denials) > 0
else := min(features.denials) if count(features.denials) > 0

_store_headers := object.union(
	{
		"X-Portero-User": input.identity.sub,
		"X-Portero-Tenant": input.tenant.id,
		"X-Portero-Role": members.role,
		"X-Portero-Roles": members.role,
		"X-Portero-Scope": roles.scope,
		"X-Portero-Features": json.marshal(features.levels),
	},
	_partner_header,
)

_partner_header := {"X-Portero-Partner": input.access.partner} if members.kind == "partner"
else := {}

# Without a store: members are those the token's claims name. The headers
# are written inline: a separate rule cost ~5 µs a request.
_claims_decision := {"allow": true, "status": 200, "reason": "member", "headers": {
	"X-Portero-User": input.identity.sub,
	"X-Portero-Tenant": input.tenant.id,
	"X-Portero-Roles": concat(",", roles_from_claims),
}} if {
	roles_from_claims := membership.roles
} else := {"allow": false, "status": 403, "reason": "deny.not_a_member"}
