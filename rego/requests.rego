# METADATA
# title: Request classification
# description: |
#   Maps the request (method, path as the tenant's app sees it) to the
#   operation it is: the feature, action, resource and right it needs, using
#   data.portero.definitions.routes. The mapping has a bucket per method
#   (e.g. "POST") and one per method class: "read" (GET, HEAD, OPTIONS) and
#   "edit" (every other method). A method's own bucket is tried first, then
#   its class's. Within a bucket the path's first segment picks a short list
#   of entries {path, segments, subtree, literals, params, feature, action,
#   resource, right, open}; the first entry that fits decides. An entry fits
#   a path of exactly `segments` segments, or of at least that many when
#   `subtree` is true ("reviews/**" covers /reviews and everything below
#   it), whose literal segments (e.g. [[2, "profile"]]) are equal. Entries
#   with `open` and no feature are the app's paths every member may use
#   (home, static assets). A request no entry fits is refused by the
#   default policy (operation.unmapped): default deny.
#
#   One case rule: the mapping is matched case-insensitively (/Reviews and
#   /REVIEWS are the reviews feature, as Express and ASP.NET route them);
#   identifiers taken from the path (location and business ids) compare
#   exactly.
package portero.requests

import data.portero.definitions as defs

# The operation of this request as the gateway worked it out (see
# portero.subject's ops; the gateway memoises entry per method and path), or
# worked out here. {} when the mapping names none.
current := input.operation if {
	input.operation
} else := entry

# The method class: read or edit. A WebSocket handshake is an edit: after
# it the connection carries whatever the app's protocol allows.
class := "edit" if {
	input.request.upgrade
} else := "read" if {
	input.request.method in {"GET", "HEAD", "OPTIONS"}
} else := "edit"

_segs := [lower(s) | some s in input.request.app_segments]

_first := _segs[0] if {
	count(_segs) > 0
} else := ""

# The mapping entry for this request with its id ("<bucket> <path>", the
# key of portero.subject's ops) and its scope: the path indexes of each
# business and location id it names, from the entry's params and from
# every segment that follows a scope segment ("locations/<id>") anywhere
# in the path. Rules read an id as input.request.app_segments[i].
entry := e if {
	not input.request.upgrade
	e := _entry_in(input.request.method)
} else := e if e := _entry_in(class)

_entry_in(bucket) := object.union(e, {"id": concat(" ", [bucket, e.path]), "scope": _scope(e)}) if {
	e := [e | some e in defs.routes[bucket][_first]; _fits(e)][0]
}

_fits(e) if {
	not e.subtree
	count(_segs) == e.segments
	not _literal_differs(e)
}

_fits(e) if {
	e.subtree
	count(_segs) >= e.segments
	not _literal_differs(e)
}

_literal_differs(e) if {
	some [i, literal] in e.literals
	_segs[i] != literal
}

_scope(e) := {kind: indexes |
	some kind in {"business", "location"}
	indexes := _named(e, kind) | _following(kind)
	count(indexes) > 0
}

_named(e, kind) := {i |
	some name, i in object.get(e, "params", {})
	name == kind
	i < count(_segs)
}

_following(kind) := {j |
	some i, s in _segs
	defs.scope_segments[s] == kind
	j := i + 1
	j < count(_segs)
}
