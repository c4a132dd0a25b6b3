# METADATA
# title: Features, profiles and per-field rights
# description: |
#   A member's level for a feature ("read" or "edit") comes from their
#   explicit rights, else their profile, else "edit" for administrators,
#   else their extra rights (each at its level: licenses views the plan),
#   else what every member has (definitions.member_baseline: their own
#   personal info and help). Owners and partners get "edit" (partners are
#   limited to their products by portero.delegation). Edits limited per
#   field allow only those keys in the JSON body. A feature with a minimum
#   role (user rights: account manager) means nothing below it.
package portero.features

import data.portero.definitions as defs
import data.portero.delegation
import data.portero.requests
import data.portero.subject

# The "full" profile is every feature at "edit".
_all_edit := defs.profiles.full.features

# The level per feature a membership gives (later objects win): what
# every member has (definitions.member_baseline: their own personal info
# and help, so a member without a profile is not locked out of them),
# extra rights (each at its level, edit unless the right says read: the
# licenses right views the plan), the administrator role's default (every
# feature at edit), the profile, then explicit feature rights.
# portero.admin uses it for the membership a manager asks to write.
levels_of(m) := object.union_n([
	object.get(defs, "member_baseline", {}),
	{defs.rights[r].feature: object.get(defs.rights[r], "level", "edit") | some r in object.get(m, "rights", []); defs.rights[r].feature},
	_role_default(object.get(m, "role", "")),
	object.get(defs.profiles, [object.get(m, "profile", ""), "features"], {}),
	object.get(m, "features", {}),
])

_role_default(role) := _all_edit if {
	role == "administrator"
} else := {}

# The level per feature a grant (portero.subject's grant: kind, role,
# membership, delegation) gives.
levels_for(g) := _all_edit if {
	g.kind in {"owner", "partner"}
} else := levels_of(g.membership) if {
	g.kind == "member"
} else := {}

# The caller's level per feature (portero.admin reads it).
levels := levels_for(subject.grant)

# The levels that take effect: a feature whose minimum role the grant's
# role does not reach, or (for partners) one the delegation does not grant
# or that needs wallet access the partner lacks, gives nothing, whatever
# the profile or rights say. This is what X-Portero-Features reports.
# (Built with object.filter and object.remove: a builtin works on the
# whole object at once, where each expression a comprehension evaluates per
# feature costs a few microseconds.)
effective_for(g, lv) := object.remove(object.filter(lv, object.keys(defs.features)), _below_min_role(g, lv) | _not_delegated(g, lv))

# The features of lv whose minimum role is above the grant's role. (Each
# function call, and each lookup in data, costs allocations: data is read
# once, not per feature.)
_below_min_role(g, lv) := {f |
	ranks := defs.roles
	features := defs.features
	rank := object.get(ranks, g.role, 0)
	some f, _ in lv
	rank < ranks[features[f].min_role]
}

_not_delegated(g, lv) := {f |
	some f, _ in lv
	delegation.feature_denial(g, f)
} if {
	g.kind == "partner"
} else := set()

# A refusal of operation e (a route mapping entry) that depends only on
# the caller's grant g, whose levels are granted: portero.subject works it
# out once per grant and entry.
op_denial(g, granted, e) := "feature.not_granted" if {
	e.feature
	not granted[e.feature]
} else := "feature.read_only" if {
	e.action != "read"
	granted[e.feature] == "read"
} else := "feature.role_too_low" if {
	min := defs.features[e.feature].min_role
	object.get(defs.roles, g.role, 0) < defs.roles[min]
}

# A refusal of a change (any action but read) to a feature the member's
# field rights limit: a method that replaces or deletes the whole resource
# (PUT, DELETE); a body that was not inspected (the route turned body
# inspection off) or is not an object; or a field those rights do not
# list, named in the body or in the query (frameworks merge both). An empty
# body changes nothing. It reads the body's shape (input.request.body_kind
# and body_keys, which the gateway gives beside every body it inspected),
# not the body: the shape repeats across requests, so the gateway answers
# repeated edits from its decision cache.
field_denial := d if {
	requests.current.action != "read"
	allowed := input.access.membership.fields[requests.current.feature]
	d := _field_denial(allowed)
}

_field_denial(allowed) := "field.method_not_allowed" if {
	input.request.method in {"PUT", "DELETE"}
} else := "field.body_unchecked" if {
	not input.request.body_kind
} else := "field.not_allowed" if {
	input.request.body_kind != "object"
} else := "field.not_allowed" if {
	some key in input.request.body_keys
	not key in allowed
} else := "field.not_allowed" if {
	some key in input.request.query_keys
	not key in allowed
}
