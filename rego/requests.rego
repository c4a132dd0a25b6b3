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

# The operation of this request as the gateway worked it out (see
# portero.subject's ops; the gateway memoises entry per method and path), or
# worked out here.
current := input.operation if input.operation
else := entry

# The mapping entry for this request, {id, feature, action, resource, right,
# params}, id being "<method> <path>": the first entry of the bucket that has as many segments as the
# request and whose literal segments after the first (e.g. [[2, "profile"]])
# are equal; the first segment already chose the bucket. Rules read a path
# parameter as input.request.app_segments[current.params.location].
entry := [object.union(e, {"id": concat(" ", [input.request.method, e.path])}) |
	some e in defs.routes[input.request.method][input.request.app_segments[0]]
	e.segments == count(input.request.app_segments)
	not _literal_differs(e)
][0]

_literal_differs(e) if {
	some [i, literal] in e.literals
	input.request.app_segments[i] != literal
}
