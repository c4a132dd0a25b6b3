# METADATA
# title: Features, profiles and per-field rights
# description: |
#   A member's level for a feature ("read" or "edit") comes from their
#   explicit rights, else their profile, else their extra rights, else
#   "edit" for administrators. Owners and partners get "edit" (partners are
#   limited to their products by portero.delegation). Edits limited per
#   field allow only those keys in the JSON body. A feature with a minimum
#   role (user rights: account manager) means nothing below it.
package portero.features

import data.portero.definitions as defs
import data.portero.delegation
import data.portero.members
import data.portero.requests

_m := members.membership

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

# The caller's level per feature, computed once per request.
levels := _all_edit if {
	members.kind in {"owner", "partner"}
} else := levels_of(_m) if {
	members.kind == "member"
} else := {}

# The levels that take effect: a feature whose minimum role the caller's
# role does not reach, or (for partners) one the delegation does not grant
# or that needs wallet access the partner lacks, gives nothing, whatever
# the profile or rights say. This is what X-Portero-Features reports.
effective := {f: level |
	some f, level in levels
	defs.features[f]
	not _blocked(f)
}

_blocked(f) if object.get(defs.roles, members.role, 0) < defs.roles[defs.features[f].min_role]

_blocked(f) if delegation.feature_denial(f)

# A refusal of operation e (a route mapping entry) that depends only on
# the caller: portero.subject works it out once per caller for every entry.
op_denial(e) := "feature.not_granted" if {
	e.feature
	not levels[e.feature]
} else := "feature.read_only" if {
	e.action != "read"
	levels[e.feature] == "read"
} else := "feature.role_too_low" if {
	min := defs.features[e.feature].min_role
	object.get(defs.roles, members.role, 0) < defs.roles[min]
}

# A refusal of a change (any action but read) to a feature the member's
# field rights limit: a method that replaces or deletes the whole resource
# (PUT, DELETE); a body that was not inspected (the route turned body
# inspection off) or is not an object; or a field those rights do not
# list, named in the body or in the query (frameworks merge both). An empty
# body changes nothing.
field_denial := d if {
	requests.current.action != "read"
	allowed := input.access.membership.fields[requests.current.feature]
	d := _field_denial(allowed)
}

_field_denial(allowed) := "field.method_not_allowed" if {
	input.request.method in {"PUT", "DELETE"}
} else := "field.body_unchecked" if {
	not input.request.body
} else := "field.not_allowed" if {
	not is_object(input.request.body)
} else := "field.not_allowed" if {
	some key, _ in input.request.body
	not key in allowed
} else := "field.not_allowed" if {
	some key in input.request.query_keys
	not key in allowed
}
