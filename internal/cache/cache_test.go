package cache

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestGet(t *testing.T) {
	t.Parallel()
	c := New[string, int](10)
	c.Put("forever", 1)
	c.PutUntil("minute", 2, t0.Add(time.Minute), t0)
	cases := []struct {
		name string
		key  string
		now  time.Time
		want int
		ok   bool
	}{
		{"no expiry", "forever", t0, 1, true},
		{"no expiry, long after", "forever", t0.Add(24 * time.Hour), 1, true},
		{"no expiry, zero now", "forever", time.Time{}, 1, true},
		{"before expiry", "minute", t0.Add(time.Minute - time.Nanosecond), 2, true},
		{"at expiry", "minute", t0.Add(time.Minute), 0, false},
		{"after expiry", "minute", t0.Add(time.Hour), 0, false},
		{"expiring entry, zero now", "minute", time.Time{}, 0, false},
		{"missing", "other", t0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := c.GetAt(tc.key, tc.now)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("GetAt(%q) = %d, %v; want %d, %v", tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
	// Get is GetAt with a zero now: entries with an expiry are absent.
	if v, ok := c.Get("forever"); !ok || v != 1 {
		t.Fatalf("Get of an entry without expiry: %d, %v", v, ok)
	}
	if _, ok := c.Get("minute"); ok {
		t.Fatal("Get returned an entry that has an expiry")
	}
	if _, ok := c.Get("other"); ok {
		t.Fatal("Get of a missing key")
	}
}

func TestPutReplacesAndDelete(t *testing.T) {
	t.Parallel()
	c := New[string, int](2)
	c.PutUntil("a", 1, t0.Add(time.Second), t0)
	c.Put("a", 2) // replaced: no expiry now
	if v, ok := c.GetAt("a", t0.Add(time.Hour)); !ok || v != 2 {
		t.Fatalf("replaced entry: %d, %v", v, ok)
	}
	c.Put("b", 3)
	c.Put("a", 4) // present: replacing in a full cache evicts nothing
	if c.Len() != 2 {
		t.Fatalf("Len = %d after replacing in a full cache", c.Len())
	}
	if _, ok := c.GetAt("b", t0); !ok {
		t.Fatal("replacing a key evicted another")
	}
	c.Delete("a")
	c.Delete("missing")
	if _, ok := c.GetAt("a", t0); ok || c.Len() != 1 {
		t.Fatalf("after Delete: present %v, Len %d", ok, c.Len())
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()
	exp := t0.Add(10 * time.Minute)
	steps := []struct {
		name         string
		now, expires time.Time
		want         bool
	}{
		{"first use", t0, exp, true},
		{"replayed", t0.Add(time.Minute), exp, false},
		{"replayed just before expiry", exp.Add(-time.Nanosecond), exp, false},
		{"at expiry, a new use", exp, exp.Add(10 * time.Minute), true},
		{"replayed again", exp.Add(time.Second), exp.Add(time.Hour), false},
	}
	c := New[string, struct{}](10)
	for _, s := range steps {
		if got := c.Add("state", struct{}{}, s.expires, s.now); got != s.want {
			t.Fatalf("%s: Add = %v, want %v", s.name, got, s.want)
		}
	}
	if _, ok := c.GetAt("state", exp.Add(10*time.Minute-time.Nanosecond)); !ok {
		t.Fatal("a refused Add changed the entry's expiry")
	}
	none := New[string, struct{}](0)
	if none.Add("k", struct{}{}, exp, t0) || none.Len() != 0 {
		t.Fatal("a cache of size 0 stored an entry")
	}
}

// Of many concurrent Adds of one key, exactly one succeeds.
func TestAddIsAtomic(t *testing.T) {
	t.Parallel()
	c := New[string, int](100)
	for round := range 20 {
		key := strconv.Itoa(round)
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c.Add(key, i, t0.Add(time.Minute), t0) {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d Adds succeeded", round, won.Load())
		}
	}
}

func TestEviction(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	cases := []struct {
		name      string
		live      int // entries without expiry or expiring after now
		expired   int
		wantLen   int // after putting one new key at now
		keepsLive bool
	}{
		{"full of live entries: one goes", 4, 0, 4, false},
		{"expired entries go first", 2, 2, 3, true},
		{"one expired entry goes", 3, 1, 4, true},
		{"all expired", 0, 4, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New[string, int](tc.live + tc.expired)
			for i := range tc.live {
				if i%2 == 0 {
					c.Put(fmt.Sprint("live", i), i)
				} else {
					c.PutUntil(fmt.Sprint("live", i), i, now.Add(time.Minute), t0)
				}
			}
			for i := range tc.expired {
				c.PutUntil(fmt.Sprint("expired", i), i, now.Add(-time.Second), t0)
			}
			c.PutUntil("new", -1, now.Add(time.Minute), now)
			if c.Len() != tc.wantLen {
				t.Fatalf("Len = %d, want %d", c.Len(), tc.wantLen)
			}
			if _, ok := c.GetAt("new", now); !ok {
				t.Fatal("the new entry is missing")
			}
			if tc.keepsLive {
				for i := range tc.live {
					if _, ok := c.GetAt(fmt.Sprint("live", i), now); !ok {
						t.Fatalf("live entry %d dropped while expired ones were there", i)
					}
				}
			}
		})
	}
}

// A cache never holds more than max entries, however it is filled.
func TestBounded(t *testing.T) {
	t.Parallel()
	for _, max := range []int{1, 3, evictScan, 100} {
		c := New[int, int](max)
		for i := range 10 * max {
			if i%3 == 0 {
				c.PutUntil(i, i, t0.Add(time.Duration(i%7)*time.Second), t0.Add(3*time.Second))
			} else {
				c.Put(i, i)
			}
			if c.Len() > max {
				t.Fatalf("max %d: Len %d", max, c.Len())
			}
		}
		// The last new key may have made room by dropping several expired
		// entries at once (up to evictScan are examined).
		if n := c.Len(); n < max-evictScan+1 || n < 1 {
			t.Fatalf("max %d: Len %d after filling", max, n)
		}
		// Without expiry, one entry makes room for one: full stays full.
		full := New[int, int](max)
		for i := range 10 * max {
			full.Put(i, i)
		}
		if full.Len() != max {
			t.Fatalf("max %d: Len %d after filling without expiry", max, full.Len())
		}
	}
	none := New[int, int](0)
	none.Put(1, 1)
	if _, ok := none.GetAt(1, t0); ok || none.Len() != 0 {
		t.Fatal("a cache of size 0 stored an entry")
	}
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	c := New[int, int](10)
	for i := range 6 {
		c.PutUntil(i, i, t0.Add(time.Duration(i)*time.Minute), t0)
	}
	c.Put(99, 99)
	if n := c.DeleteExpired(t0.Add(3 * time.Minute)); n != 4 { // 0, 1, 2, 3
		t.Fatalf("DeleteExpired removed %d, want 4", n)
	}
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
}

// Readers and writers together, for the race detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := New[int, int](64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := (i * (g + 1)) % 200
				now := t0.Add(time.Duration(i) * time.Millisecond)
				switch i % 5 {
				case 0:
					c.PutUntil(k, i, now.Add(time.Second), now)
				case 1:
					c.Add(k, i, now.Add(time.Second), now)
				case 2:
					c.Delete(k)
				case 3:
					c.DeleteExpired(now)
				default:
					c.GetAt(k, now)
				}
				if c.Len() > 64 {
					t.Error("over max")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkGetParallel is the request path's use: many goroutines reading
// keys that are present, as every request does 2-4 times.
func BenchmarkGetParallel(b *testing.B) {
	type key struct {
		id     [16]byte
		tenant string
	}
	const n = 1024
	c := New[key, int](n)
	keys := make([]key, n)
	for i := range keys {
		keys[i] = key{tenant: fmt.Sprintf("t%04d", i)}
		keys[i].id[0], keys[i].id[1] = byte(i), byte(i>>8)
		c.PutUntil(keys[i], i, t0.Add(time.Hour), t0)
	}
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.GetAt(keys[i%n], now); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// BenchmarkGetNoExpiryParallel is the same for a cache whose entries do not
// expire (decisions, stages, access facts), read with Get.
func BenchmarkGetNoExpiryParallel(b *testing.B) {
	type key struct {
		id     [16]byte
		tenant string
	}
	const n = 1024
	c := New[key, int](n)
	keys := make([]key, n)
	for i := range keys {
		keys[i] = key{tenant: fmt.Sprintf("t%04d", i)}
		keys[i].id[0], keys[i].id[1] = byte(i), byte(i>>8)
		c.Put(keys[i], i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(keys[i%n]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// BenchmarkPutFull measures an insert into a full cache (an eviction each).
func BenchmarkPutFull(b *testing.B) {
	const n = 10000
	c := New[int, int](n)
	for i := range n {
		c.Put(i, i)
	}
	b.ReportAllocs()
	i := n
	for b.Loop() {
		c.PutUntil(i, i, t0.Add(time.Minute), t0)
		i++
	}
}
