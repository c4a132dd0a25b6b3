# METADATA
# title: Partner delegation
# description: |
#   An accepted, unexpired delegation gives the partner's users the granted
#   products (everything for "full"); features that spend money (billing,
#   plan changes) only with wallet access. Invited, rejected, revoked or
#   expired delegations give nothing.
package portero.delegation

import data.portero.definitions as defs
import data.portero.members
import data.portero.requests

d := input.access.delegation

# Full access acts as an administrator would, limited as an account manager.
role := "administrator" if d.scope == "full"
else := "account_manager"

grants(_) if d.scope == "full"

grants(feature) if {
	d.scope == "limited"
	feature in d.products
}

denials contains "delegation.not_accepted" if {
	members.kind == "partner"
	d.status != "accepted"
}

denials contains "delegation.expired" if {
	members.kind == "partner"
	d.expired
}

denials contains "delegation.product_not_granted" if {
	members.kind == "partner"
	f := requests.entry.feature
	not grants(f)
}

denials contains "delegation.no_wallet" if {
	members.kind == "partner"
	defs.features[requests.entry.feature].wallet
	not d.wallet
}
