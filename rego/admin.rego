# METADATA
# title: Who may manage access
# description: |
#   Decides calls to the management API (/.portero/api/v1/), the admin
#   console and master access: input.management = {action, tenant, partner,
#   user_partner, target, grant}.
#
#   A call is decided in two steps. The first names only the action and the
#   tenant or partner: it comes before anything is read or decoded, so a
#   caller it refuses learns nothing about which records exist. The second,
#   for a change to a member, adds target = {user, current, new} (current is
#   absent for a new member, new is absent when the member is removed or
#   deactivated); for an invitation, grant = {partner, scope, products,
#   wallet}.
#
#   System admins (a group in data.portero.definitions.system_admin_groups)
#   may do everything but start master access (portero.master decides that),
#   and the tenant's owner everything in its tenant: they are unrestricted.
#   Only system admins read the policy's status (policy.read), try a
#   request against it (policy.try: the decision and explain trace for any
#   user) and end a user's browser sessions everywhere (sessions.revoke), as
#   no rule below names these actions.
#   Active administrators, and active members with the user_management right
#   from account manager up, manage members, but only members whose current
#   and new role rank strictly below their own (never the owner), and grant
#   only what they hold themselves: businesses and locations (administrators
#   hold all), rights (administrators hold all), features at a level no
#   higher than their own (read < edit; a profile and rights count as the
#   features they give), and, where their own edits are limited per field,
#   only those fields. Administrators invite partners with limited access to
#   products they hold at edit (wallet access only when they hold every
#   wallet feature at edit); full access acts as an administrator, so only
#   the unrestricted grant it. Inviting a member by e-mail, and resending or
#   withdrawing the invitation, is decided as adding that member
#   (members.write with the membership it grants as target.new).
#   The tenant's owner and active administrators (those who invite
#   partners) search partner organisations (partners.search), read their
#   tenant's access-change history (tenant.history.read) and its
#   master-access sessions (tenant.master.read), and revoke a running
#   master-access session on their tenant (master.revoke naming it); only
#   the owner changes the tenant's own settings (tenant.settings: owner
#   e-mail, default profile, e-mail on master access).
#   A partner's users answer the invitations addressed to their
#   organisation and read it; its admins (user_partner_role "admin", set
#   by the control plane) list, add, change, deactivate and remove its
#   users (partner_users.read, partner_users.write), and only its own.
#   Partner organisations are created by system admins (partners.write).
package portero.admin

import data.portero.definitions as defs
import data.portero.features
import data.portero.master
import data.portero.members

is_system_admin if {
	some g in input.identity.groups
	g in defs.system_admin_groups
}

_m := members.membership

_active_member if {
	members.kind == "member"
	_m.status == "active"
}

# The tenant's owner manages anyone and grants anything in its tenant
# (system admins are allowed everything by the first allow below).
_unrestricted if members.kind == "owner"

_tenant_admin if members.kind == "owner"

_tenant_admin if {
	_active_member
	_m.role == "administrator"
}

# Who manages members at all (the first step); what they may do to whom is
# member_refusal (the second).
_member_manager if _tenant_admin

_member_manager if {
	_active_member
	"user_management" in _m.rights
	defs.roles[_m.role] >= defs.roles.account_manager
}

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
# forbid it); reading every session and revoking any is for system admins
# above.
allow if {
	input.management.action == "master.start"
	master.may_start
}

# The tenant's owner and administrators see who entered their tenant and
# what changed in its access, and may end a running master-access session
# on it.
allow if {
	input.management.action in {"tenant.history.read", "tenant.master.read", "master.revoke", "partners.search"}
	input.management.tenant != ""
	_tenant_admin
}

# The tenant's own settings are the owner's.
allow if {
	input.management.action == "tenant.settings"
	_unrestricted
}

allow if {
	input.management.action in {"tenant.read", "members.read"}
	_member_manager
}

allow if {
	input.management.action == "members.write"
	_member_manager
	not member_refusal
}

allow if {
	input.management.action == "delegations.read"
	_tenant_admin
}

allow if {
	input.management.action == "delegations.write"
	_tenant_admin
	not delegation_refusal
}

allow if {
	input.management.action in {"delegations.respond", "partner.read"}
	input.management.user_partner != ""
	input.management.partner == input.management.user_partner
}

# A partner organisation's admins manage its users, and no other's.
allow if {
	input.management.action in {"partner_users.read", "partner_users.write"}
	input.management.user_partner != ""
	input.management.partner == input.management.user_partner
	input.management.user_partner_role == "admin"
}

reason := "admin.allowed" if {
	allow
} else := master.refusal if {
	input.management.action == "master.start"
} else := r if {
	input.management.action == "members.write"
	_member_manager
	r := member_refusal
} else := r if {
	input.management.action == "delegations.write"
	_tenant_admin
	r := delegation_refusal
} else := "admin.not_allowed"

_target := input.management.target

_new := _target.new

# Why the caller may not make this change to a member; undefined when it
# may, and in the first step (no target). Every refusal is written as
# "not <holds>", so a value the policy does not know refuses.
member_refusal := "admin.target_is_owner" if {
	not _unrestricted
	members.tenant.owner != ""
	_target.user == members.tenant.owner
} else := "admin.rank" if {
	not _unrestricted
	some role in _target_roles
	not _ranks_below(role)
} else := "admin.grant_business" if {
	not _unrestricted
	some b in _new.businesses
	not _holds_business(b)
} else := "admin.grant_location" if {
	not _unrestricted
	some l in _new.locations
	not _holds_location(l)
} else := "admin.grant_right" if {
	not _unrestricted
	some r in _new.rights
	not _holds_right(r)
} else := "admin.grant_feature" if {
	not _unrestricted
	some f, _ in _new_levels
	not features.levels[f]
	not defs.member_baseline[f]
} else := "admin.grant_level" if {
	not _unrestricted
	some f, level in _new_levels
	not _holds_level(f, level)
} else := "admin.grant_field" if {
	not _unrestricted
	_grants_unheld_field
}

# The member's role before and after the change.
_target_roles contains object.get(_target.current, "role", "")

_target_roles contains object.get(_new, "role", "")

_ranks_below(role) if defs.roles[role] < defs.roles[_m.role]

_holds_business(_) if _m.role == "administrator"

_holds_business(b) if b in _m.businesses

_holds_location(_) if _m.role == "administrator"

_holds_location(l) if l in _m.locations

# Administrators act with every right (portero.roles).
_holds_right(_) if _m.role == "administrator"

_holds_right(r) if r in _m.rights

_level_rank := {"read": 1, "edit": 2}

_holds_level(f, level) if _level_rank[level] <= _level_rank[features.levels[f]]

# What every member has anyone may grant.
_holds_level(f, level) if _level_rank[level] <= _level_rank[defs.member_baseline[f]]

# The levels the new membership gives, as portero.features computes them:
# the administrators' default, then extra rights, the profile, and explicit
# feature rights.
_new_levels := features.levels_of(_new)

# The caller may edit only some fields of a feature: an edit grant of that
# feature must be limited to some of those fields.
_grants_unheld_field if {
	some f, level in _new_levels
	level == "edit"
	_m.fields[f]
	not _new.fields[f]
}

_grants_unheld_field if {
	some f, names in _new.fields
	limit := _m.fields[f]
	some name in names
	not name in limit
}

_grant := input.management.grant

# Why the caller may not make this invitation; undefined when it may, and in
# the first step (no grant).
delegation_refusal := "admin.grant_full" if {
	not _unrestricted
	_grant.scope != "limited"
} else := "admin.grant_product" if {
	not _unrestricted
	some p in _grant.products
	not features.levels[p] == "edit"
} else := "admin.grant_wallet" if {
	not _unrestricted
	_grant.wallet == true
	some f, def in defs.features
	def.wallet
	not features.levels[f] == "edit"
}
