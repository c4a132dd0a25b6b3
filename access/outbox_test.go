package access

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portero-gateway/portero/audit"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openOutboxStores opens n stores on one empty database, all on clk.
func openOutboxStores(t *testing.T, clk *clock, n int) []*Store {
	t.Helper()
	target := newTarget(t)
	var out []*Store
	for range n {
		s, err := Open(context.Background(), target, WithClock(clk.now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

// queue queues messages in one writing transaction, as a change does.
func queue(t *testing.T, s *Store, ms ...Mail) {
	t.Helper()
	err := s.write(context.Background(), "test.queue", func(tx *dbTx) ([]audit.Record, error) {
		for _, m := range ms {
			if err := s.enqueueMail(context.Background(), tx, m); err != nil {
				return nil, err
			}
		}
		return []audit.Record{{Event: "test.queue"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func counts(t *testing.T, s *Store) map[string]int {
	t.Helper()
	c, err := s.MailCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOutboxLifecycle(t *testing.T) { eachStore(t, testOutboxLifecycle) }

func testOutboxLifecycle(t *testing.T) {
	clk := newClock()
	s := openOutboxStores(t, clk, 1)[0]
	ctx := context.Background()
	queue(t, s,
		Mail{Key: "k1", Kind: "partner_invitation", Tenant: "acme", To: "pat@example.com", Lang: "es", Data: map[string]any{"accept_path": "/a", "n": 3}},
		Mail{Key: "k1", Kind: "partner_invitation", Tenant: "acme", To: "other@example.com"}, // the same event: nothing more
		Mail{Key: "k2", Kind: "partnership_revoked", To: "pat@example.com"},
		Mail{Key: "k3", Kind: "master_access_started", To: "  "}, // no recipient: not queued
	)
	queue(t, s, Mail{Key: "k2", Kind: "partnership_revoked", To: "pat@example.com"}) // a retried write
	if c := counts(t, s); c["queued"] != 2 || c["sending"] != 0 || c["sent"] != 0 || c["failed"] != 0 {
		t.Fatalf("counts %v", c)
	}
	m, err := s.MailByKey(ctx, "k1")
	if err != nil || m.To != "pat@example.com" || m.Lang != "es" || m.Data["accept_path"] != "/a" || m.Data["n"] != 3.0 || m.Status != "queued" {
		t.Fatalf("k1: %+v %v", m, err)
	}
	if _, err := s.MailByKey(ctx, "k3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("k3 queued without a recipient: %v", err)
	}

	// Claiming, marking and retrying are not changes of access: no
	// generation move, no audit record.
	gen := s.Generation()
	claimed, err := s.ClaimMail(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %d %v", len(claimed), err)
	}
	for _, m := range claimed {
		if m.Status != "sending" || m.Attempts != 1 || m.LeaseUntil == nil || !m.LeaseUntil.Equal(clk.now().Add(time.Minute)) {
			t.Fatalf("claimed %+v", m)
		}
	}
	if again, err := s.ClaimMail(ctx, 10, time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("claimed twice while leased: %d %v", len(again), err)
	}
	byKey := map[string]*OutboxMail{}
	for _, m := range claimed {
		byKey[m.Key] = m
	}
	if err := s.MarkMailSent(ctx, byKey["k1"]); err != nil {
		t.Fatal(err)
	}
	next := clk.now().Add(30 * time.Second)
	if err := s.RetryMail(ctx, byKey["k2"], next, "451 try later"); err != nil {
		t.Fatal(err)
	}
	if s.Generation() != gen {
		t.Fatalf("the sender's writes moved the generation %d → %d", gen, s.Generation())
	}
	if c := counts(t, s); c["queued"] != 1 || c["sent"] != 1 {
		t.Fatalf("counts %v", c)
	}
	if due, err := s.NextMailDue(ctx); err != nil || !due.Equal(next) {
		t.Fatalf("next due %v %v, want %v", due, err, next)
	}
	// Not due yet, then due.
	if c, _ := s.ClaimMail(ctx, 10, time.Minute); len(c) != 0 {
		t.Fatalf("claimed before it was due: %+v", c[0])
	}
	clk.add(30 * time.Second)
	c, err := s.ClaimMail(ctx, 10, time.Minute)
	if err != nil || len(c) != 1 || c[0].Key != "k2" || c[0].Attempts != 2 || c[0].LastError != "451 try later" {
		t.Fatalf("retry claim: %+v %v", c, err)
	}
	if err := s.FailMail(ctx, c[0], "gave up"); err != nil {
		t.Fatal(err)
	}
	sent, _ := s.MailByKey(ctx, "k1")
	failed, _ := s.MailByKey(ctx, "k2")
	if sent.Status != "sent" || sent.SentAt == nil || sent.LeaseUntil != nil || failed.Status != "failed" || failed.LastError != "gave up" {
		t.Fatalf("after marking: %+v %+v", sent, failed)
	}
	if due, err := s.NextMailDue(ctx); err != nil || !due.IsZero() {
		t.Fatalf("next due with nothing queued: %v %v", due, err)
	}
	if l, err := s.Mails(ctx, "failed", "", 0); err != nil || len(l) != 1 || l[0].Key != "k2" {
		t.Fatalf("list failed: %v %v", l, err)
	}
	if l, err := s.Mails(ctx, "", "acme", 0); err != nil || len(l) != 1 || l[0].Key != "k1" {
		t.Fatalf("list acme: %v %v", l, err)
	}
	if _, err := s.Mails(ctx, "lost", "", 0); err == nil {
		t.Fatal("an unknown status was accepted")
	}
	// Purging removes what is done and older than the retention.
	clk.add(time.Hour)
	queue(t, s, Mail{Key: "k4", Kind: "partnership_revoked", To: "pat@example.com"})
	if n, err := s.PurgeMail(ctx, clk.now().Add(-time.Minute)); err != nil || n != 2 {
		t.Fatalf("purged %d %v", n, err)
	}
	if c := counts(t, s); c["queued"] != 1 || c["sent"] != 0 || c["failed"] != 0 {
		t.Fatalf("counts after purge %v", c)
	}
}

// A message whose queuing transaction rolls back is not in the outbox: it
// commits with the change it announces, or not at all.
func TestOutboxRollsBackWithTheChange(t *testing.T) { eachStore(t, testOutboxRollsBackWithTheChange) }

func testOutboxRollsBackWithTheChange(t *testing.T) {
	s := openOutboxStores(t, newClock(), 1)[0]
	ctx := context.Background()
	err := s.write(ctx, "test.fail", func(tx *dbTx) ([]audit.Record, error) {
		if err := s.enqueueMail(ctx, tx, Mail{Key: "lost", Kind: "partnership_revoked", To: "pat@example.com"}); err != nil {
			return nil, err
		}
		return nil, conflict("the change failed")
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatal(err)
	}
	if c := counts(t, s); c["queued"] != 0 {
		t.Fatalf("a rolled-back message is queued: %v", c)
	}
}

// A sender that stops (crash, lost database) leaves its claim; once the
// lease runs out another sender claims it, and the first one's late mark
// is refused.
func TestOutboxLeaseExpiry(t *testing.T) { eachStore(t, testOutboxLeaseExpiry) }

func testOutboxLeaseExpiry(t *testing.T) {
	clk := newClock()
	stores := openOutboxStores(t, clk, 2)
	a, b := stores[0], stores[1]
	ctx := context.Background()
	queue(t, a, Mail{Key: "k", Kind: "partnership_revoked", To: "pat@example.com"})
	first, err := a.ClaimMail(ctx, 1, time.Minute)
	if err != nil || len(first) != 1 {
		t.Fatalf("%v %v", first, err)
	}
	clk.add(59 * time.Second)
	if c, _ := b.ClaimMail(ctx, 1, time.Minute); len(c) != 0 {
		t.Fatal("claimed inside another sender's lease")
	}
	if due, _ := b.NextMailDue(ctx); !due.Equal(*first[0].LeaseUntil) {
		t.Fatalf("next due %v, want the lease's end %v", due, first[0].LeaseUntil)
	}
	clk.add(time.Second)
	second, err := b.ClaimMail(ctx, 1, time.Minute)
	if err != nil || len(second) != 1 || second[0].Attempts != 2 {
		t.Fatalf("after the lease: %+v %v", second, err)
	}
	if err := a.MarkMailSent(ctx, first[0]); !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrConflict) {
		t.Fatalf("a lost claim was marked: %v", err)
	}
	if err := b.MarkMailSent(ctx, second[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkMailSent(ctx, second[0]); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("marked twice: %v", err)
	}
}

// Two stores on one database (two replicas) claiming at once never both
// get one message, and together claim every message once.
func TestOutboxConcurrentClaims(t *testing.T) { eachStore(t, testOutboxConcurrentClaims) }

func testOutboxConcurrentClaims(t *testing.T) {
	clk := newClock()
	stores := openOutboxStores(t, clk, 2)
	ctx := context.Background()
	const total = 60
	var ms []Mail
	for i := range total {
		ms = append(ms, Mail{Key: fmt.Sprint("k", i), Kind: "partnership_revoked", To: "pat@example.com"})
	}
	queue(t, stores[0], ms...)

	var mu sync.Mutex
	claimedBy := map[string]int{}
	var dup atomic.Int32
	var wg sync.WaitGroup
	for i, s := range stores {
		for range 3 { // three senders per replica
			wg.Go(func() {
				for {
					c, err := s.ClaimMail(ctx, 4, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(c) == 0 {
						return
					}
					mu.Lock()
					for _, m := range c {
						if _, ok := claimedBy[m.Key]; ok {
							dup.Add(1)
						}
						claimedBy[m.Key] = i
					}
					mu.Unlock()
					for _, m := range c {
						if err := s.MarkMailSent(ctx, m); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	if dup.Load() != 0 || len(claimedBy) != total {
		t.Fatalf("%d messages claimed twice, %d of %d claimed", dup.Load(), len(claimedBy), total)
	}
	if c := counts(t, stores[1]); c["sent"] != total {
		t.Fatalf("counts %v", c)
	}
	per := map[int]int{}
	for _, i := range claimedBy {
		per[i]++
	}
	t.Logf("claimed per replica: %v", per)
}

// EnqueueMail, for messages that announce no change, neither audits nor
// moves the generation; a message without key or kind is refused.
func TestEnqueueMail(t *testing.T) { eachStore(t, testEnqueueMail) }

func testEnqueueMail(t *testing.T) {
	s := openOutboxStores(t, newClock(), 1)[0]
	ctx := context.Background()
	gen := s.Generation()
	if err := s.EnqueueMail(ctx, Mail{Key: "test:1", Kind: "test", To: "olivia@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueMail(ctx, Mail{Kind: "test", To: "olivia@example.com"}); err == nil {
		t.Fatal("a message without a key was queued")
	}
	if s.Generation() != gen {
		t.Fatal("EnqueueMail moved the generation")
	}
	if c := counts(t, s); c["queued"] != 1 {
		t.Fatalf("counts %v", c)
	}
}

// setTenantMail sets a tenant's owner e-mail and whether they are told of
// master access, as the tenant settings do.
func setTenantMail(t *testing.T, s *Store, tenant, email string, notify bool) {
	t.Helper()
	_, err := s.commit(context.Background(), "test.tenant", true, func(tx *dbTx) ([]audit.Record, error) {
		_, err := tx.ExecContext(context.Background(), `UPDATE tenants SET owner_email = ?, notify_master = ? WHERE id = ?`, email, b2i(notify), tenant)
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Master access started and ended are mailed to the tenant's owner in the
// transaction that records them, once per session and event, unless the
// tenant turned it off.
func TestMasterAccessMails(t *testing.T) { eachStore(t, testMasterAccessMails) }

func testMasterAccessMails(t *testing.T) {
	clk := newClock()
	s := openOutboxStores(t, clk, 1)[0]
	ctx := context.Background()
	seed(t, s)
	setTenantMail(t, s, "acme", "olivia@acme.example", true)
	start := func(admin string, d time.Duration) *MasterSession {
		t.Helper()
		m, err := s.StartMaster(ctx, MasterSession{Admin: admin, Session: "sess-" + admin, Tenant: "acme", Reason: "ticket 42: broken listing",
			Ticket: "SUP-42", Mode: "read_only", ExpiresAt: clk.now().Add(d)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := start("sam", time.Hour)
	got, err := s.MailByKey(ctx, "master_access_started:"+m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"tenant_name": "Acme", "admin": "sam", "reason": "ticket 42: broken listing", "ticket": "SUP-42", "mode": "read_only",
		"expires_at": clk.now().Add(time.Hour).Format(time.RFC3339)}
	if got.To != "olivia@acme.example" || got.Tenant != "acme" || got.Kind != "master_access_started" || fmt.Sprint(got.Data) != fmt.Sprint(want) {
		t.Fatalf("start mail %+v", got)
	}
	clk.add(time.Minute)
	if _, err := s.EndMaster(ctx, m.ID, "revoked", "olivia"); err != nil {
		t.Fatal(err)
	}
	got, err = s.MailByKey(ctx, "master_access_ended:"+m.ID)
	if err != nil || got.Data["end_reason"] != "revoked" || got.Data["ended_at"] != clk.now().Format(time.RFC3339) || got.Data["admin"] != "sam" {
		t.Fatalf("end mail %+v %v", got, err)
	}
	// A session past its expiry, ended when the admin starts another,
	// is mailed as expired.
	old := start("sam", time.Minute)
	clk.add(2 * time.Minute)
	start("sam", time.Hour)
	got, err = s.MailByKey(ctx, "master_access_ended:"+old.ID)
	if err != nil || got.Data["end_reason"] != "expired" || got.Data["ended_at"] != old.ExpiresAt.UTC().Format(time.RFC3339) {
		t.Fatalf("expiry mail %+v %v", got, err)
	}
	if c := counts(t, s); c["queued"] != 5 {
		t.Fatalf("counts %v, want 5 queued (3 starts, 2 ends)", c)
	}
	// Turned off: nothing more.
	setTenantMail(t, s, "acme", "olivia@acme.example", false)
	start("ana", time.Hour)
	if c := counts(t, s); c["queued"] != 5 {
		t.Fatalf("mailed with notify_master off: %v", c)
	}
}
