package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-gateway/portero/audit"
)

func events(t *testing.T, s *Store) []string {
	t.Helper()
	recs, err := s.AuditRecords(context.Background(), AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(recs) - 1; i >= 0; i-- {
		out = append(out, recs[i].Event)
	}
	return out
}

// Every change through the store commits with its record, which names who
// made it and the state after it; the chain verifies.
func TestEveryChangeIsRecorded(t *testing.T) { eachStore(t, testEveryChangeIsRecorded) }

func testEveryChangeIsRecorded(t *testing.T) {
	s, _ := openStore(t)
	ctx := WithActor(context.Background(), "olivia")
	seed(t, s)
	if _, err := s.SetMemberStatus(ctx, "acme", "leo", "deactivated"); err != nil {
		t.Fatal(err)
	}
	d, err := s.Invite(ctx, Delegation{Tenant: "acme", Partner: "partnerco", Scope: "full", InvitedBy: "olivia"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, d.ID, "accept"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, "acme", "leo"); err != nil {
		t.Fatal(err)
	}
	// A refused change writes nothing, record included.
	if _, err := s.Transition(ctx, d.ID, "accept"); !errors.Is(err, ErrConflict) {
		t.Fatalf("accept twice: %v", err)
	}
	if _, err := s.Import(ctx, strings.NewReader(`{"tenant": {"id": "beta", "name": "Beta"}}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ms, err := s.StartMaster(ctx, MasterSession{Admin: "sam", Session: "s1", Tenant: "acme", Reason: "ticket 1", Mode: "full", StartedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndMaster(ctx, ms.ID, "revoked", "ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, audit.Record{Event: audit.EventRefuse, Admin: "mallory", Tenant: "acme", Detail: "csrf.invalid"}); err != nil {
		t.Fatal(err)
	}
	want := "tenant.create member.put partner.create partner_user.put member.status delegation.invite delegation.accept member.remove import start revoke refused"
	if got := strings.Join(events(t, s), " "); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	recs, _ := s.AuditRecords(ctx, AuditFilter{Tenant: "acme", Limit: 100})
	for _, rec := range recs {
		if rec.Event == "member.status" && (rec.By != "olivia" || !strings.Contains(string(rec.Data), `"status":"deactivated"`) || rec.Object != "member acme/leo") {
			t.Errorf("member.status record: %+v %s", rec, rec.Data)
		}
		if rec.Event == "member.remove" && rec.Data != nil {
			t.Errorf("a removal carries no state: %s", rec.Data)
		}
	}
	sum, err := audit.VerifyTrail(ctx, s, nil)
	if err != nil || sum.Records != 12 {
		t.Fatalf("verify: %+v %v", sum, err)
	}
}

// Checkpoints: the head is signed once per move; cutting the tail off, or
// rewriting a checkpointed record, is found; a foreign key is refused.
func TestCheckpointsFindACutTail(t *testing.T) { eachStore(t, testCheckpointsFindACutTail) }

func testCheckpointsFindACutTail(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	seed(t, s)
	if _, wrote, err := s.Checkpoint(ctx, key); err != nil || !wrote {
		t.Fatalf("checkpoint: %v %v", wrote, err)
	}
	if _, wrote, _ := s.Checkpoint(ctx, key); wrote {
		t.Fatal("a checkpoint of an unmoved head")
	}
	if _, err := s.Record(ctx, audit.Record{Event: audit.EventRefuse, Admin: "m", Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	cp, wrote, err := s.Checkpoint(ctx, key)
	if err != nil || !wrote || cp.Seq != 5 {
		t.Fatalf("second checkpoint: %+v %v %v", cp, wrote, err)
	}
	if sum, err := audit.VerifyTrail(ctx, s, &key.PublicKey); err != nil || sum.Checkpoints != 2 || sum.Last.Seq != 5 {
		t.Fatalf("verify: %+v %v", sum, err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := audit.VerifyTrail(ctx, s, &other.PublicKey); err == nil || !strings.Contains(err.Error(), "newest checkpoint (record 5") {
		t.Fatalf("checkpoints verified with another key: %v", err)
	}
	// After a key rotation the newest checkpoint is by the new key; older
	// ones by the old key still count.
	if _, err := s.Record(ctx, audit.Record{Event: audit.EventRefuse, Admin: "m", Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Checkpoint(ctx, other); err != nil {
		t.Fatal(err)
	}
	if sum, err := audit.VerifyTrail(ctx, s, &other.PublicKey); err != nil || sum.OtherKeys != 2 {
		t.Fatalf("after a key rotation: %+v %v", sum, err)
	}
	// The table refuses to be rewritten...
	raw := rawDB(t, path)
	if _, err := raw.Exec(`DELETE FROM audit_log WHERE seq = 5`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("delete from the trail: %v", err)
	}
	// ...and someone who drops the guard and cuts the tail is caught.
	if _, err := raw.Exec(dropGuard(t, "delete") + `; DELETE FROM audit_log WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	_, err = audit.VerifyTrail(ctx, s, &other.PublicKey)
	var be *audit.BreakError
	if !errors.As(err, &be) || be.Seq != 6 || !strings.Contains(err.Error(), "tail was cut off") {
		t.Fatalf("cut tail: %v", err)
	}
	// An edited record is named.
	if _, err := raw.Exec(dropGuard(t, "update") + `; UPDATE audit_log SET record = replace(record, 'olivia', 'oliver') WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyTrail(ctx, s, &other.PublicKey); !errors.As(err, &be) || be.Seq != 1 || !strings.Contains(err.Error(), "edited") {
		t.Fatalf("edited record: %v", err)
	}
}

// dropGuard is the SQL that drops the trail's append-only guard against
// op ("update" or "delete"), as someone tampering with the database would.
func dropGuard(t *testing.T, op string) string {
	if onPostgres(t) {
		return `DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log`
	}
	return `DROP TRIGGER audit_log_no_` + op
}

// rawDB opens the store's database directly, past the store.
func rawDB(t *testing.T, target string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+target+"?_pragma=busy_timeout(5000)"
	if IsPostgres(target) {
		driver, dsn = "pgx", target
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Writers in two processes on one file (two stores here), at once: every
// write succeeds (immediate transactions wait for the lock and retry), and
// the trail stays one chain.
func TestConcurrentWritersNeverFail(t *testing.T) { eachStore(t, testConcurrentWritersNeverFail) }

func testConcurrentWritersNeverFail(t *testing.T) {
	s1, path := openStore(t)
	s2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	seed(t, s1)
	if _, err := s1.CreateTenant(context.Background(), Tenant{ID: "beta", Name: "Beta", Owner: "bob", MasterAccess: true}); err != nil {
		t.Fatal(err)
	}
	const loops = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4*loops)
	for i, s := range []*Store{s1, s2, s1, s2} {
		tenant := []string{"acme", "beta"}[i%2]
		admin := []string{"sam", "sam", "ada", "ada"}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range loops {
				now := time.Now()
				ms, err := s.StartMaster(ctx, MasterSession{Admin: admin, Session: admin + tenant, Tenant: tenant, Reason: "parallel", Mode: "full", StartedAt: now, ExpiresAt: now.Add(time.Hour)})
				if err == nil {
					_, err = s.EndMaster(ctx, ms.ID, "ended", admin)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sum, err := audit.VerifyTrail(context.Background(), s1, nil)
	if err != nil || sum.Records != 5+2*4*loops {
		t.Fatalf("trail: %+v %v", sum, err)
	}
}

// An audit log written by an older Portero is imported into an empty
// trail verbatim, and the chain continues from it.
func TestImportAuditContinuesTheChain(t *testing.T) { eachStore(t, testImportAuditContinuesTheChain) }

func testImportAuditContinuesTheChain(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	var raws [][]byte
	prev := ""
	for i := 1; i <= 3; i++ {
		rec := audit.Record{Seq: int64(i), Time: time.Unix(int64(i), 0), Event: audit.EventStart, Admin: "sam", Tenant: "acme", Prev: prev}
		line, _ := audit.Seal(&rec)
		raws = append(raws, line)
		prev = rec.Hash
	}
	if err := s.ImportAudit(ctx, raws); err != nil {
		t.Fatal(err)
	}
	seed(t, s)
	if sum, err := audit.VerifyTrail(ctx, s, nil); err != nil || sum.Records != 7 {
		t.Fatalf("after import: %+v %v", sum, err)
	}
	if err := s.ImportAudit(ctx, raws); !errors.Is(err, ErrConflict) {
		t.Fatalf("import into a trail that is not empty: %v", err)
	}
}
