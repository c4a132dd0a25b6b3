# METADATA
# title: Master access
# description: |
#   A system admin (a group in data.portero.definitions.system_admin_groups)
#   enters a tenant's app as the tenant's owner, for support, with a reason
#   and a time limit. Who may start it is decided here (management action
#   "master.start"); so is every request made under it: input.access.master
#   is the admin's open session for the request's tenant, bound to the
#   sign-in session that started it. In "read_only" mode only safe methods
#   pass. The tenant's app receives impersonation headers in the configured
#   profile (input.gateway.header_profile) and an assertion whose sub is the
#   owner and whose act names the admin.
package portero.master

import data.portero.admin
import data.portero.definitions as defs
import data.portero.requests

m := input.access.master

# Why the admin may not enter the tenant in input.access; undefined when
# they may. Checked when a session starts and on every request under it,
# so removing the admin from the group or the tenant's consent ends it.
refusal := "master.not_system_admin" if {
	not admin.is_system_admin
} else := "master.unknown_tenant" if {
	not input.access.tenant
} else := "master.forbidden_by_tenant" if {
	not input.access.tenant.master_access
} else := "master.tenant_not_active" if {
	input.access.tenant.status != "active"
}

may_start if not refusal

# The request is made under the admin's master-access session: the one
# bound to this sign-in session. From any other session (a bearer token,
# another browser) the admin's own access applies, unchanged.
applies if {
	input.access.master.id
	input.access.master.session != ""
	input.access.master.session == input.identity.session
}

_safe_methods := {"GET", "HEAD", "OPTIONS"}

# A safe request: a safe method, and not a WebSocket handshake (the socket
# could carry writes).
_safe if {
	input.request.method in _safe_methods
	not input.request.upgrade
}

decision := {"allow": false, "status": 403, "reason": "master.expired"} if {
	m.expired
} else := {"allow": false, "status": 403, "reason": r} if {
	r := refusal
} else := {"allow": false, "status": 403, "reason": "operation.unmapped"} if {
	not requests.current.id
} else := {"allow": false, "status": 403, "reason": "master.read_only"} if {
	m.mode == "read_only"
	not _safe
} else := {
	"allow": true,
	"status": 200,
	"reason": concat(".", ["master", m.mode]),
	"headers": headers,
	"assertion": {"sub": _owner, "act": m.admin, "roles": ["administrator"]},
}

_owner := input.access.tenant.owner if {
	input.access.tenant.owner != ""
} else := concat(":", ["tenant-owner", input.tenant.id])

# Impersonation headers, in the configured profile.
headers := _kubernetes_headers if {
	input.gateway.header_profile == "kubernetes"
} else := _portero_headers

_portero_headers := {
	"X-Portero-User": _owner,
	"X-Portero-Tenant": input.tenant.id,
	"X-Portero-Role": "administrator",
	"X-Portero-Roles": "administrator",
	"X-Portero-Scope": "organisation",
	"X-Portero-Features": json.marshal(defs.profiles.full.features),
	"X-Portero-Impersonator": m.admin,
	"X-Portero-Impersonation-Reason": m.reason,
	"X-Portero-Impersonation-Expires": m.expires,
	"X-Portero-Impersonation-Id": m.id,
	"X-Portero-Impersonation-Mode": m.mode,
}

# Kubernetes-style: the user, repeated groups, and extras whose keys are
# lower-case and percent-encoded (they are plain words here).
_kubernetes_headers := {
	"Impersonate-User": _owner,
	"Impersonate-Group": [concat(":", ["portero:tenant", input.tenant.id]), "portero:role:administrator"],
	"Impersonate-Extra-Tenant": input.tenant.id,
	"Impersonate-Extra-Impersonator": m.admin,
	"Impersonate-Extra-Reason": m.reason,
	"Impersonate-Extra-Expires": m.expires,
	"Impersonate-Extra-Impersonation-Id": m.id,
	"Impersonate-Extra-Mode": m.mode,
}
