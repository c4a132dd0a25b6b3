package access

import (
	"context"
	"sync"
	"time"
)

// Resolver looks up a (user, tenant)'s facts through a bounded cache. Any
// store write invalidates every cached entry at once (the generation moves),
// entries for a delegation end when the delegation expires, and a store
// error is returned, never hidden: the caller fails closed.
type Resolver struct {
	store   *Store
	max     int
	prepare func(*Facts, time.Time) any
	now     func() time.Time

	mu      sync.RWMutex
	gen     uint64
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
	until    time.Time
}

// NewResolver caches up to max entries; prepare turns facts into the form
// the caller wants cached beside them.
func NewResolver(store *Store, max int, prepare func(*Facts, time.Time) any) *Resolver {
	return &Resolver{store: store, max: max, prepare: prepare, now: time.Now, entries: map[factsKey]*Resolved{}}
}

// Resolve returns the facts for user in tenant (nil Facts when the tenant
// does not exist) and whether they came from the cache.
func (r *Resolver) Resolve(ctx context.Context, user, tenant string) (*Resolved, bool, error) {
	k := factsKey{user, tenant}
	gen := r.store.Generation()
	now := r.now()
	r.mu.RLock()
	e, ok := r.entries[k]
	fresh := ok && r.gen == gen && now.Before(e.until)
	r.mu.RUnlock()
	if fresh {
		return e, true, nil
	}
	facts, err := r.store.Facts(ctx, user, tenant)
	if err != nil {
		return nil, false, err
	}
	e = &Resolved{Facts: facts, until: now.Add(maxFactsAge)}
	if facts != nil && facts.Delegation != nil && facts.Delegation.Expires != nil && facts.Delegation.Expires.Before(e.until) && facts.Delegation.Expires.After(now) {
		e.until = *facts.Delegation.Expires // re-resolve when it expires
	}
	if r.prepare != nil {
		e.Prepared = r.prepare(facts, now)
	}
	r.mu.Lock()
	if r.gen != gen {
		clear(r.entries)
		r.gen = gen
	}
	if len(r.entries) >= r.max {
		for k := range r.entries { // drop an arbitrary entry to stay bounded
			delete(r.entries, k)
			break
		}
	}
	r.entries[k] = e
	r.mu.Unlock()
	return e, false, nil
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
