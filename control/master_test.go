package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/internal/gatewaytest"
)

func TestMasterAccessLifecycle(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/t/acme/", samClaims())
	page := "http://localhost/t/acme/reviews"

	// Before: the admin is not a member of acme.
	if rec := m.B.Do("GET", page, nil, nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), "member.none") {
		t.Fatalf("before master access: %d %s", rec.Code, rec.Body)
	}
	// A short reason is refused with a field error, and nothing starts.
	if rec := m.Start(t, "acme", "because", "full", "10m"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "at least 10 characters") {
		t.Fatalf("short reason: %d %s", rec.Code, rec.Body)
	}
	if rec := m.Start(t, "acme", "Ticket SUP-42: the owner cannot log in", "full", "9h"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "At most 4h0m0s") {
		t.Fatalf("too long: %d %s", rec.Code, rec.Body)
	}
	// A tenant that forbids it.
	if rec := m.Start(t, "locked", "Ticket SUP-43: routine check of settings", "full", "10m"); rec.Code != 403 || !strings.Contains(rec.Body.String(), "master.forbidden_by_tenant") {
		t.Fatalf("locked tenant: %d %s", rec.Code, rec.Body)
	}

	// Start.
	rec := m.Start(t, "acme", "Ticket SUP-42: the owner cannot log in", "full", "10m")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/t/acme/" {
		t.Fatalf("start: %d %q %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	if v := m.Metric(t, "portero_master_access_active"); v != 1 {
		t.Errorf("portero_master_access_active = %v", v)
	}
	// The alert on a session open past master_access.max_duration compares
	// these two.
	if v, want := m.Metric(t, "portero_master_access_oldest_started_timestamp_seconds"), float64(m.Clock.Now().Unix()); v != want {
		t.Errorf("portero_master_access_oldest_started_timestamp_seconds = %v, want %v (the start)", v, want)
	}
	if v := m.Metric(t, "portero_master_access_max_duration_seconds"); v != 4*3600 {
		t.Errorf("portero_master_access_max_duration_seconds = %v, want 14400", v)
	}
	// While active: the owner's access, impersonation headers, and none of
	// the client's copies.
	rec = m.B.Do("POST", page, nil, hostile)
	if rec.Code != 200 {
		t.Fatalf("under master access: %d %s", rec.Code, rec.Body)
	}
	got := m.UpstreamSaw(t)
	want := map[string]string{
		"X-Portero-User": "olivia", "X-Portero-Tenant": "acme", "X-Portero-Role": "administrator",
		"X-Portero-Impersonator": "sam", "X-Portero-Impersonation-Reason": "Ticket SUP-42: the owner cannot log in",
		"X-Portero-Impersonation-Mode": "full",
	}
	for k, v := range want {
		if vals := got.Header.Values(k); len(vals) != 1 || vals[0] != v {
			t.Errorf("%s = %q, want %q", k, vals, v)
		}
	}
	id := got.Header.Get("X-Portero-Impersonation-Id")
	if !strings.HasPrefix(id, "ma_") || got.Header.Get("X-Portero-Impersonation-Expires") == "" {
		t.Errorf("impersonation id/expiry: %v", got.Header)
	}
	for name := range impersonationHeaders(got.Header) {
		if strings.HasPrefix(strings.ToLower(name), "impersonate") {
			t.Errorf("client header %s reached the app", name)
		}
	}
	if strings.Contains(strings.Join(got.Header.Values("X-Portero-Impersonator"), ","), "mallory") {
		t.Error("a client's X-Portero-Impersonator reached the app")
	}
	checkAssertion(m, t, got.Header.Get("X-Portero-Assertion"), "olivia", "sam")
	if !strings.Contains(m.Logs.String(), `"master_access_id":"`+id+`"`) {
		t.Error("the decision log does not mark the request with the master-access id")
	}
	// The same admin with a bearer token is themself.
	if rec := m.Do(t, "GET", page, m.Iss.Sign(t, m.Iss.Claims("sam", "portero")), nil, ""); rec.Code != 403 {
		t.Errorf("sam's bearer token under someone else's session: %d", rec.Code)
	}

	// End: back to the admin panel, and the very next request is plain.
	rec = m.End(t)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/admin/" {
		t.Fatalf("end: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := m.B.Do("GET", page, nil, nil); rec.Code != 403 {
		t.Fatalf("after end: %d", rec.Code)
	}
	m.UpstreamSawNothing(t)

	// Read only: safe methods pass, writes are refused.
	m.MustStart(t, "acme", "Ticket SUP-44: look at the settings only", "read_only", "10m")
	if rec := m.B.Do("GET", page, nil, nil); rec.Code != 200 {
		t.Fatalf("read_only GET: %d", rec.Code)
	}
	m.UpstreamSaw(t)
	if rec := m.B.Do("DELETE", page, nil, nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), "master.read_only") {
		t.Fatalf("read_only DELETE: %d %s", rec.Code, rec.Body)
	}
	// Starting twice is a conflict.
	if rec := m.Start(t, "acme", "Ticket SUP-45: a second window by mistake", "full", "10m"); rec.Code != http.StatusConflict {
		t.Fatalf("second start: %d %s", rec.Code, rec.Body)
	}

	// Revoked by another admin through the API.
	open, _ := m.Store.MasterSessions(context.Background(), true, "sam", "", 0)
	if len(open) != 1 {
		t.Fatalf("open sessions: %d", len(open))
	}
	other := m.Iss.Claims("ada", "portero")
	other["groups"] = []string{"system-admins"}
	adaToken := m.Iss.Sign(t, other)
	list := m.Do(t, "GET", "http://localhost/.portero/api/v1/master-access", adaToken, nil, "")
	if list.Code != 200 || !strings.Contains(list.Body.String(), open[0].ID) {
		t.Fatalf("list: %d %s", list.Code, list.Body)
	}
	if rec := m.Do(t, "POST", "http://localhost/.portero/api/v1/master-access/"+open[0].ID+"/revoke", m.Iss.Sign(t, m.Iss.Claims("olivia", "portero")), nil, ""); rec.Code != 403 {
		t.Fatalf("a tenant owner revoking: %d", rec.Code)
	}
	if rec := m.Do(t, "POST", "http://localhost/.portero/api/v1/master-access/"+open[0].ID+"/revoke", adaToken, nil, ""); rec.Code != 200 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if rec := m.Do(t, "POST", "http://localhost/.portero/api/v1/master-access/"+open[0].ID+"/revoke", adaToken, nil, ""); rec.Code != 409 {
		t.Fatalf("revoke twice: %d %s", rec.Code, rec.Body)
	}
	if rec := m.B.Do("GET", page, nil, nil); rec.Code != 403 {
		t.Fatalf("after revocation: %d", rec.Code)
	}
	m.UpstreamSawNothing(t)

	// Expiry: refused once the time is up, recorded by the sweeper.
	m.MustStart(t, "acme", "Ticket SUP-46: a quick look at billing", "full", "2s")
	if rec := m.B.Do("GET", page, nil, nil); rec.Code != 200 {
		t.Fatalf("within 2s: %d", rec.Code)
	}
	m.UpstreamSaw(t)
	// One clock (the gateway's) decides expiry everywhere, so moving it is
	// enough: no waiting on the wall clock.
	m.Clock.Advance(3 * time.Second)
	if rec := m.B.Do("GET", page, nil, nil); rec.Code != http.StatusForbidden {
		t.Fatalf("after expiry: %d", rec.Code)
	}
	m.UpstreamSawNothing(t)
	m.Control.SweepExpiredMasters(context.Background())

	// Sign-out ends the session.
	m.MustStart(t, "acme", "Ticket SUP-47: check the sign-out path", "full", "10m")
	page2 := m.B.Do("GET", "http://localhost/.portero/logout", nil, nil)
	m.B.Do("POST", "http://localhost/.portero/logout", url.Values{"csrf": {csrfField.FindStringSubmatch(page2.Body.String())[1]}}, nil)
	if open, _ := m.Store.MasterSessions(context.Background(), true, "sam", "", 0); len(open) != 0 {
		t.Fatalf("sessions left open after sign-out: %+v", open[0])
	}

	// The audit trail, in order, and its chain verifies.
	events := auditEvents(m, t)
	wantEvents := "refused start end start refused revoke start expire start end"
	if strings.Join(events, " ") != wantEvents {
		t.Errorf("audit events:\n got %s\nwant %s", strings.Join(events, " "), wantEvents)
	}
	for event, n := range map[string]float64{"start": 4, "end": 2, "revoke": 1, "expire": 1, "refused": 2} {
		if v := m.Metric(t, "portero_master_access_total", "event", event); v != n {
			t.Errorf("portero_master_access_total{event=%q} = %v, want %v", event, v, n)
		}
	}
	if v := m.Metric(t, "portero_master_access_active"); v != 0 {
		t.Errorf("portero_master_access_active = %v after everything ended", v)
	}
	if v := m.Metric(t, "portero_master_access_oldest_started_timestamp_seconds"); v != 0 {
		t.Errorf("portero_master_access_oldest_started_timestamp_seconds = %v after everything ended, want 0", v)
	}
}

// auditEvents verifies the trail in the store and its export, which must
// hold the same records, and returns the events in order.
func auditEvents(m *gatewaytest.Master, t *testing.T) []string {
	t.Helper()
	sum, err := audit.VerifyTrail(context.Background(), m.Store, nil)
	if err != nil || sum.Records == 0 {
		t.Fatalf("audit trail: %d records, %v", sum.Records, err)
	}
	f, err := os.Open(m.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := audit.Verify(f); err != nil || n != sum.Records {
		t.Fatalf("audit export: %d records (the store has %d), %v", n, sum.Records, err)
	}
	raw, _ := os.ReadFile(m.AuditPath)
	var events []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
		var rec audit.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Admin != "sam" || rec.Tenant == "" {
			t.Errorf("audit record without admin or tenant: %s", line)
		}
		events = append(events, rec.Event)
	}
	return events
}

func checkAssertion(m *gatewaytest.Master, t *testing.T, token, sub, act string) {
	t.Helper()
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(m.Gateway.JWKS(), &jwks); err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var std jwt.Claims
	var extra struct {
		Act struct {
			Sub string `json:"sub"`
		} `json:"act"`
		Email string `json:"email"`
	}
	if err := tok.Claims(jwks.Keys[0].Key, &std, &extra); err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if std.Subject != sub || extra.Act.Sub != act || extra.Email != "" {
		t.Errorf("assertion sub %q act %q email %q, want %q acted by %q", std.Subject, extra.Act.Sub, extra.Email, sub, act)
	}
}

// The kubernetes header profile: Impersonate-User, repeated groups, extras.
func TestMasterAccessKubernetesProfile(t *testing.T) {
	m := newMasterHarness(t, "headers:\n  profile: kubernetes\n")
	m.B.SignIn("http://localhost/t/acme/", samClaims())
	m.MustStart(t, "acme", "Ticket SUP-50: cluster-side investigation", "full", "10m")
	if rec := m.B.Do("GET", "http://localhost/t/acme/reviews", nil, hostile); rec.Code != 200 {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	got := m.UpstreamSaw(t)
	if u := got.Header.Values("Impersonate-User"); len(u) != 1 || u[0] != "olivia" {
		t.Errorf("Impersonate-User %q", u)
	}
	if g := got.Header.Values("Impersonate-Group"); strings.Join(g, ",") != "portero:tenant:acme,portero:role:administrator" {
		t.Errorf("Impersonate-Group %q", g)
	}
	if v := got.Header.Values("Impersonate-Extra-Impersonator"); len(v) != 1 || v[0] != "sam" {
		t.Errorf("Impersonate-Extra-Impersonator %q", v)
	}
	if got.Header.Get("X-Portero-Impersonator") != "" {
		t.Error("portero-profile impersonation header in the kubernetes profile")
	}
}

// A webhook that never answers delays neither the start nor proxied
// requests: both complete while the webhook call is still hanging, and the
// failure is counted once its retries are spent.
func TestMasterAccessHangingWebhook(t *testing.T) {
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer hook.Close()
	defer close(release)
	m := newMasterHarness(t, "  webhook: "+hook.URL+"\n  webhook_timeout: 300ms\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Control.RunNotifier(ctx, []time.Duration{10 * time.Millisecond})
	m.B.SignIn("http://localhost/t/acme/", samClaims())
	m.MustStart(t, "acme", "Ticket SUP-51: the webhook is down today", "full", "10m")
	<-entered // the webhook call is now hanging
	for range 5 {
		if rec := m.B.Do("GET", "http://localhost/t/acme/reviews", nil, nil); rec.Code != 200 {
			t.Fatalf("proxied request while the webhook hangs: %d", rec.Code)
		}
		m.UpstreamSaw(t)
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.Metric(t, "portero_notify_failures_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the hanging webhook was never counted as failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Editing one record of the audit log breaks verification at that record.
func TestMasterAccessAuditTampering(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/t/acme/", samClaims())
	m.Start(t, "acme", "Ticket SUP-60: first look at the account", "full", "10m")
	m.End(t)
	m.Start(t, "acme", "Ticket SUP-61: second look at the account", "full", "10m")
	raw, _ := os.ReadFile(m.AuditPath)
	tampered := strings.Replace(string(raw), "SUP-60: first look", "SUP-60: routine look", 1)
	if tampered == string(raw) {
		t.Fatal("nothing to tamper with")
	}
	_ = os.WriteFile(m.AuditPath, []byte(tampered), 0o600)
	f, _ := os.Open(m.AuditPath)
	defer f.Close()
	_, err := audit.Verify(f)
	var be *audit.BreakError
	if err == nil || !errors.As(err, &be) || be.Line != 1 {
		t.Fatalf("tampered log: %v", err)
	}
}

// Two sign-ins of the same admin start and end master access on two
// tenants in parallel: no answer is a 5xx, each end ends the session of
// the sign-in that asked (the other one's requests keep working), and the
// trail holds every start and end.
func TestParallelEndsOfOneAdminEndTheRightSession(t *testing.T) {
	m := newMasterHarness(t, `limits:
  master_access: {per_minute: 100000, burst: 100000}
`)
	seedSQL(t, m.DBPath, `INSERT INTO tenants (id, name, owner, master_access, created_at) VALUES ('beta', 'Beta', 'bob', 1, '2026-01-01T00:00:00Z')`)
	const loops = 100 // per sign-in: 200 ends in all
	var wg sync.WaitGroup
	errs := make(chan string, 2*loops)
	for _, tenant := range []string{"acme", "beta"} {
		b := gatewaytest.NewBrowser(t, m.Harness)
		b.SignIn("http://localhost/.portero/master-access", samClaims())
		wg.Add(1)
		go func() {
			defer wg.Done()
			page := "http://localhost" + m.Control.TenantAppURL(tenant)
			csrf := func(target string) string {
				rec := b.Do("GET", target, nil, nil)
				if match := csrfField.FindStringSubmatch(rec.Body.String()); match != nil {
					return match[1]
				}
				return ""
			}
			for i := range loops {
				rec := b.Do("POST", "http://localhost/.portero/master-access", url.Values{"csrf": {csrf("http://localhost/.portero/master-access")},
					"tenant": {tenant}, "reason": {"Ticket SUP-70: parallel support"}, "mode": {"full"}, "duration": {"10m"}}, http.Header{"Origin": {"http://localhost"}})
				if rec.Code != http.StatusSeeOther {
					errs <- fmt.Sprintf("%s start %d: %d %s", tenant, i, rec.Code, rec.Body)
					return
				}
				if rec := b.Do("GET", page, nil, nil); rec.Code != http.StatusOK {
					errs <- fmt.Sprintf("%s request %d under master access: %d (the other sign-in's end ended this session?)", tenant, i, rec.Code)
					return
				}
				rec = b.Do("POST", "http://localhost/.portero/master-access/end", url.Values{"csrf": {csrf("http://localhost/.portero/master-access/end")}}, nil)
				if rec.Code != http.StatusSeeOther {
					errs <- fmt.Sprintf("%s end %d: %d %s", tenant, i, rec.Code, rec.Body)
					return
				}
				if open, err := m.Store.MasterSessions(context.Background(), true, "sam", tenant, 0); err != nil || len(open) != 0 {
					errs <- fmt.Sprintf("%s end %d left %d sessions open (%v)", tenant, i, len(open), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	all, err := m.Store.MasterSessions(context.Background(), false, "sam", "", 0)
	if err != nil || len(all) != 2*loops {
		t.Fatalf("%d sessions, %v", len(all), err)
	}
	for _, ms := range all {
		if ms.EndedAt == nil || ms.EndReason != "ended" || ms.EndedBy != "sam" {
			t.Errorf("session %s: ended %v, %q by %q", ms.ID, ms.EndedAt, ms.EndReason, ms.EndedBy)
		}
	}
	count := map[string]int{}
	for _, e := range auditEvents(m, t) {
		count[e]++
	}
	if count["start"] != 2*loops || count["end"] != 2*loops {
		t.Errorf("trail: %v", count)
	}
}

// Ending without an id ends only the session of this sign-in; with an id,
// the admin's session it names.
func TestEndWithoutIDKeepsOtherSignInsSessions(t *testing.T) {
	m := newMasterHarness(t, "")
	seedSQL(t, m.DBPath, `INSERT INTO tenants (id, name, owner, master_access, created_at) VALUES ('beta', 'Beta', 'bob', 1, '2026-01-01T00:00:00Z')`)
	m.B.SignIn("http://localhost/.portero/master-access", samClaims())
	other := gatewaytest.NewBrowser(t, m.Harness)
	other.SignIn("http://localhost/.portero/master-access", samClaims())
	m.MustStart(t, "acme", "Ticket SUP-71: first sign-in", "full", "10m")
	first := m.B
	m.B = other
	m.MustStart(t, "beta", "Ticket SUP-72: second sign-in", "full", "10m")
	m.B = first
	if rec := m.End(t); rec.Code != http.StatusSeeOther {
		t.Fatalf("end: %d", rec.Code)
	}
	open, _ := m.Store.MasterSessions(context.Background(), true, "sam", "", 0)
	if len(open) != 1 || open[0].Tenant != "beta" {
		t.Fatalf("open after ending the first sign-in's session: %+v", open)
	}
	// The other sign-in's session, by id, from the first sign-in.
	page := m.B.Do("GET", "http://localhost/.portero/master-access", nil, nil)
	csrf := csrfField.FindStringSubmatch(page.Body.String())[1]
	if rec := m.B.Do("POST", "http://localhost/.portero/master-access/end", url.Values{"csrf": {csrf}, "id": {open[0].ID}}, nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("end by id: %d", rec.Code)
	}
	if open, _ := m.Store.MasterSessions(context.Background(), true, "sam", "", 0); len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
}

// The trail is in the store: the management API reads it there, and a
// cross-site attempt to start master access is recorded as refused.
func TestMasterAuditAPIReadsTheStore(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/.portero/master-access", samClaims())
	page := m.B.Do("GET", "http://localhost/.portero/master-access", nil, nil)
	csrf := csrfField.FindStringSubmatch(page.Body.String())[1]
	rec := m.B.Do("POST", "http://localhost/.portero/master-access", url.Values{"csrf": {csrf}, "tenant": {"acme"},
		"reason": {"Ticket SUP-73: from elsewhere"}, "mode": {"full"}}, http.Header{"Origin": {"https://evil.example"}})
	if rec.Code != http.StatusForbidden {
		t.Fatalf("cross-site start: %d", rec.Code)
	}
	rec = m.B.Do("POST", "http://localhost/.portero/master-access", url.Values{"tenant": {"acme"},
		"reason": {"Ticket SUP-73: without a token"}, "mode": {"full"}}, nil)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("start without a token: %d", rec.Code)
	}
	m.MustStart(t, "acme", "Ticket SUP-74: the real one", "full", "10m")
	_ = os.Remove(m.AuditPath) // the export is not where the API reads
	rec = m.B.Do("GET", "http://localhost/.portero/api/v1/master-access/audit?tenant=acme", nil, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("audit API: %d %s", rec.Code, rec.Body)
	}
	var recs []audit.Record
	if err := json.Unmarshal(rec.Body.Bytes(), &recs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Event+":"+r.Detail)
	}
	if len(recs) != 3 || recs[0].Event != "start" || recs[1].Event != "refused" || recs[2].Event != "refused" || recs[2].Admin != "sam" {
		t.Fatalf("audit API, newest first: %v", got)
	}
}

// A change through the management API commits with its record, which
// names the caller.
func TestManagementWritesAreRecordedWithTheCaller(t *testing.T) {
	m := newMasterHarness(t, "")
	claims := m.Iss.Claims("ada", "portero")
	claims["groups"] = []string{"system-admins"}
	token := m.Iss.Sign(t, claims)
	rec := m.Do(t, "PUT", "http://localhost/.portero/api/v1/tenants/acme/members/leo", token, http.Header{"Content-Type": {"application/json"}}, `{"role":"location_manager"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("put member: %d %s", rec.Code, rec.Body)
	}
	recs, err := m.Store.AuditRecords(context.Background(), access.AuditFilter{Tenant: "acme"})
	if err != nil || len(recs) != 1 || recs[0].Event != "member.put" || recs[0].By != "ada" || recs[0].Object != "member acme/leo" {
		t.Fatalf("trail: %+v %v", recs, err)
	}
	// The master-access audit endpoint shows it only when asked for all.
	if rec := m.Do(t, "GET", "http://localhost/.portero/api/v1/master-access/audit?tenant=acme", token, nil, ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("master-access records: %d %s", rec.Code, rec.Body)
	}
	if rec := m.Do(t, "GET", "http://localhost/.portero/api/v1/master-access/audit?tenant=acme&all=1", token, nil, ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"member.put"`) {
		t.Fatalf("all records: %d %s", rec.Code, rec.Body)
	}
}

// The master-access pages speak the admin's language: Spanish from
// Accept-Language, field errors included; English otherwise.
func TestMasterAccessPagesInSpanish(t *testing.T) {
	m := newMasterHarness(t, "")
	m.B.SignIn("http://localhost/t/acme/", samClaims())
	es := http.Header{"Accept-Language": {"es-ES,es;q=0.9"}}
	rec := m.B.Do("GET", "http://localhost/.portero/master-access", nil, es)
	if body := rec.Body.String(); rec.Code != 200 || !strings.Contains(body, `<html lang="es">`) ||
		!strings.Contains(body, "Acceso de soporte") || !strings.Contains(body, "Entrar en la aplicación de la empresa") {
		t.Fatalf("start page in Spanish: %d %s", rec.Code, body)
	}
	if rec := m.B.Do("GET", "http://localhost/.portero/master-access", nil, nil); !strings.Contains(rec.Body.String(), "Enter the tenant&#39;s app") {
		t.Fatalf("start page in English: %s", rec.Body)
	}
	csrf := gatewaytest.CSRFField.FindStringSubmatch(rec.Body.String())
	if csrf == nil {
		t.Fatal("no csrf field on the page")
	}
	form := url.Values{"csrf": {csrf[1]}, "tenant": {"acme"}, "reason": {"porque"}, "mode": {"full"}, "duration": {"9h"}}
	rec = m.B.Do("POST", "http://localhost/.portero/master-access", form,
		http.Header{"Accept-Language": {"es"}, "Origin": {"http://localhost"}})
	if body := rec.Body.String(); rec.Code != 400 || !strings.Contains(body, "al menos 10 caracteres") || !strings.Contains(body, "Como máximo 4h0m0s") {
		t.Fatalf("field errors in Spanish: %d %s", rec.Code, body)
	}
}
