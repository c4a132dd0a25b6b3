package portero.master_test

import data.portero.authz

_tenant := {"id": "acme", "name": "Acme", "status": "active", "owner": "olivia", "master_access": true}

_session := {
	"id": "ma_1", "admin": "sam", "tenant": "acme", "reason": "ticket 42: login broken", "ticket": "42",
	"mode": "full", "session": "s1", "expires": "2026-11-23T16:00:00Z", "expired": false,
}

_input(method, tenant, master, groups, session) := {
	"request": {"method": method, "app_segments": ["reviews"]},
	"tenant": {"id": "acme", "status": tenant.status},
	"identity": {"sub": "sam", "groups": groups, "session": session},
	"access": {"tenant": tenant, "master": master},
	"gateway": {"header_profile": "portero"},
}

_admin(method) := _input(method, _tenant, _session, ["system-admins"], "s1")

test_admin_enters_as_the_owner_with_impersonation_headers if {
	d := authz.decision with input as _admin("POST")
	d.allow
	d.reason == "master.full"
	d.headers["X-Portero-User"] == "olivia"
	d.headers["X-Portero-Tenant"] == "acme"
	d.headers["X-Portero-Impersonator"] == "sam"
	d.headers["X-Portero-Impersonation-Reason"] == "ticket 42: login broken"
	d.headers["X-Portero-Impersonation-Expires"] == "2026-11-23T16:00:00Z"
	d.headers["X-Portero-Impersonation-Id"] == "ma_1"
	d.assertion == {"sub": "olivia", "act": "sam", "roles": ["administrator"]}
}

test_kubernetes_profile if {
	inp := object.union(_admin("GET"), {"gateway": {"header_profile": "kubernetes"}})
	d := authz.decision with input as inp
	d.allow
	d.headers["Impersonate-User"] == "olivia"
	d.headers["Impersonate-Group"] == ["portero:tenant:acme", "portero:role:administrator"]
	d.headers["Impersonate-Extra-Impersonator"] == "sam"
	d.headers["Impersonate-Extra-Reason"] == "ticket 42: login broken"
	not d.headers["X-Portero-Impersonator"]
}

test_read_only_refuses_writes if {
	ro := object.union(_session, {"mode": "read_only"})
	authz.decision.allow with input as _input("GET", _tenant, ro, ["system-admins"], "s1")
	authz.decision.reason == "master.read_only" with input as _input("DELETE", _tenant, ro, ["system-admins"], "s1")
	authz.decision.reason == "master.read_only" with input as _input("POST", _tenant, ro, ["system-admins"], "s1")
}

test_expired_session_is_refused if {
	expired := object.union(_session, {"expired": true})
	d := authz.decision with input as _input("GET", _tenant, expired, ["system-admins"], "s1")
	not d.allow
	d.reason == "master.expired"
}

test_non_admin_is_refused if {
	d := authz.decision with input as _input("GET", _tenant, _session, ["staff"], "s1")
	not d.allow
	d.reason == "master.not_system_admin"
}

test_tenant_forbidding_master_access_is_refused if {
	forbids := object.union(_tenant, {"master_access": false})
	d := authz.decision with input as _input("GET", forbids, _session, ["system-admins"], "s1")
	d.reason == "master.forbidden_by_tenant"
}

test_suspended_tenant_is_refused if {
	suspended := object.union(_tenant, {"status": "suspended"})
	d := authz.decision with input as _input("GET", suspended, _session, ["system-admins"], "s1")
	not d.allow
}

# From another sign-in session (or a bearer token) the admin is themself:
# not a member of acme.
test_other_sign_in_session_gets_the_admins_own_access if {
	d := authz.decision with input as _input("GET", _tenant, _session, ["system-admins"], "other")
	not d.allow
	d.reason == "member.none"
	not d.headers
}

# A session for another tenant is not in this tenant's facts: nothing changes.
test_session_for_another_tenant_does_not_apply if {
	inp := object.remove(_admin("GET"), ["access"])
	d := authz.decision with input as object.union(inp, {"access": {"tenant": _tenant}})
	d.reason == "member.none"
}

# --- starting a session (management API) ---

_start(groups, tenant) := d if {
	d := authz.decision with input as {
		"identity": {"sub": "sam", "groups": groups},
		"tenant": {"id": "acme"},
		"access": {"tenant": tenant},
		"management": {"action": "master.start", "tenant": "acme"},
	}
}

test_start_allowed_for_system_admins if {
	_start(["system-admins"], _tenant).allow
}

test_start_refusals if {
	_start(["staff"], _tenant).reason == "master.not_system_admin"
	_start(["system-admins"], object.union(_tenant, {"master_access": false})).reason == "master.forbidden_by_tenant"
	_start(["system-admins"], object.union(_tenant, {"status": "suspended"})).reason == "master.tenant_not_active"
	d := authz.decision with input as {
		"identity": {"sub": "sam", "groups": ["system-admins"]}, "tenant": {"id": "nope"}, "access": {},
		"management": {"action": "master.start", "tenant": "nope"},
	}
	d.reason == "master.unknown_tenant"
}

test_owner_cannot_start_master_access if {
	d := authz.decision with input as {
		"identity": {"sub": "olivia", "groups": []}, "tenant": {"id": "acme"}, "access": {"tenant": _tenant},
		"management": {"action": "master.start", "tenant": "acme"},
	}
	not d.allow
}

test_owner_without_a_recorded_owner_name if {
	noowner := object.union(_tenant, {"owner": ""})
	d := authz.decision with input as _input("GET", noowner, _session, ["system-admins"], "s1")
	d.headers["X-Portero-User"] == "tenant-owner:acme"
}
