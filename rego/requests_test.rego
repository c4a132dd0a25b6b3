package portero.requests_test

import data.portero.access_test
import data.portero.authz
import data.portero.requests

_tenant := {"id": "acme", "status": "active", "owner": "olivia", "master_access": true}

_leo := {"role": "location_manager", "businesses": [], "locations": ["l1"], "features": {"profile_listings": "edit", "reviews": "read", "user_rights": "edit"}, "fields": {"profile_listings": ["phone", "hours"]}, "rights": [], "profile": "", "status": "active"}

_ann := {"role": "account_manager", "businesses": ["b1"], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "services", "status": "active"}

_avery := {"role": "account_manager", "businesses": ["b1"], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "accounting", "status": "active"}

_in(member, method, segments, body) := {
	"request": access_test.request(method, segments, body),
	"tenant": {"id": "acme", "status": "active"},
	"identity": {"sub": "u"},
	"access": {"tenant": _tenant, "membership": member},
}

_no_body(member, method, segments) := {
	"request": {"method": method, "app_segments": segments},
	"tenant": {"id": "acme", "status": "active"},
	"identity": {"sub": "u"},
	"access": {"tenant": _tenant, "membership": member},
}

_decide(member, method, segments, body) := d if {
	d := authz.decision with input as _in(member, method, segments, body)
}

_op(method, segments) := op if {
	op := requests.entry with input as {"request": {"method": method, "app_segments": segments}}
}

# --- method classes ---

test_read_methods_share_one_class if {
	every m in ["GET", "HEAD", "OPTIONS"] {
		_op(m, ["reviews"]).id == "read reviews/**"
	}
}

test_edit_methods_share_one_class if {
	every m in ["PUT", "PATCH", "POST", "DELETE", "PROPFIND"] {
		_op(m, ["reviews", "r1", "reply"]).action == "edit"
	}
}

test_a_methods_own_entry_comes_before_its_class if {
	_op("POST", ["locations"]).action == "create"
	_op("DELETE", ["locations", "l1"]).action == "delete"
	_op("PUT", ["locations", "l1"]).action == "edit"
	_op("DELETE", ["locations", "l1", "photos", "p1"]).action == "edit"
}

# --- subtrees ---

test_a_subtree_covers_every_path_below_it if {
	every p in [["reviews"], ["reviews", "r1"], ["reviews", "r1", "reply"], ["reviews", "r1", "a", "b", "c"]] {
		_op("GET", p).feature == "reviews"
	}
}

test_a_subtree_needs_its_own_segments if {
	not _op("PATCH", ["locations"]) # locations/*/** needs an id
	not _op("PUT", []) # edits of the home page are not mapped
}

# --- default deny ---

test_unmapped_operations_are_refused_for_everyone if {
	every m in [_leo, _ann, _avery] {
		_decide(m, "GET", ["orders"], {}).reason == "operation.unmapped"
		_decide(m, "DELETE", ["static", "app.css"], {}).reason == "operation.unmapped"
	}
}

test_unmapped_operations_are_refused_under_master_access if {
	i := object.union(_in(_leo, "GET", ["orders"], {}), {
		"identity": {"sub": "root", "groups": ["system-admins"], "session": "s1"},
		"access": {"tenant": _tenant, "master": {"id": "m1", "admin": "root", "session": "s1", "mode": "full", "reason": "r", "expires": "x"}},
	})
	d := authz.decision with input as i
	d.reason == "operation.unmapped"
	authz.decision.allow with input as json.patch(i, [{"op": "replace", "path": "/request/app_segments", "value": ["reviews"]}])
}

# The accountant (billing only) cannot touch reviews by any method, nor a
# location manager another location through any sub-path.
test_every_url_of_a_feature_is_covered if {
	every m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
		_decide(_avery, m, ["reviews", "r1"], {}).reason == "feature.not_granted"
	}
	_decide(_leo, "POST", ["locations", "l9", "status"], {}).reason == "scope.location"
	_decide(_leo, "PUT", ["locations", "l9", "profile"], {"phone": "1"}).reason == "scope.location"
}

# --- one case rule ---

test_the_mapping_is_matched_case_insensitively if {
	_op("GET", ["Reviews"]).feature == "reviews"
	_op("GET", ["REVIEWS", "R1"]).feature == "reviews"
	_decide(_avery, "GET", ["REVIEWS"], {}).reason == "feature.not_granted"
}

test_ids_compare_exactly if _decide(_leo, "GET", ["locations", "L1"], {}).reason == "scope.location"

# --- scope anywhere in the path ---

test_a_scope_segment_anywhere_is_checked if {
	_decide(_leo, "GET", ["reviews", "locations", "l9"], {}).reason == "scope.location"
	_decide(_leo, "GET", ["reviews", "locations", "l1"], {}).allow
	op := _op("GET", ["reviews", "locations", "l9", "x"])
	op.scope.location == {2}
	_decide(_ann, "GET", ["reviews", "businesses", "b9"], {}).reason == "scope.business"
	_decide(_ann, "GET", ["reviews", "businesses", "b1"], {}).allow
}

# --- fields ---

test_fields_are_checked_for_every_edit_method if {
	every m in ["PATCH", "POST"] {
		_decide(_leo, m, ["locations", "l1", "profile"], {"name": "x"}).reason == "field.not_allowed"
		_decide(_leo, m, ["locations", "l1", "profile"], {"phone": "x"}).allow
	}
}

# PUT replaces and DELETE removes the whole resource: neither is a change
# of some fields only.
test_field_limited_members_may_not_replace_or_delete if {
	every m in ["PUT", "DELETE"] {
		_decide(_leo, m, ["locations", "l1", "profile"], {"phone": "x"}).reason == "field.method_not_allowed"
	}
}

# Rails params and Laravel input merge the query with the body.
test_query_fields_are_checked_on_edits if {
	i := object.union(_in(_leo, "PATCH", ["locations", "l1", "profile"], {"phone": "1"}), {"request": {"query_keys": ["name"]}})
	d := authz.decision with input as i
	d.reason == "field.not_allowed"
	ok := object.union(_in(_leo, "PATCH", ["locations", "l1", "profile"], {}), {"request": {"query_keys": ["hours"]}})
	authz.decision.allow with input as ok
}

test_an_uninspected_body_is_refused_where_fields_are_limited if {
	d := authz.decision with input as _no_body(_leo, "PATCH", ["locations", "l1", "profile"])
	d.reason == "field.body_unchecked"
	_decide(_leo, "PATCH", ["locations", "l1", "profile"], {}).allow # an empty body changes nothing
}

test_a_body_that_is_not_an_object_is_refused_where_fields_are_limited if {
	_decide(_leo, "PATCH", ["locations", "l1", "profile"], ["name"]).reason == "field.not_allowed"
	_decide(_leo, "PATCH", ["locations", "l1", "profile"], "name").reason == "field.not_allowed"
}

# --- truthful headers ---

test_features_header_is_the_effective_level if {
	d := _decide(_leo, "GET", ["locations", "l1"], {})
	levels := json.unmarshal(d.headers["X-Portero-Features"])
	levels.profile_listings == "edit"
	not levels.user_rights # below its minimum role
}

test_partner_features_header_is_limited_to_the_delegation if {
	i := {
		"request": {"method": "GET", "app_segments": ["reviews"]},
		"tenant": {"id": "acme", "status": "active"},
		"identity": {"sub": "pat"},
		"access": {"tenant": _tenant, "partner": "partnerco", "delegation": {"scope": "limited", "products": ["reviews", "billing"], "wallet": false, "status": "accepted", "expired": false}},
	}
	d := authz.decision with input as i
	d.allow
	json.unmarshal(d.headers["X-Portero-Features"]) == {"reviews": "edit"}
}

# --- hostile-sweep classes ---

_pat(scope, products, method, segments) := d if {
	i := {
		"request": {"method": method, "app_segments": segments},
		"tenant": {"id": "acme", "status": "active"},
		"identity": {"sub": "pat"},
		"access": {"tenant": _tenant, "partner": "partnerco", "delegation": {"scope": scope, "products": products, "wallet": false, "status": "accepted", "expired": false}},
	}
	d := authz.decision with input as i
}

test_a_limited_partner_has_only_its_products_and_open_pages if {
	_pat("limited", ["reviews"], "PUT", ["catalog", "items", "1"]).reason == "delegation.product_not_granted"
	_pat("limited", ["reviews"], "GET", ["catalog"]).reason == "delegation.product_not_granted"
	_pat("limited", ["reviews"], "PATCH", ["businesses", "b1"]).reason == "delegation.product_not_granted"
	_pat("limited", ["reviews"], "GET", ["settings"]).reason == "delegation.product_not_granted"
	_pat("limited", ["reviews"], "GET", ["reviews", "r1"]).allow
	_pat("limited", ["reviews"], "GET", []).allow
	_pat("full", [], "GET", ["settings"]).allow
}

test_business_scoped_managers_reach_only_assigned_locations if {
	amy := object.union(_ann, {"locations": ["l1"], "features": {"profile_listings": "edit"}})
	_decide(amy, "PATCH", ["locations", "l9", "profile"], {"phone": "1"}).reason == "scope.location"
	_decide(amy, "PATCH", ["locations", "l1", "profile"], {"phone": "1"}).allow
}

_upgrade(member, segments) := d if {
	i := json.patch(_in(member, "GET", segments, {}), [{"op": "add", "path": "/request/upgrade", "value": true}])
	d := authz.decision with input as i
}

test_a_websocket_handshake_is_an_edit if {
	_upgrade(_leo, ["reviews"]).reason == "feature.read_only" # leo's reviews are read
	_decide(_leo, "GET", ["reviews"], {}).allow
	_upgrade(_leo, ["locations", "l1"]).allow # profile_listings at edit
}

test_read_only_master_access_refuses_websockets if {
	i := object.union(_in(_leo, "GET", ["reviews"], {}), {
		"identity": {"sub": "root", "groups": ["system-admins"], "session": "s1"},
		"access": {"tenant": _tenant, "master": {"id": "m1", "admin": "root", "session": "s1", "mode": "read_only", "reason": "r", "expires": "x"}},
	})
	authz.decision.allow with input as i
	d := authz.decision with input as json.patch(i, [{"op": "add", "path": "/request/upgrade", "value": true}])
	d.reason == "master.read_only"
}
