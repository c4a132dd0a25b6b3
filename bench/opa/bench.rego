# The do-it-yourself stacks' entry point: what Portero does in Go (verify the
# bearer token, index roles by tenant, find the tenant in the path), done in
# Rego, then the same default policy (data.portero.authz) decides.
package portero.bench

import data.portero.authz

_token := t if {
	[scheme, t] := split(input.authorization, " ")
	lower(scheme) == "bearer"
}

_claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(_token, {"cert": data.bench.jwks, "iss": data.bench.issuer, "aud": "portero"})
	valid
}

_memberships := {tenant: sort([role |
	some c in _claims.roles
	[t, role] := split(c, ":")
	t == tenant
]) |
	some claim in _claims.roles
	[tenant, _] := split(claim, ":")
}

_segments := [s | some s in split(trim_left(split(input.path, "?")[0], "/"), "/"); s != ""]

_tenant := _segments[1] if _segments[0] == "t"

_input := {
	"request": {"method": input.method, "host": input.host, "path": input.path, "segments": _segments, "headers": {}},
	"route": {"name": "bench", "api": true},
	"tenant": {"id": _tenant, "status": "active"},
	"identity": {"sub": _claims.sub, "memberships": _memberships, "auth": "bearer"},
}

decision := d if {
	d := authz.decision with input as _input
}

default allow := false

allow if decision.allow
