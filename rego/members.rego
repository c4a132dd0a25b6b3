# METADATA
# title: Who the caller is in the request's tenant
# description: |
#   From input.access (the store's facts): the tenant's owner, a member, or a
#   user of a partner organisation the tenant delegated to; and the role the
#   rest of the policy applies. A deactivated member is refused on the very
#   next request.
package portero.members

import data.portero.delegation

tenant := input.access.tenant

membership := input.access.membership

kind := "owner" if {
	input.access.tenant.owner != ""
	input.identity.sub == input.access.tenant.owner
} else := "member" if {
	input.access.membership
} else := "partner" if {
	input.access.delegation
} else := "none"

# The role the policy applies: an owner administers; "" for anyone
# without one (kind "none", a membership or delegation that names none).
role := "administrator" if {
	kind == "owner"
} else := input.access.membership.role if {
	kind == "member"
} else := delegation.role if {
	kind == "partner"
} else := ""

# A member who is also a user of a partner organisation with an accepted,
# unexpired delegation from this tenant. Their requests get the union of
# both: what the membership refuses (even a deactivated one: the tenant
# revokes the delegation to end the partner's access) the delegation may
# allow (portero.authz).
also_partner if {
	kind == "member"
	input.access.delegation.status == "accepted"
	not input.access.delegation.expired
}

# A refusal that holds for every request of this caller in this tenant,
# "" when none.
denial := "member.none" if {
	kind == "none"
} else := "member.deactivated" if {
	kind == "member"
	input.access.membership.status != "active"
} else := d if {
	# Only a partner's user has a standing delegation refusal: for anyone
	# else its three branches are not worked out.
	kind == "partner"
	d := delegation.standing_denial
} else := ""
