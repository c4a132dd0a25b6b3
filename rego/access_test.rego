package portero.access_test

import data.portero.authz
import data.portero.requests
import data.portero.subject

# A tenant, its members and a partner, as the gateway puts them in input.access.
_tenant := {"id": "acme", "name": "Acme", "status": "active", "owner": "olivia", "master_access": true}

_members := {
	"adam": {"role": "administrator", "businesses": [], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "", "status": "active"},
	"mia": {"role": "multi_account_manager", "businesses": ["b1", "b2"], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "full", "status": "active"},
	"ann": {"role": "account_manager", "businesses": ["b1"], "locations": [], "features": {"reviews": "read"}, "fields": {}, "rights": ["user_management"], "profile": "services", "status": "active"},
	"leo": {"role": "location_manager", "businesses": [], "locations": ["l1"], "features": {"profile_listings": "edit", "reviews": "read", "user_rights": "edit"}, "fields": {"profile_listings": ["phone", "hours"]}, "rights": [], "profile": "", "status": "active"},
	"avery": {"role": "account_manager", "businesses": ["b1"], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "accounting", "status": "active"},
	"gone": {"role": "administrator", "businesses": [], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "", "status": "deactivated"},
}

_delegation(scope, products, wallet, status, expired) := {
	"id": "dlg_1", "partner": "partnerco", "scope": scope, "products": products,
	"wallet": wallet, "status": status, "expired": expired,
}

_access(user) := {"tenant": _tenant, "membership": _members[user]} if {
	_members[user]
} else := {"tenant": _tenant}

_input(user, method, segments, body) := {
	"request": request(method, segments, body),
	"tenant": {"id": "acme", "status": "active"},
	"identity": {"sub": user},
	"access": _access(user),
}

# The request as the gateway gives it: the body, and beside it its shape
# (body_kind, body_keys), which is what the per-field check reads.
# requests_test uses it too.
request(method, segments, body) := object.union(
	{"method": method, "app_segments": segments, "body": body, "body_kind": type_name(body)},
	_body_keys(body),
)

_body_keys(body) := {"body_keys": sort([k | some k, _ in body])} if {
	is_object(body)
} else := {}

_partner_input(d, method, segments) := {
	"request": {"method": method, "app_segments": segments},
	"tenant": {"id": "acme", "status": "active"},
	"identity": {"sub": "pat"},
	"access": {"tenant": _tenant, "partner": "partnerco", "delegation": d},
}

_partner(dl, method, segments) := d if {
	d := authz.decision with input as _partner_input(dl, method, segments)
}

_decide(user, method, segments) := d if {
	d := authz.decision with input as _input(user, method, segments, {})
}

_reason(user, method, segments) := d.reason if {
	d := _decide(user, method, segments)
	not d.allow
}

# --- tenants ---

test_unknown_tenant_is_404 if {
	d := authz.decision with input as {"identity": {"sub": "adam"}, "tenant": {"id": "nope"}, "access": {}, "request": {"method": "GET", "app_segments": []}}
	d.status == 404
	d.reason == "tenant.unknown"
}

test_suspended_tenant_is_refused if {
	i := json.patch(_input("adam", "GET", [], {}), [{"op": "replace", "path": "/access/tenant/status", "value": "suspended"}])
	d := authz.decision with input as i
	d.reason == "tenant.suspended"
}

# --- members and deactivation ---

test_owner_is_administrator_without_a_membership if {
	d := _decide("olivia", "PUT", ["api-key"])
	d.allow
	d.headers["X-Portero-Role"] == "administrator"
	d.reason == "owner.administrator"
}

test_stranger_is_refused if _reason("eve", "GET", []) == "member.none"

test_deactivated_member_is_refused if _reason("gone", "GET", []) == "member.deactivated"

test_paths_the_mapping_does_not_name_are_refused if {
	_reason("leo", "GET", ["dashboard"]) == "operation.unmapped"
	_reason("olivia", "GET", ["dashboard"]) == "operation.unmapped"
}

test_open_paths_are_open_to_members if {
	_decide("leo", "GET", []).allow
	_decide("avery", "GET", ["static", "app.css"]).allow
	_reason("eve", "GET", ["static", "app.css"]) == "member.none"
}

# --- roles on businesses, locations, settings, API key ---

test_administrator_may_create_businesses if _decide("adam", "POST", ["businesses"]).allow

test_multi_account_manager_may_create_businesses if _decide("mia", "POST", ["businesses"]).allow

test_account_manager_may_not_create_businesses if _reason("ann", "POST", ["businesses"]) == "role.action_not_allowed"

test_account_manager_may_create_locations if {
	d := authz.decision with input as json.patch(_input("ann", "POST", ["locations"], {}), [{"op": "add", "path": "/access/membership/features/profile_listings", "value": "edit"}])
	d.allow
}

test_location_manager_may_not_create_locations if _reason("leo", "POST", ["locations"]) == "role.action_not_allowed"

test_location_manager_only_its_locations if {
	_decide("leo", "GET", ["locations", "l1", "profile"]).allow
	_reason("leo", "GET", ["locations", "l2", "profile"]) == "scope.location"
}

test_account_manager_only_its_businesses if {
	d := _decide("ann", "GET", ["businesses", "b1"])
	d.allow
	d.headers["X-Portero-Scope"] == "businesses:b1"
	_reason("ann", "GET", ["businesses", "b9"]) == "scope.business"
}

test_settings_and_api_key if {
	_decide("ann", "GET", ["settings"]).allow
	_reason("ann", "PATCH", ["settings"]) == "role.action_not_allowed"
	_decide("adam", "PATCH", ["settings"]).allow
	_reason("mia", "PUT", ["api-key"]) == "role.action_not_allowed"
	_decide("adam", "PUT", ["api-key"]).allow
}

# --- features: read vs edit, profiles, rights, minimum role ---

test_read_right_reads_but_does_not_edit if {
	_decide("leo", "GET", ["reviews"]).allow
	_reason("leo", "POST", ["reviews", "r1", "reply"]) == "feature.read_only"
}

test_explicit_right_beats_the_profile if {
	# ann's profile (services) gives reviews:edit, her explicit right says read.
	_reason("ann", "POST", ["reviews", "r1", "reply"]) == "feature.read_only"
	_decide("ann", "PUT", ["reply-library"]).allow
}

test_feature_not_granted if _reason("leo", "GET", ["ads"]) == "feature.not_granted"

test_accounting_profile_reaches_billing_only if {
	_decide("avery", "GET", ["billing"]).allow
	_decide("avery", "POST", ["billing", "payments"]).allow
	_reason("avery", "GET", ["reviews"]) == "feature.not_granted"
	_reason("avery", "GET", ["ads"]) == "feature.not_granted"
	_reason("avery", "PATCH", ["plan"]) == "feature.read_only"
}

test_user_rights_mean_nothing_below_account_manager if {
	_reason("leo", "GET", ["users"]) == "feature.role_too_low"
	_decide("ann", "POST", ["users"]).allow # the user_management right
}

test_administrator_has_every_feature if {
	d := _decide("adam", "POST", ["ads"])
	d.allow
	json.unmarshal(d.headers["X-Portero-Features"]).billing == "edit"
}

test_catalog_needs_the_catalog_admin_right if {
	_reason("ann", "PATCH", ["catalog"]) == "right.missing"
	i := json.patch(_input("ann", "PATCH", ["catalog"], {}), [{"op": "replace", "path": "/access/membership/rights", "value": ["catalog_admin"]}])
	d := authz.decision with input as i
	d.allow
}

# --- per-field edit rights, checked against the JSON body ---

test_allowed_fields_may_be_edited if {
	d := authz.decision with input as _input("leo", "PATCH", ["locations", "l1", "profile"], {"phone": "+1 555", "hours": "9-5"})
	d.allow
}

test_other_fields_are_refused if {
	d := authz.decision with input as _input("leo", "PATCH", ["locations", "l1", "profile"], {"phone": "+1 555", "name": "Evil"})
	d.reason == "field.not_allowed"
}

test_another_location_is_refused_even_with_allowed_fields if {
	d := authz.decision with input as _input("leo", "PATCH", ["locations", "l2", "profile"], {"phone": "+1"})
	d.reason == "scope.location"
}

test_no_field_limit_means_every_field if {
	d := authz.decision with input as _input("adam", "PATCH", ["locations", "l9", "profile"], {"name": "New"})
	d.allow
}

# --- delegation ---

test_accepted_limited_delegation_reaches_its_products_only if {
	dl := _delegation("limited", ["reviews"], false, "accepted", false)
	d := authz.decision with input as _partner_input(dl, "GET", ["reviews"])
	d.allow
	d.headers["X-Portero-Partner"] == "partnerco"
	d.reason == "partner.account_manager"
	r := authz.decision with input as _partner_input(dl, "GET", ["ads"])
	r.reason == "delegation.product_not_granted"
}

test_full_delegation_reaches_everything_but_the_wallet if {
	dl := _delegation("full", [], false, "accepted", false)
	_partner(dl, "POST", ["ads"]).allow
	_partner(dl, "POST", ["businesses"]).allow
	_partner(dl, "GET", ["billing"]).reason == "delegation.no_wallet"
	wallet := _delegation("full", [], true, "accepted", false)
	_partner(wallet, "GET", ["billing"]).allow
}

test_limited_delegation_with_wallet_reaches_billing if {
	dl := _delegation("limited", ["billing"], true, "accepted", false)
	_partner(dl, "GET", ["billing"]).allow
}

test_unaccepted_delegations_give_nothing if {
	every status in ["invited", "rejected", "revoked"] {
		d := authz.decision with input as _partner_input(_delegation("full", [], true, status, false), "GET", ["reviews"])
		d.reason == "delegation.not_accepted"
	}
}

test_expired_delegation_gives_nothing if {
	d := authz.decision with input as _partner_input(_delegation("full", [], true, "accepted", true), "GET", [])
	d.reason == "delegation.expired"
}

# --- the gateway's stages ---

# The gateway passes subject.facts (worked out once per caller),
# subject.grant_facts (once per grant, from the facts' grant alone),
# requests.entry (once per path) and subject.operation_denial (once per
# grant and entry, from the grant, its facts and the entry alone) as
# input.subject, input.grant_facts, input.operation and
# input.operation_denial; the decision must be the one the policy reaches
# on its own.
_staged(inp) := object.union(inp, {
	"subject": s, "grant": s.grant, "grant_facts": gf,
	"operation": op, "operation_denial": od,
}) if {
	s := subject.facts with input as inp
	gf := subject.grant_facts with input as {"grant": s.grant}
	op := requests.entry with input as inp
	od := subject.operation_denial with input as {"grant": s.grant, "grant_facts": gf, "operation": op}
}

test_stages_from_the_gateway_give_the_same_decision if {
	every user, body in {"leo": {"phone": "1"}, "ann": {"name": "x"}, "gone": {}, "zoe": {}, "olivia": {"name": "x"}} {
		every segments in [["locations", "l1", "profile"], ["reviews"], ["billing"], ["users"]] {
			inp := _input(user, "PATCH", segments, body)
			d := authz.decision with input as _staged(inp)
			d == authz.decision with input as inp
		}
	}
	every d in [
		_delegation("limited", ["reviews"], false, "accepted", false),
		_delegation("full", [], true, "accepted", false),
		_delegation("limited", ["billing"], false, "accepted", false),
	] {
		every segments in [["reviews"], ["billing"], ["ads"], ["locations", "l1"]] {
			inp := _partner_input(d, "GET", segments)
			staged := authz.decision with input as _staged(inp)
			staged == authz.decision with input as inp
		}
	}
	_decide("leo", "PATCH", ["locations", "l1", "profile"]).allow # an allowed case among them
	not _decide("zoe", "PATCH", ["locations", "l1", "profile"]).allow
}

# A literal segment of a mapping entry must match: with an entry for
# locations/*/profile only, locations/l1/photos maps to no entry and is
# refused.
test_literal_segments_must_match if {
	routes := {"read": {"locations": [{"path": "locations/*/profile", "segments": 3, "literals": [[2, "profile"]], "params": {"location": 1}, "feature": "profile_listings", "action": "read", "resource": "location"}]}}
	not requests.entry with input as _input("leo", "GET", ["locations", "l1", "photos"], {})
		with data.portero.definitions.routes as routes
	requests.entry.feature == "profile_listings" with input as _input("leo", "GET", ["locations", "l1", "profile"], {})
		with data.portero.definitions.routes as routes
	_reason("leo", "GET", ["locations", "l1", "photos"]) == "operation.unmapped" with data.portero.definitions.routes as routes
}

# --- issue #15: what every member has, the licenses right, the union ---

_allows(i) if {
	d := authz.decision with input as i
	d.allow
}

# A member with no profile and no feature rights still reaches their own
# personal info (edit) and help (read), and nothing else.
test_member_without_profile_reaches_personal_info_and_help if {
	i := json.patch(_input("nina", "GET", ["me"], {}), [{"op": "add", "path": "/access/membership", "value": {"role": "location_manager", "businesses": [], "locations": [], "features": {}, "fields": {}, "rights": [], "profile": "", "status": "active"}}])
	_allows(i)
	_allows(json.patch(i, [{"op": "replace", "path": "/request/method", "value": "POST"}]))
	_allows(json.patch(i, [{"op": "replace", "path": "/request/app_segments", "value": ["help"]}]))
	help_post := authz.decision with input as json.patch(i, [
		{"op": "replace", "path": "/request/app_segments", "value": ["help"]},
		{"op": "replace", "path": "/request/method", "value": "POST"},
	])
	help_post.reason == "feature.read_only"
	reviews := authz.decision with input as json.patch(i, [{"op": "replace", "path": "/request/app_segments", "value": ["reviews"]}])
	reviews.reason == "feature.not_granted"
}

# The licenses right views the plan; it does not change it.
test_licenses_right_views_licences_read_only if {
	lic := {"role": "account_manager", "businesses": [], "locations": [], "features": {}, "fields": {}, "rights": ["licenses"], "profile": "", "status": "active"}
	i := json.patch(_input("lina", "GET", ["plan"], {}), [{"op": "add", "path": "/access/membership", "value": lic}])
	_allows(i)
	d := authz.decision with input as json.patch(i, [{"op": "replace", "path": "/request/method", "value": "POST"}])
	d.reason == "feature.read_only"

	# An administrator with the right still changes the plan (the role gives edit).
	admin := json.patch(i, [
		{"op": "replace", "path": "/access/membership/role", "value": "administrator"},
		{"op": "replace", "path": "/request/method", "value": "POST"},
	])
	_allows(admin)
}

# A member who is also a user of an accepted partner gets the union: the
# membership's (leo: location l1, profile_listings only) and the
# delegation's (reviews and billing organisation-wide, no wallet).
_both(user, dl, method, segments) := d if {
	i := json.patch(_input(user, method, segments, {}), [
		{"op": "add", "path": "/access/partner", "value": "partnerco"},
		{"op": "add", "path": "/access/delegation", "value": dl},
	])
	d := authz.decision with input as i
}

test_member_and_partner_get_the_union if {
	accepted := _delegation("limited", ["reviews", "ads"], false, "accepted", false)

	# The membership alone: location l1's profile, not ads, not location l2.
	_reason("leo", "GET", ["ads"]) == "feature.not_granted"
	_reason("leo", "GET", ["locations", "l2"]) == "scope.location"

	# With the delegation: ads (the partner's product) too, as the partner.
	ads := _both("leo", accepted, "POST", ["ads"])
	ads.allow
	ads.reason == "partner.account_manager"
	ads.headers["X-Portero-Partner"] == "partnerco"

	# The membership still decides what it allows, with its own headers.
	own := _both("leo", accepted, "PATCH", ["locations", "l1", "profile"])
	own.allow
	own.reason == "member.location_manager"

	# What neither allows stays refused, with the membership's reason.
	none := _both("leo", accepted, "GET", ["billing"])
	not none.allow
	none.reason == "feature.not_granted"
}

test_union_needs_an_accepted_unexpired_delegation if {
	_both("leo", _delegation("limited", ["ads"], false, "invited", false), "GET", ["ads"]).reason == "feature.not_granted"
	_both("leo", _delegation("limited", ["ads"], false, "accepted", true), "GET", ["ads"]).reason == "feature.not_granted"
	_both("leo", _delegation("limited", ["ads"], false, "expired", false), "GET", ["ads"]).reason == "feature.not_granted"
	_both("leo", _delegation("full", [], false, "accepted", false), "GET", ["locations", "l2"]).allow
}

# A deactivated member who is also the partner's user keeps the partner's
# access (the tenant revokes the delegation to end it); a deactivated
# member who is not stays refused.
test_deactivated_member_keeps_the_partners_access_only if {
	_both("gone", _delegation("limited", ["reviews"], false, "accepted", false), "GET", ["reviews"]).allow
	_both("gone", _delegation("limited", ["reviews"], false, "accepted", false), "GET", ["ads"]).reason == "member.deactivated"
}

# An invitation or partnership stored as expired gives nothing.
test_stored_expired_delegation_gives_nothing if {
	_partner(_delegation("full", [], true, "expired", false), "GET", ["reviews"]).reason == "delegation.expired"
}

# With store facts, the token's claims never decide: a stranger to the
# store whom the token calls the tenant's administrator is refused, and so
# is a request whose store-backed decision comes out undefined (here a
# hand-written subject without headers): _with_store's default answers,
# not the claims rules after it.
test_store_facts_are_never_decided_from_claims if {
	claimed := {"sub": "stranger", "memberships": {"acme": ["administrator"]}}
	d := authz.decision with input as object.union(_input("stranger", "GET", ["reviews"], null), {"identity": claimed})
	not d.allow
	d.reason == "member.none"

	e := authz.decision with input as object.union(_input("stranger", "GET", ["reviews"], null), {
		"identity": claimed,
		"subject": {"kind": "member", "role": "administrator", "denial": "", "reason": "member.administrator"},
		"operation": {"id": "read reviews"},
		"operation_denial": "",
	})
	not e.allow
	e.reason == "deny.default"
}
