package portero.admin_test

import data.portero.authz

_tenant := {"id": "acme", "status": "active", "owner": "olivia"}

_member(role, rights, status) := {"role": role, "rights": rights, "status": status, "businesses": [], "locations": [], "features": {}, "fields": {}, "profile": ""}

_call(sub, groups, access, management) := d if {
	d := authz.decision with input as {
		"identity": {"sub": sub, "groups": groups},
		"access": access,
		"management": management,
	}
}

test_system_admin_may_do_everything if {
	every action in ["tenants.write", "tenant.read", "members.write", "delegations.write", "partners.write"] {
		_call("sam", ["system-admins"], {}, {"action": action}).allow
	}
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

test_tenant_administrator_manages_members if {
	_call("adam", [], {"tenant": _tenant, "membership": _member("administrator", [], "active")}, {"action": "members.write", "tenant": "acme", "target_role": "administrator"}).allow
}

test_deactivated_administrator_manages_nothing if {
	not _call("adam", [], {"tenant": _tenant, "membership": _member("administrator", [], "deactivated")}, {"action": "members.write", "tenant": "acme"}).allow
}

test_user_manager_gives_only_lower_roles if {
	am := {"tenant": _tenant, "membership": _member("account_manager", ["user_management"], "active")}
	_call("ann", [], am, {"action": "members.read", "tenant": "acme"}).allow
	_call("ann", [], am, {"action": "members.write", "tenant": "acme", "target_role": "location_manager"}).allow
	not _call("ann", [], am, {"action": "members.write", "tenant": "acme", "target_role": "account_manager"}).allow
	not _call("ann", [], am, {"action": "members.write", "tenant": "acme", "target_role": "administrator"}).allow
	not _call("ann", [], am, {"action": "delegations.write", "tenant": "acme"}).allow
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
	not _call("pat", [], {}, {"action": "delegations.write", "partner": "partnerco", "user_partner": "partnerco"}).allow
}

test_everyone_signed_in_reads_their_own_facts_and_the_catalogue if {
	every action in ["self.read", "definitions.read"] {
		_call("leo", [], {}, {"action": action}).allow
	}
	not _call("leo", [], {}, {"action": "tenants.read"}).allow
	not _call("leo", [], {}, {"action": "policy.read"}).allow
}
