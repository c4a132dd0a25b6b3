package control

import (
	"context"

	"github.com/portero-gateway/portero/policy"
)

// ActorOf is who makes a store write done with ctx: the management API's
// caller (token subject or signed-in user; the console calls the API as
// its user), "" otherwise. The access store puts it in the write's audit
// record (access.WithActors).
func ActorOf(ctx context.Context) string {
	if id, _ := ctx.Value(identityKey{}).(*policy.Identity); id != nil {
		return id.Subject
	}
	return ""
}
