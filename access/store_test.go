package access

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/pgtest"
)

// eachStore runs test once per database, as subtests "sqlite" and
// "postgres": one conformance suite for both. The PostgreSQL run skips
// when no server is available (internal/pgtest).
func eachStore(t *testing.T, test func(t *testing.T)) {
	t.Run("sqlite", test)
	t.Run("postgres", test)
}

// onPostgres says whether t runs in eachStore's "postgres" subtest.
func onPostgres(t testing.TB) bool { return strings.Contains(t.Name(), "/postgres") }

// newTarget is an empty store's access.store value for t: a SQLite file,
// or a schema of its own on the test PostgreSQL server.
func newTarget(t testing.TB) string {
	t.Helper()
	if onPostgres(t) {
		return pgtest.Schema(t)
	}
	return filepath.Join(t.TempDir(), "portero.db")
}

// openStore opens an empty store for t and returns it with its target.
func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	target := newTarget(t)
	s, err := Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if onPostgres(t) {
		// A PostgreSQL store trusts its cache only while it listens for
		// other replicas' writes, as a gateway's store does.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.WatchWrites(ctx, 10*time.Millisecond) }()
		t.Cleanup(func() { cancel(); <-done })
		for deadline := time.Now().Add(10 * time.Second); s.Listening() != nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the store does not listen: %v", s.Listening())
			}
		}
	}
	return s, target
}

func seed(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateTenant(ctx, Tenant{ID: "acme", Name: "Acme", Owner: "olivia", MasterAccess: true}))
	must(s.PutMember(ctx, Member{Tenant: "acme", User: "leo", Role: "location_manager", Locations: []string{"l1"},
		Features: map[string]string{"profile_listings": "edit", "reviews": "read"}, Fields: map[string][]string{"profile_listings": {"phone", "hours"}}}))
	must(s.CreatePartner(ctx, Partner{ID: "partnerco", Name: "Partner Co"}))
	must(s.PutPartnerUser(ctx, PartnerUser{Partner: "partnerco", User: "pat"}))
}

func TestMigrationsAndDurability(t *testing.T) { eachStore(t, testMigrationsAndDurability) }

func testMigrationsAndDurability(t *testing.T) {
	s, path := openStore(t)
	seed(t, s)
	v, err := s.SchemaVersion(context.Background())
	if err != nil || v != len(migrations)-1 {
		t.Fatalf("schema version %d %v", v, err)
	}
	s.Close()
	// Reopening applies nothing twice and keeps every acknowledged write.
	s2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	m, err := s2.Member(context.Background(), "acme", "leo")
	if err != nil || m.Role != "location_manager" || m.Fields["profile_listings"][1] != "hours" {
		t.Fatalf("after reopen: %+v %v", m, err)
	}
}

func TestValidationErrorsNameTheField(t *testing.T) { eachStore(t, testValidationErrorsNameTheField) }

func testValidationErrorsNameTheField(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	cases := map[string]error{
		"id":   func() error { _, err := s.CreateTenant(ctx, Tenant{ID: "Acme!", Name: "x"}); return err }(),
		"name": func() error { _, err := s.CreateTenant(ctx, Tenant{ID: "x"}); return err }(),
		"role": func() error { _, err := s.PutMember(ctx, Member{Tenant: "acme", User: "u", Role: "boss"}); return err }(),
		"features.reviews": func() error {
			_, err := s.PutMember(ctx, Member{Tenant: "acme", User: "u", Role: "account_manager", Features: map[string]string{"reviews": "write"}})
			return err
		}(),
		"fields.reviews": func() error {
			_, err := s.PutMember(ctx, Member{Tenant: "acme", User: "u", Role: "account_manager", Features: map[string]string{"reviews": "read"}, Fields: map[string][]string{"reviews": {"x"}}})
			return err
		}(),
		"rights": func() error {
			_, err := s.PutMember(ctx, Member{Tenant: "acme", User: "u", Role: "account_manager", Rights: []string{"root"}})
			return err
		}(),
		"tenant": func() error {
			_, err := s.PutMember(ctx, Member{Tenant: "nope", User: "u", Role: "account_manager"})
			return err
		}(),
		"products": func() error {
			_, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", InvitedBy: "olivia"})
			return err
		}(),
		"scope": func() error {
			_, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "all", InvitedBy: "olivia"})
			return err
		}(),
		"expires": func() error {
			past := time.Now().Add(-time.Hour)
			_, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia", Expires: &past})
			return err
		}(),
		"partner (missing)": func() error {
			_, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "nobody", Scope: "full", InvitedBy: "olivia"})
			return err
		}(),
	}
	for want, err := range cases {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: got %v, want a field error", want, err)
			continue
		}
		if field := fe.Field; field != want && !(want == "partner (missing)" && field == "partner") {
			t.Errorf("field %q, want %q (%v)", field, want, err)
		}
	}
	if _, err := s.CreateTenant(ctx, Tenant{ID: "acme", Name: "again"}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate tenant: %v", err)
	}
	if _, err := s.SetMemberStatus(ctx, "acme", "nobody", "deactivated"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing member: %v", err)
	}
}

func TestDelegationLifecycle(t *testing.T) { eachStore(t, testDelegationLifecycle) }

func testDelegationLifecycle(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	invite := func() *Delegation {
		t.Helper()
		d, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := invite()
	if _, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second open invitation: %v", err)
	}
	steps := []struct {
		action, want string
		conflict     bool
	}{
		{"resend", "invited", false},
		{"revoke", "", true}, // not accepted yet: withdraw instead
		{"accept", "accepted", false},
		{"accept", "", true},
		{"reject", "", true},
		{"withdraw", "", true},
		{"revoke", "revoked", false},
		{"accept", "", true}, // accepting a revoked invitation
		{"frobnicate", "", true},
	}
	for _, st := range steps {
		got, err := s.Transition(ctx, d.ID, st.action)
		switch {
		case st.action == "frobnicate":
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("unknown action: %v", err)
			}
		case st.conflict:
			if !errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v, want conflict", st.action, err)
			}
		case err != nil || got.Status != st.want:
			t.Errorf("%s: %+v %v", st.action, got, err)
		}
	}
	// After a revocation a new invitation may be made; withdrawn and rejected ones close too.
	d2 := invite()
	if got, err := s.Transition(ctx, d2.ID, "withdraw"); err != nil || got.Status != "revoked" {
		t.Fatalf("withdraw: %+v %v", got, err)
	}
	d3 := invite()
	if got, err := s.Transition(ctx, d3.ID, "reject"); err != nil || got.Status != "rejected" {
		t.Fatalf("reject: %+v %v", got, err)
	}
	list, _ := s.Delegations(ctx, "acme", "")
	byPartner, _ := s.Delegations(ctx, "", "partnerco")
	if len(list) != 3 || len(byPartner) != 3 {
		t.Fatalf("lists: %d %d", len(list), len(byPartner))
	}
}

func TestExpiredInvitationCannotBeAccepted(t *testing.T) {
	eachStore(t, testExpiredInvitationCannotBeAccepted)
}

func testExpiredInvitationCannotBeAccepted(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	soon := time.Now().Add(time.Hour)
	d, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia", Expires: &soon})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return soon.Add(time.Second) }
	if _, err := s.Transition(ctx, d.ID, "accept"); !errors.Is(err, ErrConflict) {
		t.Fatalf("accept after expiry: %v", err)
	}
}

func TestFactsAndResolverInvalidation(t *testing.T) { eachStore(t, testFactsAndResolverInvalidation) }

func testFactsAndResolverInvalidation(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	var prepared atomic.Int32
	r := NewResolver(s, 100, func(f *Facts, _ time.Time) *Facts { prepared.Add(1); return f }, nil)

	first, _, err := r.Resolve(ctx, "leo", "acme")
	if err != nil || first.Facts.Member == nil || first.Facts.Member.Role != "location_manager" || first.Facts.Tenant.Owner != "olivia" {
		t.Fatalf("facts: %+v %v", first, err)
	}
	again, hit, _ := r.Resolve(ctx, "leo", "acme")
	if again != first || !hit || prepared.Load() != 1 || again.Version != first.Version || again.Prepared != first.Facts {
		t.Fatal("second lookup missed the cache")
	}
	// A write invalidates at once.
	if _, err := s.SetMemberStatus(ctx, "leo", "acme", "deactivated"); err == nil {
		t.Fatal("argument order check: tenant comes first")
	}
	if _, err := s.SetMemberStatus(ctx, "acme", "leo", "deactivated"); err != nil {
		t.Fatal(err)
	}
	after, _, _ := r.Resolve(ctx, "leo", "acme")
	if after == first || after.Facts.Member.Status != "deactivated" || after.Version == first.Version {
		t.Fatalf("after deactivation: %+v (version %d, was %d)", after.Facts.Member, after.Version, first.Version)
	}
	// A write about someone else is seen (the facts are read again) but
	// keeps the same Resolved and Version: what callers keyed on the
	// version stays valid.
	preparedBefore := prepared.Load()
	if _, err := s.PutMember(ctx, Member{Tenant: "acme", User: "ann", Role: "account_manager"}); err != nil {
		t.Fatal(err)
	}
	same, hit, _ := r.Resolve(ctx, "leo", "acme")
	if same != after || hit || prepared.Load() != preparedBefore || same.Version != after.Version {
		t.Fatalf("an unrelated write replaced leo's entry (same=%v hit=%v prepared %d→%d)", same == after, hit, preparedBefore, prepared.Load())
	}
	if again, hit, _ := r.Resolve(ctx, "leo", "acme"); again != after || !hit {
		t.Fatal("the re-read entry is not cached again")
	}
	// Partner facts.
	d, _ := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia"})
	pf, _, _ := r.Resolve(ctx, "pat", "acme")
	if pf.Facts.Partner != "partnerco" || pf.Facts.Delegation == nil || pf.Facts.Delegation.Status != "invited" || pf.Facts.Member != nil {
		t.Fatalf("partner facts: %+v", pf.Facts)
	}
	_, _ = s.Transition(ctx, d.ID, "accept")
	invited := pf.Version
	if pf, _, _ = r.Resolve(ctx, "pat", "acme"); pf.Facts.Delegation.Status != "accepted" || pf.Version == invited {
		t.Fatalf("after accept: %+v (version %d, was %d)", pf.Facts.Delegation, pf.Version, invited)
	}
	if none, _, err := r.Resolve(ctx, "leo", "no-such-tenant"); err != nil || none.Facts != nil {
		t.Fatalf("unknown tenant: %+v %v", none, err)
	}
	// Bounded; a version is never given out twice, eviction or not.
	small := NewResolver[any](s, 2, nil, nil)
	seen := map[uint64]bool{}
	for range 3 {
		for _, u := range []string{"a", "b", "c", "d"} {
			res, hit, _ := small.Resolve(ctx, u, "acme")
			if !hit && seen[res.Version] {
				t.Fatalf("version %d given out twice", res.Version)
			}
			seen[res.Version] = true
		}
	}
	if small.Len() > 2 {
		t.Fatalf("cache holds %d entries, bound 2", small.Len())
	}
}

// Lookups and writes together, for the race detector: every result is
// whole, and a version names one set of facts.
func TestResolverConcurrentUse(t *testing.T) { eachStore(t, testResolverConcurrentUse) }

func testResolverConcurrentUse(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	r := NewResolver(s, 4, func(f *Facts, _ time.Time) string {
		if f == nil || f.Member == nil {
			return ""
		}
		return f.Member.Status
	}, nil)
	var mu sync.Mutex
	byVersion := map[uint64]string{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if g == 0 && i%10 == 0 {
					status := []string{"active", "deactivated"}[i/10%2]
					if _, err := s.SetMemberStatus(ctx, "acme", "leo", status); err != nil {
						t.Error(err)
						return
					}
				}
				user := []string{"leo", "ann", "pat", "olivia", "zoe"}[(g+i)%5]
				res, _, err := r.Resolve(ctx, user, "acme")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, ok := byVersion[res.Version]; ok && prev != user+"/"+res.Prepared {
					t.Errorf("version %d names %s and %s", res.Version, prev, user+"/"+res.Prepared)
				}
				byVersion[res.Version] = user + "/" + res.Prepared
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// A write from another process (portero admin on the same file) is noticed.
func TestWritesFromAnotherProcessInvalidate(t *testing.T) {
	eachStore(t, testWritesFromAnotherProcessInvalidate)
}

func testWritesFromAnotherProcessInvalidate(t *testing.T) {
	s, path := openStore(t)
	seed(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.WatchWrites(ctx, 10*time.Millisecond)
	other, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for !s.Live() || s.Listening() != nil { // PostgreSQL: until it listens
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // SQLite: let the watcher take its first reading
	gen := s.Generation()
	if _, err := other.SetMemberStatus(context.Background(), "acme", "leo", "deactivated"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Generation() == gen {
		if time.Now().After(deadline) {
			t.Fatal("the other process's write was not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStoreErrorIsReturned(t *testing.T) { eachStore(t, testStoreErrorIsReturned) }

func testStoreErrorIsReturned(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	r := NewResolver[any](s, 10, nil, nil)
	s.Close()
	if _, _, err := r.Resolve(context.Background(), "leo", "acme"); err == nil {
		t.Fatal("a closed store resolved facts")
	}
}

func TestTenantListingPages(t *testing.T) { eachStore(t, testTenantListingPages) }

func testTenantListingPages(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	for _, id := range []string{"acme", "acme-eu", "globex", "initech"} {
		if _, err := s.CreateTenant(ctx, Tenant{ID: id, Name: "Tenant " + id}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.Tenants(ctx, "acme", 1, 1)
	if err != nil || page.Total != 2 || len(page.Tenants) != 1 || page.Tenants[0].ID != "acme-eu" {
		t.Fatalf("%+v %v", page, err)
	}
	if page, _ := s.Tenants(ctx, "%", 10, 0); page.Total != 0 {
		t.Fatalf("LIKE wildcard not escaped: %d", page.Total)
	}
}

// A cached lookup ends when its delegation expires, so facts prepared from
// the time (such as "expired") are recomputed then.
func TestCachedFactsEndWhenTheDelegationExpires(t *testing.T) {
	eachStore(t, testCachedFactsEndWhenTheDelegationExpires)
}

func testCachedFactsEndWhenTheDelegationExpires(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	expires := time.Now().Add(30 * time.Second)
	d, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia", Expires: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, d.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	var preparedAt []time.Time
	now := time.Now()
	r := NewResolver(s, 10, func(_ *Facts, now time.Time) time.Time { preparedAt = append(preparedAt, now); return now },
		func() time.Time { return now })
	first, hit, _ := r.Resolve(ctx, "pat", "acme")
	if hit {
		t.Fatal("first lookup hit")
	}
	now = expires.Add(-time.Second)
	if res, hit, _ := r.Resolve(ctx, "pat", "acme"); !hit || res.Version != first.Version {
		t.Fatal("lookup before expiry missed")
	}
	now = expires.Add(time.Second)
	after, hit, _ := r.Resolve(ctx, "pat", "acme")
	if hit {
		t.Fatal("lookup after the delegation expired came from the cache")
	}
	if len(preparedAt) != 2 || !preparedAt[1].After(expires) || !after.Prepared.After(expires) {
		t.Fatalf("prepared at %v", preparedAt)
	}
	// The same facts prepared at another time are another version.
	if after.Version == first.Version || !reflect.DeepEqual(after.Facts, first.Facts) {
		t.Fatalf("after expiry: version %d (was %d), facts equal %v", after.Version, first.Version, reflect.DeepEqual(after.Facts, first.Facts))
	}
}

// TestStartMasterDecidesOnTheCallersClock: the gateway decides expiry on
// its clock; the store must not call a start "expired" by its own.
func TestStartMasterDecidesOnTheCallersClock(t *testing.T) {
	eachStore(t, testStartMasterDecidesOnTheCallersClock)
}

func testStartMasterDecidesOnTheCallersClock(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	if _, err := s.CreateTenant(ctx, Tenant{ID: "acme", Name: "Acme", MasterAccess: true}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	m := MasterSession{Admin: "sam", Session: "s1", Tenant: "acme", Reason: "ticket 42: billing", Mode: "full", StartedAt: start, ExpiresAt: start.Add(2 * time.Second)}
	got, err := s.StartMaster(ctx, m)
	if err != nil || !got.StartedAt.Equal(start) {
		t.Fatalf("start on the caller's clock: %+v, %v", got, err)
	}
	var fe *FieldError
	m.Admin, m.ExpiresAt = "ada", start
	if _, err := s.StartMaster(ctx, m); !errors.As(err, &fe) || fe.Field != "duration" {
		t.Fatalf("no time at all: %v", err)
	}
	m.StartedAt, m.ExpiresAt = time.Time{}, time.Now().Add(-time.Second)
	if _, err := s.StartMaster(ctx, m); !errors.As(err, &fe) || fe.Field != "duration" {
		t.Fatalf("in the past on the store's clock: %v", err)
	}
}

func TestFactsLookup(t *testing.T) { eachStore(t, testFactsLookup) }

// The facts lookup reads the tenant with the member, the open master
// session and the partner organisation joined to it: each is there exactly
// when it applies, and absent ones leave nothing behind.
func testFactsLookup(t *testing.T) {
	s, _ := openStore(t)
	seed(t, s)
	ctx := context.Background()
	now := time.Now()
	facts := func(user string) *Facts {
		t.Helper()
		f, err := s.Facts(ctx, user, "acme", now)
		if err != nil || f == nil || f.Tenant == nil || f.Tenant.ID != "acme" || f.Tenant.Owner != "olivia" || !f.Tenant.MasterAccess {
			t.Fatalf("%s: %+v %v", user, f, err)
		}
		return f
	}
	if f := facts("zoe"); f.Member != nil || f.Master != nil || f.Partner != "" || f.Delegation != nil {
		t.Fatalf("a stranger: %+v", f)
	}
	leo := facts("leo")
	if m := leo.Member; m == nil || m.Role != "location_manager" || !slices.Equal(m.Locations, []string{"l1"}) ||
		m.Features["reviews"] != "read" || !slices.Equal(m.Fields["profile_listings"], []string{"phone", "hours"}) || leo.Master != nil || leo.Partner != "" {
		t.Fatalf("a member: %+v %+v", leo, leo.Member)
	}
	// A member who is also a partner's user, with a delegation.
	if _, err := s.PutPartnerUser(ctx, PartnerUser{Partner: "partnerco", User: "leo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "limited", Products: []string{"reviews"}, InvitedBy: "olivia"}); err != nil {
		t.Fatal(err)
	}
	if f := facts("leo"); f.Member == nil || f.Partner != "partnerco" || f.Delegation == nil || f.Delegation.Status != "invited" {
		t.Fatalf("a member and partner user: %+v", f)
	}
	if _, err := s.SetPartnerUserStatus(ctx, "partnerco", "leo", "deactivated"); err != nil {
		t.Fatal(err)
	}
	if f := facts("leo"); f.Partner != "" || f.Delegation != nil || f.Member == nil {
		t.Fatalf("a deactivated partner user: %+v", f)
	}
	// An admin's open master session for this tenant, until it ends or
	// expires; another admin's is not theirs.
	m, err := s.StartMaster(ctx, MasterSession{Admin: "sam", Session: "s1", Tenant: "acme", Reason: "ticket 7", Mode: "read_only",
		StartedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if f := facts("sam"); f.Master == nil || f.Master.ID != m.ID || f.Master.Mode != "read_only" || f.Master.EndedAt != nil || f.Member != nil {
		t.Fatalf("an admin in master access: %+v", f)
	}
	if f := facts("leo"); f.Master != nil {
		t.Fatalf("another user has the admin's session: %+v", f.Master)
	}
	if f, _ := s.Facts(ctx, "sam", "acme", now.Add(2*time.Hour)); f.Master != nil {
		t.Fatalf("an expired session: %+v", f.Master)
	}
	if _, err := s.EndMaster(ctx, m.ID, "ended", "sam"); err != nil {
		t.Fatal(err)
	}
	if f := facts("sam"); f.Master != nil {
		t.Fatalf("an ended session: %+v", f.Master)
	}
	if f, err := s.Facts(ctx, "leo", "no-such-tenant", now); f != nil || err != nil {
		t.Fatalf("an unknown tenant: %+v %v", f, err)
	}
}
