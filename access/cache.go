package access

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/portero-gateway/portero/internal/cache"
)

// Resolver looks up a (user, tenant)'s facts through a bounded cache and
// keeps beside them the caller's prepared form P of them (for the gateway:
// the facts as policy input, built once). Any store write makes every
// cached entry stale at once (the generation moves), entries for a
// delegation or a master-access session end when it expires, and a store
// error is returned, never hidden: the caller fails closed.
//
// Each result carries a Version, a value: when a stale entry is looked up
// again and the facts turn out unchanged (the write was about someone
// else), the entry keeps its Resolved and its Version; only changed facts
// are prepared again, under a new Version. What is cached downstream can
// therefore be keyed on (user, tenant, Version) instead of on an address.
type Resolver[P any] struct {
	store   *Store
	prepare func(*Facts, time.Time) P
	now     func() time.Time

	entries  *cache.Bounded[factsKey, *resolverEntry[P]]
	versions atomic.Uint64 // the last Version given out
}

type factsKey struct{ user, tenant string }

// resolverEntry is a cached lookup, never modified once cached. It ends by
// the resolver's rules (gen, until), not the cache's expiry: a stale entry
// is still read, to keep its Version when the facts are unchanged.
type resolverEntry[P any] struct {
	res   *Resolved[P]
	gen   uint64    // the store generation the facts were last read at
	until time.Time // when the entry ends
}

// Resolved is a lookup's result: the facts and their prepared form.
// prepare is given the time, and the entry ends when a delegation or a
// master-access session expires, so facts such as "expired" stay exact.
// A Resolved is never modified once returned.
type Resolved[P any] struct {
	Facts    *Facts
	Prepared P
	// Version names these facts and this Prepared among the resolver's
	// results for the same (user, tenant): a lookup that finds the facts
	// unchanged keeps it, anything else gives a new one (a number not
	// given out before by this resolver). The same Version never names
	// other facts; unchanged facts may get a new one after their entry was
	// evicted.
	Version uint64
}

// NewResolver caches up to max entries; prepare (nil: none) turns facts
// into the form the caller wants cached beside them; now is the caller's
// clock (nil: time.Now), by which cached lookups and master sessions
// expire.
func NewResolver[P any](store *Store, max int, prepare func(*Facts, time.Time) P, now func() time.Time) *Resolver[P] {
	if now == nil {
		now = time.Now
	}
	return &Resolver[P]{store: store, prepare: prepare, now: now, entries: cache.New[factsKey, *resolverEntry[P]](max)}
}

// Resolve returns the facts for user in tenant (nil Facts when the tenant
// does not exist) and whether they came from the cache.
func (r *Resolver[P]) Resolve(ctx context.Context, user, tenant string) (*Resolved[P], bool, error) {
	if err := r.store.Health(); err != nil {
		// Fail closed, cached facts included: they may be from a file
		// that is no longer the store.
		return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	k := factsKey{user, tenant}
	gen := r.store.Generation()
	now := r.now()
	old, ok := r.entries.Get(k) // entries have no cache expiry: until is checked here
	// A store that may have missed another process's write (PostgreSQL
	// while its listening connection is down) is read every time.
	if ok && old.gen == gen && now.Before(old.until) && r.store.Live() {
		return old.res, true, nil
	}
	facts, err := r.store.Facts(ctx, user, tenant, now)
	if err != nil {
		return nil, false, err
	}
	until := now.Add(maxFactsAge)
	if facts != nil && facts.Delegation != nil && facts.Delegation.Expires != nil && facts.Delegation.Expires.Before(until) && facts.Delegation.Expires.After(now) {
		until = *facts.Delegation.Expires // re-resolve when it expires
	}
	if facts != nil && facts.Master != nil && facts.Master.ExpiresAt.Before(until) {
		until = facts.Master.ExpiresAt // master access ends at its expiry, exactly
	}
	if ok && reflect.DeepEqual(old.res.Facts, facts) && !delegationExpired(facts, now) {
		// Unchanged (a Resolved's Facts are never modified), and prepared
		// while the delegation, if any, had not expired yet: still exact.
		r.entries.Put(k, &resolverEntry[P]{res: old.res, gen: gen, until: until})
		return old.res, false, nil
	}
	res := &Resolved[P]{Facts: facts, Version: r.versions.Add(1)}
	if r.prepare != nil {
		res.Prepared = r.prepare(facts, now)
	}
	r.entries.Put(k, &resolverEntry[P]{res: res, gen: gen, until: until})
	return res, false, nil
}

// delegationExpired says whether the facts carry a delegation that has
// expired at now.
func delegationExpired(f *Facts, now time.Time) bool {
	return f != nil && f.Delegation != nil && f.Delegation.Expires != nil && !now.Before(*f.Delegation.Expires)
}

// maxFactsAge bounds how long an entry is trusted without a write being
// seen, as a backstop to the generation.
const maxFactsAge = time.Minute

// Len is the number of cached entries.
func (r *Resolver[P]) Len() int { return r.entries.Len() }
