package access

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/portero-gateway/portero/audit"
)

const (
	benchTenants          = 10000
	benchMembersPerTenant = 10 // 100,000 members
)

// seedLarge fills a store with 10,000 tenants and 100,000 members in one
// transaction.
func seedLarge(b *testing.B) *Store {
	b.Helper()
	s, _ := openStore(b)
	ctx := context.Background()
	stamp := s.stamp()
	err := s.write(ctx, "bench.seed", func(tx *dbTx) ([]audit.Record, error) {
		tstmt, err := tx.PrepareContext(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES (?, ?, '[]', 'active', ?, 1, ?)`)
		if err != nil {
			return nil, err
		}
		mstmt, err := tx.PrepareContext(ctx, `INSERT INTO members (`+memberCols+`) VALUES (?, ?, ?, '["b1"]', '["l1","l2"]', ?, ?, '[]', 'services', 'active', ?)`)
		if err != nil {
			return nil, err
		}
		roles := []string{"administrator", "multi_account_manager", "account_manager", "location_manager"}
		for t := range benchTenants {
			tenant := fmt.Sprintf("t%05d", t)
			if _, err := tstmt.ExecContext(ctx, tenant, "Tenant "+tenant, fmt.Sprintf("u%05d-0", t), stamp); err != nil {
				return nil, err
			}
			for m := range benchMembersPerTenant {
				if _, err := mstmt.ExecContext(ctx, tenant, fmt.Sprintf("u%05d-%d", t, m), roles[m%4],
					`{"profile_listings":"edit","reviews":"read","billing":"read"}`, `{"profile_listings":["phone","hours"]}`, stamp); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func randomKey(r *rand.Rand) (user, tenant string) {
	t := r.IntN(benchTenants)
	return fmt.Sprintf("u%05d-%d", t, r.IntN(benchMembersPerTenant)), fmt.Sprintf("t%05d", t)
}

// BenchmarkResolve measures the per-request lookup with 100,000 members
// over 10,000 tenants: a cache hit, a miss (a store read), and the memory
// the cache holds per entry.
func BenchmarkResolve(b *testing.B) {
	s := seedLarge(b)
	ctx := context.Background()
	b.Run("hit", func(b *testing.B) {
		r := NewResolver[any](s, 100000, nil, nil)
		if _, _, err := r.Resolve(ctx, "u00042-3", "t00042"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, hit, _ := r.Resolve(ctx, "u00042-3", "t00042"); !hit {
				b.Fatal("miss")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		r := NewResolver[any](s, 100000, nil, nil)
		rnd := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			s.generation.Add(1) // as after a write: every entry is stale, always a store read
			user, tenant := randomKey(rnd)
			res, hit, err := r.Resolve(ctx, user, tenant)
			if err != nil || hit || res.Facts.Member == nil {
				b.Fatal(err, hit)
			}
		}
	})
	b.Run("memory-per-entry", func(b *testing.B) {
		// Filled once, whatever b.N: the figure is bytes held per entry.
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewResolver[any](s, 100000, nil, nil)
		for t := range 2000 {
			for m := range benchMembersPerTenant {
				_, _, _ = r.Resolve(ctx, fmt.Sprintf("u%05d-%d", t, m), fmt.Sprintf("t%05d", t))
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		for b.Loop() {
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(r.Len()), "bytes/entry")
		runtime.KeepAlive(r)
	})
}
