package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The store row: an access store of 10,000 tenants with 10 members each
// (1,000 tenants in the smoke run), and storeUsers bench users, each a
// location manager of a different tenant, signed in through the code flow.
const (
	storeTenants          = 10000
	storeMembersPerTenant = 10
	storeUsers            = 64
)

// storeImport is what seeding the row's store took.
type storeImport struct {
	members int
	took    time.Duration
}

// writeStoreSeed writes the import file: every tenant with its members,
// then each bench user's membership, and returns how many members it holds.
func writeStoreSeed(path string, tenants int) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	roles := []string{"administrator", "multi_account_manager", "account_manager", "location_manager"}
	members := 0
	for t := range tenants {
		id := fmt.Sprintf("t%05d", t)
		if err := enc.Encode(map[string]any{"tenant": map[string]any{"id": id, "name": "Tenant " + id, "owner": fmt.Sprintf("u%05d-0", t), "master_access": true}}); err != nil {
			return 0, err
		}
		for m := range storeMembersPerTenant {
			member := map[string]any{"tenant": id, "user": fmt.Sprintf("u%05d-%d", t, m), "role": roles[m%4],
				"businesses": []string{"b1"}, "locations": []string{"l1", "l2"},
				"features": map[string]string{"profile_listings": "edit", "reviews": "read", "billing": "read"},
				"fields":   map[string][]string{"profile_listings": {"phone", "hours"}}}
			if err := enc.Encode(map[string]any{"member": member}); err != nil {
				return 0, err
			}
			members++
		}
	}
	for u := range storeUsers {
		member := map[string]any{"tenant": benchUserTenant(u, tenants), "user": fmt.Sprintf("bench-user-%d", u), "role": "location_manager",
			"locations": []string{"l1", "l2"}, "features": map[string]string{"profile_listings": "edit", "reviews": "read"},
			"fields": map[string][]string{"profile_listings": {"phone", "hours"}}}
		if err := enc.Encode(map[string]any{"member": member}); err != nil {
			return 0, err
		}
		members++
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return members, f.Close()
}

// benchUserTenant spreads the bench users over the tenants.
func benchUserTenant(u, tenants int) string {
	return fmt.Sprintf("t%05d", u*(tenants/storeUsers))
}

// porteroStoreRow runs Portero with the access store and the full default
// policy: each of the bench users signs in through the code flow, and the
// load goes round the users and three pages the policy classifies (a
// location's profile, the location list, reviews), so every request looks
// up a member among 100,000 and checks a feature and a location scope.
func (h *harness) porteroStoreRow() (target, error) {
	tenants := storeTenants
	if h.o.smoke {
		tenants = 1000
	}
	seed, db := filepath.Join(h.dir, "store-seed.jsonl"), filepath.Join(h.dir, "access.db")
	_ = os.Remove(db)
	members, err := writeStoreSeed(seed, tenants)
	if err != nil {
		return target{}, err
	}
	start := time.Now()
	if out, err := exec.Command(filepath.Join(h.bin, "portero"), "admin", "--store", db, "import", seed).CombinedOutput(); err != nil {
		return target{}, fmt.Errorf("import: %v\n%s", err, out)
	}
	h.imported = storeImport{members: members, took: time.Since(start)}
	h.storeDB = db

	cfg, public, ops := h.porteroConfigFor("portero-store", true, "warn", "    body:\n      json: true\n      max_bytes: 65536", "access:\n  store: "+db+"\n")
	p := h.start("portero-store", nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfg)
	if err := waitStatus(ops+"/readyz", 200); err != nil {
		return target{}, fmt.Errorf("%v\n%s", err, p.tail())
	}
	var reqs, edits []request
	for range storeUsers {
		cookie, body, err := sessionCookie(public, "/.portero/login?rd=/.portero/userinfo")
		if err != nil {
			return target{}, fmt.Errorf("sign in: %v\n%s", err, p.tail())
		}
		var who struct{ Sub string }
		if err := json.Unmarshal(body, &who); err != nil || !strings.HasPrefix(who.Sub, "bench-user-") {
			return target{}, fmt.Errorf("userinfo after sign-in: %q (%v)", body, err)
		}
		var u int
		_, _ = fmt.Sscanf(who.Sub, "bench-user-%d", &u)
		tenant := benchUserTenant(u, tenants)
		for _, path := range []string{"/locations/l1/profile", "/locations", "/reviews"} {
			reqs = append(reqs, request{path: "/t/" + tenant + path, headers: []string{cookie}})
		}
		// Three forms of the app, each with its own values per user: the
		// policy checks every body's fields; the decision cache answers a
		// shape (which fields) it has decided for this user before.
		for _, body := range []string{
			fmt.Sprintf(`{"phone": "+1 555 %04d", "hours": "9-17"}`, u%10000),
			fmt.Sprintf(`{"phone": "+1 555 %04d"}`, (u+1)%10000),
			fmt.Sprintf(`{"hours": "%d-18"}`, 6+u%4),
		} {
			edits = append(edits, request{method: "PATCH", path: "/t/" + tenant + "/locations/l1/profile",
				headers: []string{cookie, "Content-Type: application/json"}, body: body})
		}
	}
	// The edits must be decided field by field: a field the users may not
	// edit is refused, or the row would measure nothing worth knowing.
	bad := edits[0]
	bad.body = `{"name": "Renamed"}`
	bad.path = public + bad.path
	if code := doRequest(http.DefaultClient, bad); code != http.StatusForbidden {
		return target{}, fmt.Errorf("an edit of a field the user may not edit answered %d, want 403", code)
	}
	h.storeEdits = &target{url: public, requests: edits, measured: []*proc{p}}
	return target{url: public, requests: reqs, measured: []*proc{p}}, nil
}

// porteroStoreEditsRow loads the store row's gateway with edits: each user
// PATCHes fields of a location profile with JSON bodies of three shapes,
// which the policy checks field by field; the decision cache answers a
// shape it decided for that user before (the policy reads the body's
// shape, not its values).
func (h *harness) porteroStoreEditsRow() (target, error) {
	if h.storeEdits == nil {
		return target{}, errors.New("needs the access-store row, which did not start")
	}
	return *h.storeEdits, nil
}
