package portero.authz_test

import data.portero.authz

_req := {"method": "GET", "host": "acme.apps.example.com", "path": "/api/x", "segments": ["api", "x"], "headers": {}}

_identity(memberships) := {"sub": "u1", "email": "u1@example.com", "memberships": memberships, "groups": [], "auth": "bearer"}

test_member_without_roles_is_allowed if {
	d := authz.decision with input as {
		"request": _req, "tenant": {"id": "acme"},
		"identity": _identity({"acme": []}),
	}
	d.allow
	d.reason == "member"
	d.headers["X-Portero-User"] == "u1"
	d.headers["X-Portero-Tenant"] == "acme"
	d.headers["X-Portero-Roles"] == ""
}

test_member_roles_are_passed_upstream if {
	d := authz.decision with input as {
		"request": _req, "tenant": {"id": "acme"},
		"identity": _identity({"globex": ["administrator"], "acme": ["account_manager", "location_manager"]}),
	}
	d.allow
	d.headers["X-Portero-Roles"] == "account_manager,location_manager"
}

test_other_tenant_is_denied if {
	d := authz.decision with input as {
		"request": _req, "tenant": {"id": "acme"},
		"identity": _identity({"globex": ["administrator"]}),
	}
	not d.allow
	d.status == 403
	d.reason == "deny.not_a_member"
	not d.headers
}

test_anonymous_is_unauthenticated if {
	d := authz.decision with input as {"request": _req, "tenant": {"id": "acme"}}
	not d.allow
	d.status == 401
	d.reason == "deny.unauthenticated"
}

test_request_without_tenant_is_denied if {
	d := authz.decision with input as {"request": _req, "identity": _identity({"acme": []})}
	not d.allow
	d.reason == "deny.no_tenant"
}

test_identity_without_memberships_is_denied if {
	d := authz.decision with input as {"request": _req, "tenant": {"id": "acme"}, "identity": {"sub": "u1"}}
	not d.allow
	d.reason == "deny.not_a_member"
}
