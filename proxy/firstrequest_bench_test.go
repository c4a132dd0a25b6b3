package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/policy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

const (
	firstTenants          = 10000
	firstMembersPerTenant = 10 // 100,000 members
)

// seedFirstRequestStore imports 10,000 tenants of 10 members each (the
// 100,000-member scale of access.BenchmarkResolve and bench/run's store
// row) in one transaction.
func seedFirstRequestStore(b *testing.B) *access.Store {
	b.Helper()
	ctx := context.Background()
	s, err := access.Open(ctx, filepath.Join(b.TempDir(), "first.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	roles := []string{"administrator", "multi_account_manager", "account_manager", "location_manager"}
	for t := range firstTenants {
		id := fmt.Sprintf("t%05d", t)
		_ = enc.Encode(map[string]any{"tenant": map[string]any{"id": id, "name": "Tenant " + id, "owner": fmt.Sprintf("u%05d-0", t)}})
		for m := range firstMembersPerTenant {
			_ = enc.Encode(map[string]any{"member": map[string]any{"tenant": id, "user": fmt.Sprintf("u%05d-%d", t, m), "role": roles[m%4],
				"businesses": []string{"b1"}, "locations": []string{"l1", "l2"}, "profile": "services",
				"features": map[string]string{"profile_listings": "edit", "reviews": "read"},
				"fields":   map[string][]string{"profile_listings": {"phone", "hours"}}}})
		}
	}
	if _, err := s.Import(ctx, &buf); err != nil {
		b.Fatal(err)
	}
	return s
}

// policyWithOps is the default policy with its route mapping grown to
// total operations: the shipped entries, then edit entries of a feature
// under paths of their own (/extra<i>/<id>/things).
func policyWithOps(b *testing.B, total int) policy.Source {
	b.Helper()
	files := fstest.MapFS{}
	err := fs.WalkDir(defaultrego.Bundle, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(defaultrego.Bundle, path)
		files[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(files["data.json"].Data, &doc); err != nil {
		b.Fatal(err)
	}
	defs := doc["portero"].(map[string]any)["definitions"].(map[string]any)
	routes := defs["routes"].(map[string]any)
	n := 0
	for _, buckets := range routes {
		for _, entries := range buckets.(map[string]any) {
			n += len(entries.([]any))
		}
	}
	edit := routes["edit"].(map[string]any)
	for i := 0; n < total; i++ {
		first := fmt.Sprintf("extra%d", i)
		edit[first] = []any{map[string]any{"path": first + "/*/things", "segments": 3, "literals": []any{[]any{0, first}, []any{2, "things"}},
			"params": map[string]any{"location": 1}, "feature": "profile_listings", "action": "edit", "resource": "location"}}
		n++
	}
	data, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	files["data.json"] = &fstest.MapFile{Data: data}
	return policy.Source{Name: fmt.Sprintf("default policy, %d operations", total), FS: files}
}

// BenchmarkFirstRequest is a caller's first request after their facts
// changed (or the first since the gateway started): an edit, so the
// decision cache never answers it, by a member none of the memos has
// seen. Each iteration is another of the 100,000 members (round robin,
// the resolver's cache far smaller; a tenant's ten one after another, so
// that one in ten is the tenant's owner and the rest members of the four
// roles), so it pays for everything a first
// request does: the store lookup (a cache miss), input.access, the subject
// stage, the operation's refusal for this caller, and the decision.
// members-100k uses the default policy; 200-ops the same with its route
// mapping grown to 200 operations (the cost must not grow with it).
func BenchmarkFirstRequest(b *testing.B) {
	s := seedFirstRequestStore(b)
	for _, bc := range []struct {
		name string
		src  policy.Source
	}{
		{"members-100k", policy.Source{Name: "embedded", FS: defaultrego.Bundle}},
		{"200-ops", policyWithOps(b, 200)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			engine, err := policy.NewEngine(ctx, bc.src, policy.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewJSONHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			r := access.NewResolver(s, 1000, PrepareAccess, nil)
			body, err := policy.NewBody(map[string]any{"phone": "+1 555 0100", "hours": "9-17"})
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				// A tenant's ten callers one after another: its owner, then
				// members of each role (the seed gives member m the role
				// m%4: multi-account manager, account manager, location
				// manager, administrator, ...), as callers come.
				t, m := (i/firstMembersPerTenant)%firstTenants, i%firstMembersPerTenant
				i++
				user, tenant := fmt.Sprintf("u%05d-%d", t, m), fmt.Sprintf("t%05d", t)
				res, _, err := r.Resolve(ctx, user, tenant)
				if err != nil {
					b.Fatal(err)
				}
				in := &policy.Input{
					Request: policy.Request{Method: "PATCH", Path: "/t/" + tenant + "/locations/l1/profile", Segments: []string{"t", tenant, "locations", "l1", "profile"},
						AppSegments: []string{"locations", "l1", "profile"}, Body: body},
					Route: policy.Route{Name: "app", API: true}, Tenant: &policy.Tenant{ID: tenant, Status: "active"},
					Identity: policy.NewIdentity(policy.Identity{Subject: user, Auth: "bearer"}), Access: res.Prepared, Now: time.Now(),
				}
				if ev := engine.Decide(ctx, in); !ev.Decision.Allow {
					b.Fatalf("%s in %s: %+v", user, tenant, ev)
				}
			}
		})
	}
}
