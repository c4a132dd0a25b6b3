# METADATA
# title: Roles and scopes
# description: |
#   administrator > multi-account manager > account manager > location
#   manager. What each may do to businesses, locations, settings and the API
#   key is data.portero.definitions.role_actions. Multi-account and account
#   managers work on their assigned businesses, location managers on their
#   assigned locations only.
package portero.roles

import data.portero.definitions as defs
import data.portero.members
import data.portero.requests
import data.portero.subject

# A refusal of operation e (a route mapping entry) that depends only on
# the caller's grant g (portero.subject): worked out once per grant and
# entry.
op_denial(g, e) := "right.missing" if {
	e.right
	g.kind in {"member", "partner"}
	g.role != "administrator"
	not e.right in object.get(g.membership, "rights", [])
} else := "role.action_not_allowed" if {
	e.resource
	not defs.role_actions[g.role][e.resource][e.action]
}

# A refusal of this request by scope: the path names a business or location
# the member is not assigned to, wherever in the path it stands.
scope_denial := "scope.business" if {
	some i in requests.current.scope.business
	subject.current.kind == "member"
	subject.current.role in {"multi_account_manager", "account_manager"}
	not input.request.app_segments[i] in input.access.membership.businesses
} else := "scope.location" if {
	# Business-scoped managers too: the store does not link a location to
	# its business, so a location path is theirs only when the location is
	# assigned to them (fail closed).
	some i in requests.current.scope.location
	subject.current.kind == "member"
	subject.current.role in {"multi_account_manager", "account_manager", "location_manager"}
	not input.request.app_segments[i] in input.access.membership.locations
}

# The scope for the X-Portero-Scope header: the organisation, or the
# businesses or locations a manager is assigned.
scope := "organisation" if {
	members.kind in {"owner", "partner"}
} else := sprintf("%s:%s", [assigned, concat(",", input.access.membership[assigned])]) if {
	assigned := {
		"multi_account_manager": "businesses",
		"account_manager": "businesses",
		"location_manager": "locations",
	}[members.role]
} else := "organisation" if {
	members.role == "administrator"
} else := "none"
