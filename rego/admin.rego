# METADATA
# title: Who may manage access
# description: |
#   Decides calls to the management API (/.portero/api/v1/) and the admin
#   console: input.management = {action, tenant, partner, user_partner,
#   target_role}. System admins (a group listed in
#   data.portero.definitions.system_admin_groups) may do everything; a
#   tenant's owner and administrators manage its members and delegations;
#   members with the user_management right (account manager and above)
#   manage members below their own role; a partner's users answer the
#   invitations addressed to their organisation.
package portero.admin

import data.portero.definitions as defs
import data.portero.master
import data.portero.members

is_system_admin if {
	some g in input.identity.groups
	g in defs.system_admin_groups
}

_m := members.membership

_tenant_admin if members.kind == "owner"

_tenant_admin if {
	members.kind == "member"
	_m.status == "active"
	_m.role == "administrator"
}

_user_manager if {
	members.kind == "member"
	_m.status == "active"
	"user_management" in _m.rights
	defs.roles[_m.role] >= defs.roles.account_manager
}

_tenant_actions := {"tenant.read", "members.read", "members.write", "delegations.read", "delegations.write"}

default allow := false

allow if {
	is_system_admin
	not input.management.action == "master.start"
}

# Everyone signed in may read what concerns themself (their tenants and
# partner organisation) and the policy's catalogue of features, profiles
# and rights (the admin console's forms).
allow if {
	input.management.action in {"self.read", "definitions.read"}
	input.identity.sub
}

# Starting master access is decided by portero.master (the tenant may
# forbid it); reading and revoking sessions is for system admins above.
allow if {
	input.management.action == "master.start"
	master.may_start
}

allow if {
	input.management.action in _tenant_actions
	_tenant_admin
}

allow if {
	input.management.action in {"tenant.read", "members.read"}
	_user_manager
}

# A user manager may give only roles below their own.
allow if {
	input.management.action == "members.write"
	_user_manager
	defs.roles[input.management.target_role] < defs.roles[_m.role]
}

allow if {
	input.management.action in {"delegations.respond", "partner.read"}
	input.management.user_partner != ""
	input.management.partner == input.management.user_partner
}

reason := "admin.allowed" if allow
else := master.refusal if input.management.action == "master.start"
else := "admin.not_allowed"
