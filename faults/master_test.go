package faults

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/internal/testport"
)

// masterConfig is a gateway with browser sign-in, the access store (which
// keeps the audit trail) and master access, its export file, and a fixed
// assertion key (which signs the trail's checkpoints).
const masterConfig = `
listen:
  public: ${PORTERO_PUBLIC_ADDR}
  ops: ${PORTERO_OPS_ADDR}
  shutdown_timeout: 5s
  client_connections: {per_minute: 1000000, burst: 100000}
tenant:
  path: /t/{tenant}/
oidc:
  issuer: ${FAULTS_ISSUER}
  audiences: [portero]
  client_id: portero
  client_secret: faults-secret
  redirect_url: http://${PORTERO_PUBLIC_ADDR}/.portero/callback
session:
  keys: [%s]
routes:
  - name: app
    upstream: ${FAULTS_UPSTREAM}
access:
  store: %s
  watch_interval: 100ms
  checkpoint_interval: 1s
assertion:
  key_file: %s
master_access:
  audit_log: %s
limits:
  sign_in: {per_minute: 1000000, burst: 100000}
  callback: {per_minute: 1000000, burst: 100000}
  master_access: {per_minute: 1000000, burst: 100000}
log:
  level: warn
`

// startMasterGateway runs the binary with masterConfig on the store db.
func startMasterGateway(t *testing.T, iss *testissuer.Issuer, upstream, dir, db string) *gateway {
	t.Helper()
	key := filepath.Join(dir, "assertion.pem")
	pem, err := exec.Command(filepath.Join(binDir, "portero"), "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	sessionKey := base64.StdEncoding.EncodeToString([]byte("faults-session-key-32-bytes-long"))
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, masterConfig, sessionKey, db, key, filepath.Join(dir, "audit.jsonl")), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := testport.Addrs(t, 2)
	g := &gateway{t: t, public: addrs[0], ops: addrs[1], logs: &lockedBuffer{}, exited: make(chan struct{}),
		configPath: cfg, issuer: iss, upstreamAddr: upstream}
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", g.logs.String())
		}
	})
	return g
}

// signIn is one browser: its cookies (kept by hand: the gateway's cookies
// are Secure except on plain-http localhost) and its CSRF token.
type signIn struct {
	g       *gateway
	iss     *testissuer.Issuer
	claims  map[string]any
	client  *http.Client
	cookies map[string]string
	csrf    string
}

var csrfValue = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newSignIn(g *gateway, iss *testissuer.Issuer, sub string) *signIn {
	return &signIn{g: g, iss: iss, cookies: map[string]string{},
		claims: map[string]any{"sub": sub, "email": sub + "@portero.example", "groups": []string{"system-admins"}},
		client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request with the browser's cookies and keeps the ones set.
func (b *signIn) do(method, path string, form url.Values) (int, http.Header, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	target := path
	if strings.HasPrefix(path, "/") {
		target = "http://" + b.g.public + path
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return 0, nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+b.g.public)
	}
	for n, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: n, Value: v})
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return resp.StatusCode, resp.Header, string(raw), nil
}

// login walks the code flow and reads the CSRF token of the session.
func (b *signIn) login() error {
	code, h, _, err := b.do("GET", "/.portero/login?rd=/.portero/master-access", nil)
	if err != nil {
		return err
	}
	if code != http.StatusFound || !strings.HasPrefix(h.Get("Location"), b.iss.URL) {
		return fmt.Errorf("login: %d %s", code, h.Get("Location"))
	}
	authCode, state := b.iss.Authorize(b.g.t, h.Get("Location"), b.claims)
	code, _, _, err = b.do("GET", "/.portero/callback?code="+url.QueryEscape(authCode)+"&state="+url.QueryEscape(state), nil)
	if err != nil {
		return err
	}
	if code != http.StatusFound {
		return fmt.Errorf("callback: %d", code)
	}
	code, _, page, err := b.do("GET", "/.portero/master-access", nil)
	if err != nil {
		return err
	}
	m := csrfValue.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		return fmt.Errorf("master-access page: %d", code)
	}
	b.csrf = m[1]
	return nil
}

// masterTally is what the clients were told.
type masterTally struct {
	starts, ends     atomic.Int64 // acknowledged (303)
	conflicts        atomic.Int64 // 409: a session open from before a kill
	noAnswer         atomic.Int64 // connection refused or cut: the gateway was down
	serverErrors     atomic.Int64 // 5xx from a running gateway
	startsAt, endsAt sync.Map     // tenant -> *atomic.Int64 acknowledged
}

func (m *masterTally) ack(which *sync.Map, tenant string) {
	v, _ := which.LoadOrStore(tenant, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (m *masterTally) acked(which *sync.Map, tenant string) int64 {
	v, ok := which.Load(tenant)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// runMasterWorker starts and ends master access on tenant, as one sign-in,
// until ctx ends.
func runMasterWorker(ctx context.Context, b *signIn, tenant string, tally *masterTally, errs chan<- string) {
	form := func(extra url.Values) url.Values {
		v := url.Values{"csrf": {b.csrf}}
		for k, vals := range extra {
			v[k] = vals
		}
		return v
	}
	for ctx.Err() == nil {
		if b.csrf == "" {
			if err := b.login(); err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		code, _, body, err := b.do("POST", "/.portero/master-access", form(url.Values{"tenant": {tenant},
			"reason": {"Ticket SUP-90: fault test"}, "mode": {"full"}, "duration": {"10m"}}))
		switch {
		case err != nil:
			tally.noAnswer.Add(1)
			time.Sleep(20 * time.Millisecond)
			continue
		case code == http.StatusSeeOther:
			tally.starts.Add(1)
			tally.ack(&tally.startsAt, tenant)
		case code == http.StatusConflict:
			tally.conflicts.Add(1) // started before a kill, not ended: end it below
		case code >= 500:
			tally.serverErrors.Add(1)
			errs <- fmt.Sprintf("start %s: %d %.200s", tenant, code, body)
			continue
		default:
			errs <- fmt.Sprintf("start %s: %d %.200s", tenant, code, body)
			return
		}
		code, _, body, err = b.do("POST", "/.portero/master-access/end", form(nil))
		switch {
		case err != nil:
			tally.noAnswer.Add(1)
			time.Sleep(20 * time.Millisecond)
		case code == http.StatusSeeOther:
			tally.ends.Add(1)
			tally.ack(&tally.endsAt, tenant)
		case code >= 500:
			tally.serverErrors.Add(1)
			errs <- fmt.Sprintf("end %s: %d %.200s", tenant, code, body)
		default:
			errs <- fmt.Sprintf("end %s: %d %.200s", tenant, code, body)
			return
		}
	}
}

type trailRecord struct {
	Event string `json:"event"`
	ID    string `json:"master_access_id"`
}

// The gateway is killed (SIGKILL) again and again while two admins, one
// of them signed in twice, start and end master access on four tenants.
// Afterwards the trail verifies (chain and signed checkpoints), every
// master session in the store has its start record, every ended one its
// end record, every start record its session, and nothing acknowledged to
// a client was lost: a session started before a kill is either fully
// recorded or absent.
func TestMasterAccessSurvivesKills(t *testing.T) {
	need(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "portero.db")
	tenants := []string{"t1", "t2", "t3", "t4"}
	for _, tn := range tenants {
		admin(t, db, "tenant", "create", tn, "--name", strings.ToUpper(tn), "--owner", "owner-"+tn)
	}
	iss := testissuer.New(t)
	iss.TokenTTL = time.Hour
	up := startUpstream(t, "")
	g := startMasterGateway(t, iss, up.addr, dir, db)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tally := &masterTally{}
	errs := make(chan string, 1000)
	var workers sync.WaitGroup
	for i, tn := range tenants {
		b := newSignIn(g, iss, []string{"sam", "sam", "ada", "ada"}[i]) // sam signed in twice, ada twice
		workers.Add(1)
		go func() { defer workers.Done(); runMasterWorker(ctx, b, tn, tally, errs) }()
	}

	var kills int
	var recover []time.Duration
	deadline := time.Now().Add(pick(25*time.Second, 150*time.Second))
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		_ = g.cmd.Process.Kill() // SIGKILL: no shutdown, no final checkpoint
		<-g.exited
		kills++
		begin := time.Now()
		g.start() // returns once /readyz answers 200
		recover = append(recover, time.Since(begin))
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	workers.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	g.stop() // SIGTERM: the shutdown checkpoint signs the last record

	// The chain and the checkpoints.
	out, err := exec.Command(filepath.Join(binDir, "portero"), "audit", "verify", "--store", db, "--key", filepath.Join(dir, "assertion.pem")).CombinedOutput()
	t.Logf("portero audit verify: %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "portero"), "audit", "verify", filepath.Join(dir, "audit.jsonl")).CombinedOutput(); err != nil {
		t.Errorf("the export does not verify: %v %s", err, out)
	}

	// Sessions against records.
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	starts, ends := map[string]int{}, map[string]int{}
	rows, err := conn.Query(`SELECT record FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for rows.Next() {
		var raw string
		var rec trailRecord
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(raw), &rec)
		records++
		switch rec.Event {
		case "start":
			starts[rec.ID]++
		case "end", "expire", "revoke":
			ends[rec.ID]++
		}
	}
	rows.Close()
	type session struct {
		id, tenant string
		ended      bool
	}
	var sessions []session
	rows, err = conn.Query(`SELECT id, tenant, ended_at IS NOT NULL FROM master_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s session
		if err := rows.Scan(&s.id, &s.tenant, &s.ended); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	rows.Close()
	missingStart, missingEnd, endOfOpen, perTenant, endedPerTenant := 0, 0, 0, map[string]int64{}, map[string]int64{}
	known := map[string]bool{}
	for _, s := range sessions {
		known[s.id] = true
		perTenant[s.tenant]++
		if starts[s.id] != 1 {
			missingStart++
			t.Errorf("session %s has %d start records", s.id, starts[s.id])
		}
		switch {
		case s.ended:
			endedPerTenant[s.tenant]++
			if ends[s.id] != 1 {
				missingEnd++
				t.Errorf("ended session %s has %d end records", s.id, ends[s.id])
			}
		case ends[s.id] != 0:
			endOfOpen++
			t.Errorf("open session %s has an end record", s.id)
		}
	}
	orphans := 0
	for id := range starts {
		if !known[id] {
			orphans++
			t.Errorf("start record %s has no session", id)
		}
	}
	lost := 0
	for _, tn := range tenants {
		if perTenant[tn] < tally.acked(&tally.startsAt, tn) || endedPerTenant[tn] < tally.acked(&tally.endsAt, tn) {
			lost++
			t.Errorf("%s: %d sessions (%d ended) in the store, %d starts and %d ends acknowledged", tn, perTenant[tn], endedPerTenant[tn],
				tally.acked(&tally.startsAt, tn), tally.acked(&tally.endsAt, tn))
		}
	}
	var worst, total time.Duration
	for _, d := range recover {
		total += d
		worst = max(worst, d)
	}
	mean := time.Duration(0)
	if len(recover) > 0 {
		mean = total / time.Duration(len(recover))
	}
	t.Logf("%d kills; clients: %d starts and %d ends acknowledged, %d conflicts with a session left open by a kill, %d without an answer (gateway down), %d 5xx",
		kills, tally.starts.Load(), tally.ends.Load(), tally.conflicts.Load(), tally.noAnswer.Load(), tally.serverErrors.Load())
	t.Logf("store: %d sessions, %d audit records; missing: %d start records, %d end records, %d start records without a session, %d end records of open sessions, %d tenants with acknowledged work lost",
		len(sessions), records, missingStart, missingEnd, orphans, endOfOpen, lost)
	t.Logf("time from SIGKILL to ready again: mean %v, worst %v", mean.Round(time.Millisecond), worst.Round(time.Millisecond))
	if kills == 0 || tally.starts.Load() == 0 || tally.serverErrors.Load() != 0 {
		t.Fatalf("kills %d, starts %d, 5xx %d", kills, tally.starts.Load(), tally.serverErrors.Load())
	}
}
