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
	subject.current.kind == "member"
	subject.current.role in {"multi_account_manager", "account_manager"}
	some i in requests.current.scope.business
	not input.request.app_segments[i] in input.access.membership.businesses
} else := "scope.location" if {
	# Business-scoped managers too: the store does not link a location to
	# its business, so a location path is theirs only when the location is
	# assigned to them (fail closed).
	subject.current.kind == "member"
	subject.current.role in {"multi_account_manager", "account_manager", "location_manager"}
	some i in requests.current.scope.location
	not input.request.app_segments[i] in input.access.membership.locations
}

# The scope for the X-Portero-Scope header.
scope := "organisation" if {
	members.kind in {"owner", "partner"}
} else := "organisation" if {
	members.role == "administrator"
} else := sprintf("businesses:%s", [concat(",", members.membership.businesses)]) if {
	members.role in {"multi_account_manager", "account_manager"}
} else := sprintf("locations:%s", [concat(",", members.membership.locations)]) if {
	members.role == "location_manager"
} else := "none"
