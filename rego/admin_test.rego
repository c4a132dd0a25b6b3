package portero.admin_test

import data.portero.authz
import data.portero.definitions as defs

_tenant := {"id": "acme", "status": "active", "owner": "olivia"}

_member(role, rights, status) := {"role": role, "rights": rights, "status": status, "businesses": [], "locations": [], "features": {}, "fields": {}, "profile": ""}

_call(sub, groups, access, management) := d if {
	d := authz.decision with input as {
		"identity": {"sub": sub, "groups": groups},
		"access": access,
		"management": management,
	}
}

# A membership as input.management.target carries it.
_grant(role) := {"role": role, "profile": "", "status": "active", "businesses": [], "locations": [], "rights": [], "features": {}, "fields": {}}

_roles := ["administrator", "multi_account_manager", "account_manager", "location_manager"]

# The caller: an active member of acme with role and rights, assigned b1 and l1.
_as(role, rights) := {"tenant": _tenant, "membership": object.union(_member(role, rights, "active"), {"businesses": ["b1"], "locations": ["l1"]})}

_write(access, target) := _call("carl", [], access, {"action": "members.write", "tenant": "acme", "target": target})

# Who manages members at all: administrators, and user_management from
# account manager up.
# Who manages members at all: administrators, and user_management from
# account manager up.
_manager(role, rights) if role == "administrator"

_manager(role, rights) if {
	"user_management" in rights
	defs.roles[role] >= defs.roles.account_manager
}

# Whether a change involving these target roles should be allowed.
_expected(caller, rights, roles) if {
	_manager(caller, rights)
	every r in roles {
		defs.roles[r] < defs.roles[caller]
	}
} else := false

# Every caller role, with and without user_management, against every
# target role: creating, changing (current → new) and removing or
# deactivating are allowed exactly when the caller manages members and every
# role involved ranks strictly below its own.
test_climbing_refused_for_every_role_pair if {
	every caller in _roles {
		every rights in [[], ["user_management"]] {
			every target in _roles {
				_write(_as(caller, rights), {"user": "tom", "new": _grant(target)}).allow == _expected(caller, rights, [target])
				_write(_as(caller, rights), {"user": "tom", "current": _grant(target)}).allow == _expected(caller, rights, [target])
				every new in _roles {
					_write(_as(caller, rights), {"user": "tom", "current": _grant(target), "new": _grant(new)}).allow == _expected(caller, rights, [target, new])
				}
			}
		}
	}
}

test_climbing_reasons if {
	am := _as("account_manager", ["user_management"])
	_write(am, {"user": "adam", "current": _grant("administrator"), "new": _grant("location_manager")}).reason == "admin.rank"
	_write(am, {"user": "adam", "current": _grant("administrator")}).reason == "admin.rank"
	_write(am, {"user": "ann", "current": _grant("account_manager"), "new": _grant("location_manager")}).reason == "admin.rank"
	_write(am, {"user": "tom", "new": _grant("multi_account_manager")}).reason == "admin.rank"
}

test_unknown_roles_rank_nowhere if {
	admin := _as("administrator", [])
	not _write(admin, {"user": "tom", "new": _grant("superuser")}).allow
	not _write(admin, {"user": "tom", "current": _grant(""), "new": _grant("location_manager")}).allow
	not _write(admin, {"user": "tom", "new": {"businesses": []}}).allow
}

test_nobody_but_the_unrestricted_changes_the_owner if {
	not _write(_as("administrator", []), {"user": "olivia", "new": _grant("location_manager")}).allow
	_write(_as("administrator", []), {"user": "olivia", "new": _grant("location_manager")}).reason == "admin.target_is_owner"
	_call("olivia", [], {"tenant": _tenant}, {"action": "members.write", "tenant": "acme", "target": {"user": "olivia", "new": _grant("administrator")}}).allow
}

test_first_step_needs_a_member_manager if {
	every role in _roles {
		every rights in [[], ["user_management"]] {
			d := _call("carl", [], _as(role, rights), {"action": "members.write", "tenant": "acme"})
			d.allow == _expected(role, rights, [])
		}
	}
	not _call("carl", [], {"tenant": _tenant, "membership": _member("administrator", [], "deactivated")}, {"action": "members.write", "tenant": "acme"}).allow
	not _call("eve", [], {"tenant": _tenant}, {"action": "members.write", "tenant": "acme"}).allow
	_call("eve", [], {"tenant": _tenant}, {"action": "members.write", "tenant": "acme"}).reason == "admin.not_allowed"
	_call("olivia", [], {"tenant": _tenant}, {"action": "members.write", "tenant": "acme"}).allow
}

# An account manager with user_management, assigned b1 and l1, with reviews
# at edit, insights at read, and profile_listings edits limited to phone.
_limited := {"tenant": _tenant, "membership": object.union(_member("account_manager", ["user_management"], "active"), {
	"businesses": ["b1"], "locations": ["l1"],
	"features": {"reviews": "edit", "insights": "read", "profile_listings": "edit"},
	"fields": {"profile_listings": ["phone"]},
})}

_lm(extra) := object.union(_grant("location_manager"), extra)

test_granting_what_one_does_not_hold_is_refused if {
	cases := [
		[{"businesses": ["b2"]}, "admin.grant_business"],
		[{"businesses": ["b1", "b2"]}, "admin.grant_business"],
		[{"locations": ["l9"]}, "admin.grant_location"],
		[{"rights": ["catalog_admin"]}, "admin.grant_right"],
		[{"rights": ["licenses"]}, "admin.grant_right"],
		[{"features": {"ads": "read"}}, "admin.grant_feature"],
		[{"features": {"insights": "edit"}}, "admin.grant_level"],
		[{"profile": "services"}, "admin.grant_feature"],
		[{"profile": "accounting"}, "admin.grant_feature"],
		[{"features": {"profile_listings": "edit"}}, "admin.grant_field"],
		[{"features": {"profile_listings": "edit"}, "fields": {"profile_listings": ["phone", "name"]}}, "admin.grant_field"],
		[{"features": {"reviews": "write"}}, "admin.grant_level"],
	]
	every c in cases {
		d := _write(_limited, {"user": "tom", "new": _lm(c[0])})
		not d.allow
		d.reason == c[1]
	}
}

test_granting_what_one_holds_is_allowed if {
	grants := [
		{"businesses": ["b1"], "locations": ["l1"]},
		{"rights": ["user_management"]},
		{"features": {"reviews": "edit", "insights": "read"}},
		{"features": {"reviews": "read"}},
		{"features": {"profile_listings": "edit"}, "fields": {"profile_listings": ["phone"]}},
		{"features": {"profile_listings": "read"}},
	]
	every g in grants {
		_write(_limited, {"user": "tom", "new": _lm(g)}).allow
	}
}

# What the target holds already counts: the result must be within the
# caller's rights, so a change that keeps a right the caller lacks, or a
# reactivation of such a member, is refused; removing or deactivating them
# only needs the rank.
test_the_whole_new_membership_must_be_held if {
	rich := _lm({"rights": ["catalog_admin"]})
	not _write(_limited, {"user": "tom", "current": rich, "new": object.union(rich, {"locations": ["l1"]})}).allow
	not _write(_limited, {"user": "tom", "current": object.union(rich, {"status": "deactivated"}), "new": rich}).allow
	_write(_limited, {"user": "tom", "current": rich}).allow
	_write(_limited, {"user": "tom", "current": rich, "new": _lm({})}).allow
}

test_administrators_hold_every_scope_and_right if {
	admin := _as("administrator", [])
	_write(admin, {"user": "tom", "new": object.union(_grant("multi_account_manager"), {"businesses": ["b7"], "locations": ["l7"], "rights": ["catalog_admin", "licenses", "user_management"], "profile": "full"})}).allow
	accounting := {"tenant": _tenant, "membership": object.union(_member("administrator", [], "active"), {"profile": "accounting"})}
	not _write(accounting, {"user": "tom", "new": _lm({"features": {"plan_changes": "edit"}})}).allow
	_write(accounting, {"user": "tom", "new": _lm({"features": {"billing": "edit"}})}).allow
}

test_the_unrestricted_grant_anything if {
	rich := object.union(_grant("administrator"), {"businesses": ["b9"], "rights": ["catalog_admin"], "profile": "full"})
	_call("olivia", [], {"tenant": _tenant}, {"action": "members.write", "tenant": "acme", "target": {"user": "tom", "new": rich}}).allow
	_call("sam", ["system-admins"], {"tenant": _tenant}, {"action": "members.write", "tenant": "acme", "target": {"user": "tom", "current": rich, "new": rich}}).allow
}

_invite(access, grant) := _call("carl", [], access, {"action": "delegations.write", "tenant": "acme", "grant": grant})

test_invitations_grant_only_what_one_holds if {
	_call("olivia", [], {"tenant": _tenant}, {"action": "delegations.write", "tenant": "acme", "grant": {"partner": "p", "scope": "full", "products": [], "wallet": true}}).allow
	admin := _as("administrator", [])
	_invite(admin, {"partner": "p", "scope": "limited", "products": ["reviews"], "wallet": true}).allow
	not _invite(admin, {"partner": "p", "scope": "full", "products": [], "wallet": false}).allow
	_invite(admin, {"partner": "p", "scope": "full", "products": [], "wallet": false}).reason == "admin.grant_full"
	services := {"tenant": _tenant, "membership": object.union(_member("administrator", [], "active"), {"profile": "services", "features": {"insights": "read"}})}
	_invite(services, {"partner": "p", "scope": "limited", "products": ["reviews"], "wallet": false}).allow
	_invite(services, {"partner": "p", "scope": "limited", "products": ["insights"], "wallet": false}).reason == "admin.grant_product"
	accounting := {"tenant": _tenant, "membership": object.union(_member("administrator", [], "active"), {"profile": "accounting"})}
	_invite(accounting, {"partner": "p", "scope": "limited", "products": ["billing"], "wallet": false}).allow
	_invite(accounting, {"partner": "p", "scope": "limited", "products": ["billing"], "wallet": true}).reason == "admin.grant_wallet"
	not _invite(_as("account_manager", ["user_management"]), {"partner": "p", "scope": "limited", "products": ["reviews"], "wallet": false}).allow
}

test_system_admin_may_do_everything if {
	every action in ["tenants.write", "tenant.read", "members.write", "delegations.write", "partners.write"] {
		_call("sam", ["system-admins"], {}, {"action": action}).allow
	}
}

# Trying a request shows any user's decision with its trace: system admins
# only, not the tenant's owner or administrators, whatever tenant is named.
test_only_system_admins_try_requests if {
	_call("sam", ["system-admins"], {}, {"action": "policy.try"}).allow
	not _call("olivia", [], {"tenant": _tenant}, {"action": "policy.try", "tenant": "acme"}).allow
	not _call("olivia", [], {}, {"action": "policy.try"}).allow
	not _call("ada", [], _as("administrator", ["user_management"]), {"action": "policy.try", "tenant": "acme"}).allow
	d := _call("leo", [], {}, {"action": "policy.try"})
	not d.allow
	d.reason == "admin.not_allowed"
}

# Ending a user's sessions on every replica is for system admins only:
# not the tenant's owner or administrators, whatever tenant is named.
test_only_system_admins_end_sessions if {
	_call("sam", ["system-admins"], {}, {"action": "sessions.revoke"}).allow
	not _call("olivia", [], {"tenant": _tenant}, {"action": "sessions.revoke", "tenant": "acme"}).allow
	not _call("ada", [], _as("administrator", ["user_management"]), {"action": "sessions.revoke", "tenant": "acme"}).allow
	d := _call("leo", [], {}, {"action": "sessions.revoke"})
	not d.allow
	d.reason == "admin.not_allowed"
}

test_other_groups_are_not_system_admins if {
	d := _call("eve", ["admins", "system-admins-x"], {}, {"action": "tenants.write"})
	not d.allow
	d.reason == "admin.not_allowed"
}

test_owner_manages_members_and_delegations if {
	every action in ["members.write", "delegations.write", "delegations.read", "tenant.read"] {
		_call("olivia", [], {"tenant": _tenant}, {"action": action, "tenant": "acme"}).allow
	}
	not _call("olivia", [], {"tenant": _tenant}, {"action": "tenants.write"}).allow
}

test_tenant_administrator_manages_members_below_it if {
	adam := {"tenant": _tenant, "membership": _member("administrator", [], "active")}
	_call("adam", [], adam, {"action": "members.write", "tenant": "acme", "target": {"user": "mia", "new": _grant("multi_account_manager")}}).allow
	not _call("adam", [], adam, {"action": "members.write", "tenant": "acme", "target": {"user": "ada", "new": _grant("administrator")}}).allow
}

test_deactivated_administrator_manages_nothing if {
	not _call("adam", [], {"tenant": _tenant, "membership": _member("administrator", [], "deactivated")}, {"action": "members.write", "tenant": "acme"}).allow
}

test_user_manager_reads_members_but_not_delegations if {
	am := {"tenant": _tenant, "membership": _member("account_manager", ["user_management"], "active")}
	_call("ann", [], am, {"action": "members.read", "tenant": "acme"}).allow
	_call("ann", [], am, {"action": "tenant.read", "tenant": "acme"}).allow
	not _call("ann", [], am, {"action": "delegations.write", "tenant": "acme"}).allow
	not _call("ann", [], am, {"action": "delegations.read", "tenant": "acme"}).allow
}

test_user_management_right_means_nothing_below_account_manager if {
	lm := {"tenant": _tenant, "membership": _member("location_manager", ["user_management"], "active")}
	not _call("leo", [], lm, {"action": "members.read", "tenant": "acme"}).allow
}

test_plain_member_manages_nothing if {
	not _call("mia", [], {"tenant": _tenant, "membership": _member("multi_account_manager", [], "active")}, {"action": "members.read", "tenant": "acme"}).allow
}

test_partner_users_answer_their_invitations_only if {
	_call("pat", [], {}, {"action": "delegations.respond", "partner": "partnerco", "user_partner": "partnerco"}).allow
	not _call("pat", [], {}, {"action": "delegations.respond", "partner": "otherco", "user_partner": "partnerco"}).allow
	not _call("eve", [], {}, {"action": "delegations.respond", "partner": "partnerco", "user_partner": ""}).allow
	not _call("eve", [], {}, {"action": "delegations.respond", "partner": "", "user_partner": ""}).allow
	not _call("pat", [], {}, {"action": "delegations.write", "partner": "partnerco", "user_partner": "partnerco"}).allow
}

test_everyone_signed_in_reads_their_own_facts_and_the_catalogue if {
	every action in ["self.read", "definitions.read"] {
		_call("leo", [], {}, {"action": action}).allow
	}
	not _call("leo", [], {}, {"action": "tenants.read"}).allow
	not _call("leo", [], {}, {"action": "policy.read"}).allow
}

# The levels a new membership gives count the administrators' default,
# as portero.features does.
test_new_levels_count_the_administrators_default if {
	levels := data.portero.admin._new_levels with input as {"management": {"target": {"new": object.union(_grant("administrator"), {"profile": "accounting"})}}}
	levels.reviews == "edit"
	levels.plan_changes == "read"
}

# Issue #15: the tenant's owner and administrators read their tenant's
# history and master-access sessions, revoke master access on it and
# search partners; only the owner changes the tenant's settings; members
# below administrator, other tenants' owners and partners do none of it.
test_tenant_admins_see_history_and_master_access_of_their_tenant_only if {
	adam := {"tenant": _tenant, "membership": _member("administrator", [], "active")}
	every action in ["tenant.history.read", "tenant.master.read", "master.revoke", "partners.search"] {
		_call("olivia", [], {"tenant": _tenant}, {"action": action, "tenant": "acme"}).allow
		_call("adam", [], adam, {"action": action, "tenant": "acme"}).allow
		not _call("ann", [], _as("account_manager", ["user_management"]), {"action": action, "tenant": "acme"}).allow
		not _call("gone", [], {"tenant": _tenant, "membership": _member("administrator", [], "deactivated")}, {"action": action, "tenant": "acme"}).allow

		# Another tenant's owner, facts of the tenant named.
		not _call("gina", [], {"tenant": _tenant}, {"action": action, "tenant": "acme"}).allow
		not _call("pat", [], {"tenant": _tenant, "partner": "partnerco"}, {"action": action, "tenant": "acme", "user_partner": "partnerco"}).allow
	}

	# Without a tenant (every session, any tenant) it stays the system admins'.
	not _call("olivia", [], {}, {"action": "master.revoke"}).allow
	not _call("olivia", [], {}, {"action": "master.read"}).allow
	_call("sam", ["system-admins"], {}, {"action": "master.revoke"}).allow
}

test_only_the_owner_changes_tenant_settings if {
	_call("olivia", [], {"tenant": _tenant}, {"action": "tenant.settings", "tenant": "acme"}).allow
	not _call("adam", [], {"tenant": _tenant, "membership": _member("administrator", [], "active")}, {"action": "tenant.settings", "tenant": "acme"}).allow
	not _call("olivia", [], {"tenant": _tenant}, {"action": "tenants.write", "tenant": "acme"}).allow
	_call("sam", ["system-admins"], {}, {"action": "tenant.settings", "tenant": "acme"}).allow
}

# A partner's admins manage their own organisation's users; staff and
# other organisations' admins do not.
test_partner_admins_manage_only_their_own_users if {
	every action in ["partner_users.read", "partner_users.write"] {
		_call("paula", [], {}, {"action": action, "partner": "partnerco", "user_partner": "partnerco", "user_partner_role": "admin"}).allow
		not _call("pat", [], {}, {"action": action, "partner": "partnerco", "user_partner": "partnerco", "user_partner_role": "staff"}).allow
		not _call("pat", [], {}, {"action": action, "partner": "partnerco", "user_partner": "partnerco"}).allow
		not _call("oscar", [], {}, {"action": action, "partner": "partnerco", "user_partner": "otherco", "user_partner_role": "admin"}).allow
		not _call("eve", [], {}, {"action": action, "partner": "partnerco", "user_partner": "", "user_partner_role": "admin"}).allow
		_call("sam", ["system-admins"], {}, {"action": action, "partner": "partnerco"}).allow
	}

	# Staff read their organisation; only system admins create one.
	_call("pat", [], {}, {"action": "partner.read", "partner": "partnerco", "user_partner": "partnerco", "user_partner_role": "staff"}).allow
	not _call("paula", [], {}, {"action": "partners.write", "user_partner": "partnerco", "user_partner_role": "admin"}).allow
}

# Inviting a member by e-mail is decided as adding them: a user manager
# invites below their rank, with what they hold, and no higher.
test_member_invitations_are_decided_as_adding_the_member if {
	ann := _as("account_manager", ["user_management"])
	_write(ann, {"user": "new@example.com", "new": object.union(_grant("location_manager"), {"locations": ["l1"]})}).allow
	not _write(ann, {"user": "new@example.com", "new": _grant("administrator")}).allow
	not _write(ann, {"user": "new@example.com", "new": object.union(_grant("location_manager"), {"locations": ["l9"]})}).allow
}
