package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/policy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

func benchStore(b *testing.B, tenants int) *access.Store {
	b.Helper()
	ctx := context.Background()
	s, err := access.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for t := range tenants {
		id := fmt.Sprintf("t%04d", t)
		if _, err := s.CreateTenant(ctx, access.Tenant{ID: id, Name: id, Owner: "owner-" + id}); err != nil {
			b.Fatal(err)
		}
		for m := range 10 {
			if _, err := s.PutMember(ctx, access.Member{Tenant: id, User: fmt.Sprintf("u%d-%s", m, id), Role: "location_manager",
				Locations: []string{"l1", "l2"}, Profile: "services",
				Features: map[string]string{"profile_listings": "edit", "reviews": "read"},
				Fields:   map[string][]string{"profile_listings": {"phone", "hours"}}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// BenchmarkDecideWithStoreFacts evaluates the default policy on a realistic
// input: a location manager with features and field rights, from the store.
// "edit" carries a JSON body and is evaluated as on a decision cache miss
// (a body shape not seen before); "edit-cached" is the same edit answered
// from the decision cache (the default policy reads the body's shape, not
// its values); "read-cached" is the same user reading, from the cache.
func BenchmarkDecideWithStoreFacts(b *testing.B) {
	s := benchStore(b, 1)
	ctx := context.Background()
	r := access.NewResolver(s, 1000, PrepareAccess, nil)
	res, _, err := r.Resolve(ctx, "u3-t0000", "t0000")
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policy.NewEngine(ctx, policy.Source{Name: "embedded", FS: defaultrego.Bundle},
		policy.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	id := policy.NewIdentity(policy.Identity{Subject: "u3-t0000", Auth: "bearer"})
	input := func(method string, body *policy.Body) *policy.Input {
		return &policy.Input{
			Request: policy.Request{Method: method, Path: "/t/t0000/locations/l1/profile", Segments: []string{"t", "t0000", "locations", "l1", "profile"},
				AppSegments: []string{"locations", "l1", "profile"}, Body: body},
			Route: policy.Route{Name: "app", API: true}, Tenant: &policy.Tenant{ID: "t0000", Status: "active"},
			Identity: id, Access: res.Prepared, Now: time.Now(),
		}
	}
	doc, err := policy.NewBody(map[string]any{"phone": "+1 555 0100", "hours": "9-17"})
	if err != nil {
		b.Fatal(err)
	}
	edit := input("PATCH", doc)
	read := input("GET", nil)
	if ev := engine.Decide(ctx, edit); !ev.Decision.Allow {
		b.Fatalf("edit denied: %+v", ev)
	}
	evaluate := func(b *testing.B, in *policy.Input) {
		if d, err := engine.Current().Evaluate(ctx, in); err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
	b.Run("edit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			evaluate(b, edit)
		}
	})
	b.Run("edit-cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ev := engine.Decide(ctx, edit); !ev.Cached || !ev.Decision.Allow {
				b.Fatal(ev)
			}
		}
	})
	// A caller's first request after their facts changed (or a reload): the
	// policy's subject stage (role, levels, headers, refusals per
	// operation) is worked out before it is memoised. Each round gets a new
	// store lookup with other facts (one more location).
	round := 0 // across b.Run's calls (it is called again with a larger b.N): facts never repeat
	b.Run("edit-new-lookup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, m := *res.Facts, *res.Facts.Member
			m.Locations = append(slices.Clip(m.Locations), fmt.Sprint("x", round))
			f.Member = &m
			round++
			in := *edit
			in.Access = PrepareAccess(&f, time.Now())
			evaluate(b, &in)
		}
	})
	// A caller whose grant no caller had before (here: rights to one more
	// feature each round): the grant's levels and the operation's refusal
	// are worked out too, as every first request did before grants.
	b.Run("edit-new-grant", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, m := *res.Facts, *res.Facts.Member
			m.Features = maps.Clone(m.Features)
			m.Features[fmt.Sprint("x", round)] = "read"
			f.Member = &m
			round++
			in := *edit
			in.Access = PrepareAccess(&f, time.Now())
			evaluate(b, &in)
		}
	})
	// The same facts looked up and prepared again (after a cache eviction,
	// or by another gateway sharing the engine): the memoised subject is
	// found by value.
	b.Run("edit-same-facts-again", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in := *edit
			in.Access = PrepareAccess(res.Facts, time.Now())
			evaluate(b, &in)
		}
	})
	b.Run("read-cached", func(b *testing.B) {
		engine.Decide(ctx, read)
		b.ReportAllocs()
		for b.Loop() {
			if ev := engine.Decide(ctx, read); !ev.Cached {
				b.Fatal("not cached")
			}
		}
	})
}

// BenchmarkAccessCacheMemory reports the memory one cached lookup holds,
// prepared policy input included: cache_size × this bounds the cache.
func BenchmarkAccessCacheMemory(b *testing.B) {
	s := benchStore(b, 100)
	ctx := context.Background()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := access.NewResolver(s, 100000, PrepareAccess, nil)
	for t := range 100 {
		for m := range 10 {
			tenant := fmt.Sprintf("t%04d", t)
			if _, _, err := r.Resolve(ctx, fmt.Sprintf("u%d-%s", m, tenant), tenant); err != nil {
				b.Fatal(err)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(r.Len()), "bytes/entry")
	runtime.KeepAlive(r)
}
