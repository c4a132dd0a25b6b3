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

denials contains "role.action_not_allowed" if {
	r := requests.entry.resource
	not defs.role_actions[members.role][r][requests.entry.action]
}

denials contains "scope.location" if {
	members.kind == "member"
	members.role == "location_manager"
	id := requests.params.location
	not id in members.membership.locations
}

denials contains "scope.business" if {
	members.kind == "member"
	members.role in {"multi_account_manager", "account_manager"}
	id := requests.params.business
	not id in members.membership.businesses
}

denials contains "right.missing" if {
	right := requests.entry.right
	members.kind == "member"
	members.role != "administrator"
	not right in members.membership.rights
}

# The scope for the X-Portero-Scope header.
scope := "organisation" if members.kind in {"owner", "partner"}
else := "organisation" if members.role == "administrator"
else := sprintf("businesses:%s", [concat(",", members.membership.businesses)]) if members.role in {"multi_account_manager", "account_manager"}
else := sprintf("locations:%s", [concat(",", members.membership.locations)]) if members.role == "location_manager"
else := "none"
