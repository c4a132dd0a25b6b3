// Package cache is Portero's one bounded in-memory cache: a map of at most a
// fixed number of entries, keyed by values (never by pointers whose meaning
// rests on who made them), each entry optionally ending at a given time.
//
// Reads take a shared lock, so concurrent lookups on the request path do
// not wait for one another; writes take the lock alone.
package cache

import (
	"sync"
	"time"
)

// Bounded maps keys to values, holding at most max entries. It is safe for
// concurrent use.
//
// Expiry: an entry put with an expiry is absent, to GetAt and Add, at and
// after that instant. An entry put without one (Put) stays until it is
// replaced, deleted or evicted. Callers give the time (their clock, so
// tests control it); a zero now counts every entry that has an expiry as
// expired, so a caller that does not know the time never gets one.
//
// Eviction: when a key that is not present is stored in a full cache, up
// to evictScan entries are examined in map order (which Go randomises);
// the expired ones among them are dropped, or, when none is, the first one
// examined is. An insert therefore costs a few entries' work at most, and
// which live entry goes is arbitrary: a cache whose live entries must not
// be dropped sweeps with DeleteExpired first and sizes max for its worst
// case.
type Bounded[K comparable, V any] struct {
	max int

	mu      sync.RWMutex
	entries map[K]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time // zero: never
}

// evictScan bounds how many entries an insert into a full cache examines.
const evictScan = 16

func (e *entry[V]) expired(now time.Time) bool {
	return !e.expires.IsZero() && (now.IsZero() || !now.Before(e.expires))
}

// New returns a cache of at most max entries; with max < 1 it holds none.
func New[K comparable, V any](max int) *Bounded[K, V] {
	return &Bounded[K, V]{max: max, entries: make(map[K]entry[V])}
}

// Get returns the value stored under key by Put and true, or false when
// there is none. An entry put with an expiry is absent to Get (it is
// GetAt with a zero now); Get is for caches whose entries do not expire,
// and small enough to be inlined on the request path.
func (c *Bounded[K, V]) Get(key K) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !e.expires.IsZero() {
		var zero V
		return zero, false
	}
	return e.value, true
}

// GetAt returns the value stored under key and true, or false when there
// is none or it has expired at now.
func (c *Bounded[K, V]) GetAt(key K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || e.expired(now) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put stores value under key with no expiry, replacing what was there.
func (c *Bounded[K, V]) Put(key K, value V) {
	c.PutUntil(key, value, time.Time{}, time.Time{})
}

// PutUntil stores value under key until expires (zero: no expiry),
// replacing what was there; now is used only to prefer expired entries
// when room must be made.
func (c *Bounded[K, V]) PutUntil(key K, value V, expires, now time.Time) {
	if c.max < 1 {
		return
	}
	c.mu.Lock()
	c.store(key, entry[V]{value: value, expires: expires}, now)
	c.mu.Unlock()
}

// Add stores value under key until expires only when key has no entry
// live at now, and reports whether it did. The check and the insert happen
// under one lock: of concurrent Adds of one key, exactly one succeeds
// (what makes a token single-use). A cache that holds nothing (max < 1)
// never stores, so Add reports false.
func (c *Bounded[K, V]) Add(key K, value V, expires, now time.Time) bool {
	if c.max < 1 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && !e.expired(now) {
		return false
	}
	c.store(key, entry[V]{value: value, expires: expires}, now)
	return true
}

// store puts e under key, making room first when key is new and the cache
// is full. c.mu is held.
func (c *Bounded[K, V]) store(key K, e entry[V], now time.Time) {
	if _, present := c.entries[key]; !present && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[key] = e
}

// evict drops the expired entries among the first evictScan in map order,
// or the first of them when none has expired. c.mu is held.
func (c *Bounded[K, V]) evict(now time.Time) {
	var first K
	examined, dropped := 0, false
	for k, e := range c.entries {
		if examined == 0 {
			first = k
		}
		if e.expired(now) {
			delete(c.entries, k) // deleting during range is allowed
			dropped = true
		}
		if examined++; examined == evictScan {
			break
		}
	}
	if !dropped && examined > 0 {
		delete(c.entries, first)
	}
}

// Delete removes key's entry, if any.
func (c *Bounded[K, V]) Delete(key K) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// DeleteExpired removes every entry expired at now and returns how many
// it removed. It reads the whole cache: for housekeeping, not per request.
func (c *Bounded[K, V]) DeleteExpired(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.entries {
		if e.expired(now) {
			delete(c.entries, k)
			n++
		}
	}
	return n
}

// Len is the number of entries held, expired ones not yet removed
// included.
func (c *Bounded[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
