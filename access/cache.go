package access

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// Resolver looks up a (user, tenant)'s facts through a bounded cache. Any
// store write makes every cached entry stale at once (the generation
// moves), entries for a delegation end when the delegation expires, and a
// store error is returned, never hidden: the caller fails closed.
//
// A stale entry is looked up again; when the facts turn out unchanged (the
// write was about someone else) the same *Resolved is kept, so what callers
// keyed on its address (the policy's memoised subject, cached decisions)
// stays valid. Only changed facts make a new *Resolved.
type Resolver struct {
	store   *Store
	max     int
	prepare func(*Facts, time.Time) any
	now     func() time.Time

	mu      sync.RWMutex
	entries map[factsKey]*Resolved
}

type factsKey struct{ user, tenant string }

// Resolved is a lookup's result with the caller's prepared form of it (for
// the gateway: the facts as policy input, built once; prepare is given the
// time, and the entry ends when a delegation expires, so facts such as
// "expired" stay exact). A new *Resolved is
// made whenever the facts may have changed, so its address identifies them.
type Resolved struct {
	Facts    *Facts
	Prepared any
	// Guarded by the resolver's mu: the store generation the facts were
	// last read at, and when the entry ends.
	gen   uint64
	until time.Time
}

// NewResolver caches up to max entries; prepare turns facts into the form
// the caller wants cached beside them; now is the caller's clock (nil:
// time.Now), by which cached lookups and master sessions expire.
func NewResolver(store *Store, max int, prepare func(*Facts, time.Time) any, now func() time.Time) *Resolver {
	if now == nil {
		now = time.Now
	}
	return &Resolver{store: store, max: max, prepare: prepare, now: now, entries: map[factsKey]*Resolved{}}
}

// Resolve returns the facts for user in tenant (nil Facts when the tenant
// does not exist) and whether they came from the cache.
func (r *Resolver) Resolve(ctx context.Context, user, tenant string) (*Resolved, bool, error) {
	if err := r.store.Health(); err != nil {
		// Fail closed, cached facts included: they may be from a file
		// that is no longer the store.
		return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	k := factsKey{user, tenant}
	gen := r.store.Generation()
	now := r.now()
	r.mu.RLock()
	old, ok := r.entries[k]
	fresh := ok && old.gen == gen && now.Before(old.until)
	r.mu.RUnlock()
	if fresh {
		return old, true, nil
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
	if ok && reflect.DeepEqual(old.Facts, facts) && !delegationExpired(facts, now) {
		// Unchanged (old.Facts is never modified), and prepared while the
		// delegation, if any, had not expired yet: still exact.
		r.mu.Lock()
		old.gen, old.until = gen, until
		r.mu.Unlock()
		return old, false, nil
	}
	e := &Resolved{Facts: facts, gen: gen, until: until}
	if r.prepare != nil {
		e.Prepared = r.prepare(facts, now)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, present := r.entries[k]; !present && len(r.entries) >= r.max {
		for k := range r.entries { // drop an arbitrary entry to stay bounded
			delete(r.entries, k)
			break
		}
	}
	r.entries[k] = e
	return e, false, nil
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
func (r *Resolver) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.entries)
}
