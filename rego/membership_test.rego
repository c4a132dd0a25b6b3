package portero.membership_test

import data.portero.membership

test_roles_are_those_of_the_request_tenant if {
	roles := membership.roles with input as {
		"tenant": {"id": "acme"},
		"identity": {"memberships": {"acme": ["administrator"], "globex": ["location_manager"]}},
	}
	roles == ["administrator"]
}

test_member_with_no_roles_belongs if {
	membership.belongs with input as {"tenant": {"id": "acme"}, "identity": {"memberships": {"acme": []}}}
}

test_lookalike_tenant_does_not_belong if {
	not membership.belongs with input as {"tenant": {"id": "acme"}, "identity": {"memberships": {"acme-evil": [], "acm": []}}}
}

test_no_claims_no_membership if {
	not membership.belongs with input as {"tenant": {"id": "acme"}, "identity": {"sub": "u"}}
}
