# METADATA
# title: Tenant membership from token claims
# description: |
#   Until the access store exists, membership comes from the identity's
#   claims. The gateway indexes them once per token into
#   input.identity.memberships: tenant id -> sorted roles in that tenant,
#   from a "tenants" claim (tenant ids) and role claims written as
#   "<tenant>:<role>" (e.g. "acme:administrator"). Lookups are by key.
package portero.membership

# The caller's roles in the request's tenant; undefined when not a member.
roles := input.identity.memberships[input.tenant.id]

belongs if roles
