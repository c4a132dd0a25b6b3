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
import data.portero.subject

d := input.access.delegation

# Full access acts as an administrator would, limited as an account manager.
role := "administrator" if {
	d.scope == "full"
} else := "account_manager"

# Whether delegation dg (its scope and products) grants a feature.
grants(dg, _) if dg.scope == "full"

grants(dg, feature) if {
	dg.scope == "limited"
	feature in dg.products
}

# A refusal that holds for every request of this partner user.
standing_denial := "delegation.expired" if {
	members.kind == "partner"
	d.expired
} else := "delegation.expired" if {
	members.kind == "partner"
	d.status == "expired"
} else := "delegation.not_accepted" if {
	members.kind == "partner"
	d.status != "accepted"
}

# A refusal of operation e (a route mapping entry) for a partner user of
# grant g (portero.subject): a product the delegation does not grant, or
# one that spends money without wallet access. Worked out once per grant
# and entry.
op_denial(g, e) := d if {
	g.kind == "partner"
	e.feature
	d := feature_denial(g, e.feature)
} else := "delegation.product_not_granted" if {
	# A limited partner has its products, and the app's open pages:
	# nothing the mapping classifies without a product.
	g.kind == "partner"
	g.delegation.scope != "full"
	not e.feature
	not e.open
}

# Why a partner user of grant g may not use feature f at all; undefined
# when they may (and for everyone who is not a partner user).
feature_denial(g, f) := "delegation.no_wallet" if {
	g.kind == "partner"
	defs.features[f].wallet
	not g.delegation.wallet
} else := "delegation.product_not_granted" if {
	g.kind == "partner"
	not grants(g.delegation, f)
}
