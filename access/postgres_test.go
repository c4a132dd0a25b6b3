package access

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/pgtest"
)

func TestRebindDollar(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                   `SELECT 1`,
		`WHERE a = ? AND "user" = ?`: `WHERE a = $1 AND "user" = $2`,
		`LIKE ? ESCAPE '\' OR b LIKE ? ESCAPE '\'`: `LIKE $1 ESCAPE '\' OR b LIKE $2 ESCAPE '\'`,
		`SELECT '?', "?" FROM t WHERE x = ?`:       `SELECT '?', "?" FROM t WHERE x = $1`,
		`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`: `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
	} {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
}

// waitFor polls cond every 10 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// The database goes away under a running store: it fails closed (cached
// facts included), then serves again on its own when the database is
// back, with every acknowledged write there; two stores on the database
// see each other's writes through LISTEN/NOTIFY.
func TestPostgresOutageFailsClosedAndRecovers(t *testing.T) {
	c := pgtest.StartCluster(t)
	ctx := context.Background()
	open := func() *Store {
		s, err := Open(ctx, c.URL, WithPostgres(PostgresOptions{MaxOpen: 4}))
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.WatchWrites(wctx, 10*time.Millisecond) }()
		t.Cleanup(func() { cancel(); <-done; s.Close() })
		waitFor(t, 10*time.Second, "the store listens", func() bool { return s.Health() == nil })
		return s
	}
	a, b := open(), open()
	seed(t, a)
	r := NewResolver[any](b, 100, nil, nil)
	if res, _, err := r.Resolve(ctx, "leo", "acme"); err != nil || res.Facts.Member == nil || res.Facts.Member.Status != "active" {
		t.Fatalf("facts on b: %+v %v", res, err)
	}
	// a's seed writes reach b asynchronously; once heard, b caches.
	waitFor(t, 5*time.Second, "b answers from its cache", func() bool {
		_, hit, err := r.Resolve(ctx, "leo", "acme")
		return err == nil && hit
	})
	// A write on a reaches b's cache through the database.
	gen := b.Generation()
	if _, err := a.SetMemberStatus(ctx, "acme", "leo", "deactivated"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b hears a's write", func() bool { return b.Generation() != gen })
	if res, _, err := r.Resolve(ctx, "leo", "acme"); err != nil || res.Facts.Member.Status != "deactivated" {
		t.Fatalf("after a's write, b resolves %+v %v", res, err)
	}

	c.Stop()
	took := waitFor(t, 15*time.Second, "b fails closed", func() bool { return b.Health() != nil })
	t.Logf("database stopped: b unhealthy after %v (%v)", took, b.Health())
	if _, _, err := r.Resolve(ctx, "leo", "acme"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with the database down, a cached lookup gave %v, want ErrUnavailable", err)
	}
	if _, err := a.SetMemberStatus(ctx, "acme", "leo", "active"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write with the database down: %v, want ErrUnavailable (503 to the caller)", err)
	}
	if _, err := a.Member(ctx, "acme", "leo"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a read with the database down: %v, want ErrUnavailable", err)
	}

	c.Start()
	took = waitFor(t, 15*time.Second, "b recovers", func() bool { return b.Health() == nil })
	t.Logf("database back: b healthy after %v", took)
	waitFor(t, 15*time.Second, "a recovers", func() bool { return a.Health() == nil })
	res, hit, err := r.Resolve(ctx, "leo", "acme")
	if err != nil || hit || res.Facts.Member.Status != "deactivated" {
		t.Fatalf("after recovery: %+v hit=%v %v (the acknowledged write must be there, read afresh)", res, hit, err)
	}
	if _, err := a.SetMemberStatus(ctx, "acme", "leo", "active"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	waitFor(t, 5*time.Second, "b sees the write after recovery", func() bool {
		res, _, err := r.Resolve(ctx, "leo", "acme")
		return err == nil && res.Facts.Member.Status == "active"
	})
}
