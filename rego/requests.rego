# METADATA
# title: Request classification
# description: |
#   Maps the request (method, path as the tenant's app sees it) to the
#   feature, action and resource it touches, using
#   data.portero.definitions.routes: method -> first path segment -> a short
#   list of entries {path: "locations/*/profile", segments: 3, literals:
#   [[2, "profile"]], params: {"location": 1}, feature, action, resource,
#   right}. Only that short list is tried; "path" documents the entry. Paths the mapping does not name are general app access.
package portero.requests

import data.portero.definitions as defs

segments := input.request.app_segments

# An entry matches when it has as many segments as the request and its
# literal segments after the first (e.g. [[2, "profile"]]) are equal; the
# first segment already chose the bucket.
_matching := [e |
	some e in defs.routes[input.request.method][segments[0]]
	e.segments == count(segments)
	not _literal_differs(e)
]

_literal_differs(e) if {
	some [i, literal] in e.literals
	segments[i] != literal
}

# The mapping entry for this request: {feature, action, resource, right}.
entry := _matching[0]

# Path parameters of the matched entry, e.g. {"location": "l1"}.
params[name] := segments[i] if some name, i in entry.params

# An edit, create or delete needs the feature at "edit"; a read, "read" or "edit".
writes if entry.action != "read"
