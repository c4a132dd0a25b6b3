package limit

import (
	"testing"
	"time"

	"github.com/portero-gateway/portero/config"
)

// The limiter's memory is bounded: full buckets are dropped when room is
// needed, and while every bucket is in use new keys share one.
func TestRateLimiterMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewPerKey(config.Rate{PerMinute: 60, Burst: 1}, 2)
	for _, k := range []string{"a", "b"} {
		if ok, _ := l.Allow(k, now); !ok {
			t.Fatalf("%s refused", k)
		}
	}
	if ok, _ := l.Allow("c", now); !ok || l.Len() != 2 {
		t.Fatalf("c: %v, %d buckets", ok, l.Len())
	}
	if ok, wait := l.Allow("d", now); ok || wait <= 0 || wait > time.Second {
		t.Fatalf("d shares the overflow bucket c emptied: %v %v", ok, wait)
	}
	if ok, _ := l.Allow("a", now); ok {
		t.Fatal("a's bucket was reset")
	}
	now = now.Add(2 * time.Second) // a and b are full again
	if ok, _ := l.Allow("e", now); !ok || l.Len() != 1 {
		t.Fatalf("e after the sweep: %v, %d buckets", ok, l.Len())
	}
	for i := range 10000 {
		l.Allow(string(rune(i)), now)
	}
	if l.Len() > 2 {
		t.Fatalf("%d buckets", l.Len())
	}
}
