package faults

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/pgtest"
	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/internal/testport"
)

// replicaConfig is one of several replicas on one PostgreSQL store: browser
// sign-in with a session key all replicas share (a cookie from one is
// good on the others), the same assertion key (which signs the trail's
// checkpoints), master access, and limits out of the way of the test's
// pace.
const replicaConfig = `
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
  pool: {max_open: 8, max_idle: 4}
assertion:
  key_file: %s
master_access:
  enabled: true
limits:
  sign_in: {per_minute: 1000000, burst: 100000}
  callback: {per_minute: 1000000, burst: 100000}
  master_access: {per_minute: 1000000, burst: 100000}
  management_writes: {per_minute: 1000000, burst: 100000}
log:
  level: warn
`

// startReplica runs one replica on the store at storeURL, with the shared
// assertion key.
func startReplica(t *testing.T, iss *testissuer.Issuer, upstream, storeURL, key string) *gateway {
	t.Helper()
	dir := t.TempDir()
	sessionKey := base64.StdEncoding.EncodeToString([]byte("faults-session-key-32-bytes-long"))
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, replicaConfig, sessionKey, storeURL, key), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := testport.Addrs(t, 2)
	g := &gateway{t: t, public: addrs[0], ops: addrs[1], logs: &lockedBuffer{}, exited: make(chan struct{}),
		configPath: cfg, issuer: iss, upstreamAddr: upstream}
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("replica %s logs:\n%s", g.public, g.logs.String())
		}
	})
	return g
}

// recordingUpstream is the app behind the replicas: it notes every request
// it receives by its probe (a query parameter each test request carries)
// and the user the gateway named, so a test can tell a refusal the app
// never saw from one it did.
type recordingUpstream struct {
	mu  sync.Mutex
	got map[string]string // probe -> X-Portero-User
}

func startRecordingUpstream(t *testing.T) (*recordingUpstream, string) {
	t.Helper()
	u := &recordingUpstream{got: map[string]string{}}
	addr := testport.Addr(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if p := r.URL.Query().Get("probe"); p != "" {
			u.mu.Lock()
			u.got[p] = r.Header.Get("X-Portero-User")
			u.mu.Unlock()
		}
		_, _ = io.WriteString(w, "user="+r.Header.Get("X-Portero-User"))
	})}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u, addr
}

// saw says whether the upstream received probe, and as which user.
func (u *recordingUpstream) saw(probe string) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	user, ok := u.got[probe]
	return user, ok
}

var probes atomic.Int64

// caller is who makes a request: a bearer token, or a browser's cookies.
type caller struct {
	token   string
	cookies map[string]string
}

var fastClient = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// get requests path on g as c with a fresh probe, and returns the status
// and the probe (0: no answer).
func (c caller) get(g *gateway, path string) (int, string) {
	probe := fmt.Sprintf("p%d", probes.Add(1))
	req, _ := http.NewRequest("GET", "http://"+g.public+path+"?probe="+probe, nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for n, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: n, Value: v})
	}
	resp, err := fastClient.Do(req)
	if err != nil {
		return 0, probe
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, probe
}

// api calls the management API on g with a bearer token; body is JSON or
// nil.
func api(g *gateway, token, method, path string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+g.public+"/.portero/api/v1/"+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := fastClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// adminOn runs portero admin on the store at URL and returns its output.
func adminOn(t *testing.T, store string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "portero"), append([]string{"admin", "--store", store}, args...)...).Output()
	if err != nil {
		t.Fatalf("portero admin %v: %v\n%s", args, err, out)
	}
	return out
}

// waitFor asks g as c until it answers want, for at most limit (a
// propagation that never happens fails the test), and returns how long
// that took.
func waitFor(t *testing.T, g *gateway, c caller, path string, want int, limit time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	last := 0
	for time.Since(begin) < limit {
		if last, _ = c.get(g, path); last == want {
			return time.Since(begin)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s on %s: still %d after %v, want %d", path, g.public, last, limit, want)
	return 0
}

// refusedEverywhere checks that each of gs refuses c's request with want
// and that the upstream never received it.
func refusedEverywhere(t *testing.T, up *recordingUpstream, gs map[string]*gateway, c caller, path string, want int, what string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(gs)) {
		status, probe := c.get(gs[name], path)
		if status != want {
			t.Errorf("%s: replica %s answered %d, want %d", what, name, status, want)
		}
		if user, ok := up.saw(probe); ok {
			t.Errorf("%s: replica %s forwarded the request to the app (as %q)", what, name, user)
		}
	}
}

// servedEverywhere checks that each of gs serves c's request and that the
// upstream received it as user.
func servedEverywhere(t *testing.T, up *recordingUpstream, gs map[string]*gateway, c caller, path, user, what string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(gs)) {
		status, probe := c.get(gs[name], path)
		got, ok := up.saw(probe)
		if status != http.StatusOK || !ok || got != user {
			t.Fatalf("%s: replica %s answered %d; the app saw it: %v as %q, want %q", what, name, status, ok, got, user)
		}
	}
}

// replicaFigures are what TestReplicas measured; with PORTERO_REPLICAS_JSON
// set they are written there (docs/replicas.json, quoted by
// docs/performance.md).
type replicaFigures struct {
	Date     string `json:"date"`
	Mode     string `json:"mode"`
	Replicas int    `json:"replicas"`
	Command  string `json:"command"`
	// Revocation: a member deactivated through replica A's management API,
	// replica B asked without pause until it refuses; from the write sent
	// to B's first refusal received, and from A's acknowledgement.
	Trials            int     `json:"trials"`
	RevokeP50Ms       float64 `json:"revoke_p50_ms"`
	RevokeP99Ms       float64 `json:"revoke_p99_ms"`
	RevokeMaxMs       float64 `json:"revoke_max_ms"`
	RevokeAfterAckP50 float64 `json:"revoke_after_ack_p50_ms"`
	RevokeAfterAckP99 float64 `json:"revoke_after_ack_p99_ms"`
	WriteP50Ms        float64 `json:"write_p50_ms"`
	ReinstateP50Ms    float64 `json:"reinstate_p50_ms"`
	ReinstateP99Ms    float64 `json:"reinstate_p99_ms"`
	// Replica B killed (SIGKILL) and started again: exec to ready.
	KillRestartReadyMs float64 `json:"kill_restart_ready_ms"`
	// PostgreSQL outages under load: from the server accepting connections
	// again to the slowest replica ready again, per outage.
	Outages []outageFigures `json:"outages"`
	// Writes acknowledged through the three replicas during the run, all
	// found afterwards; the audit trail's records, one chain.
	WritesAcknowledged int `json:"writes_acknowledged"`
	AuditRecords       int `json:"audit_records"`
}

type outageFigures struct {
	Kind           string         `json:"kind"` // stop (fast shutdown) or crash (immediate)
	DownMs         float64        `json:"down_ms"`
	RecoverMs      float64        `json:"recover_ms"`
	AnswersWhileDB map[string]int `json:"answers_while_down"`
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentileOf(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// replicaLoad asks every replica, from its own workers, for a page that
// needs store facts, and keeps each answer with when its request began and
// ended.
type replicaLoad struct {
	mu   sync.Mutex
	seen []replicaAnswer
	wait sync.WaitGroup
}

type replicaAnswer struct {
	replica    string
	begin, end time.Time
	status     int
	forwarded  bool // the upstream received it
}

func startReplicaLoad(ctx context.Context, up *recordingUpstream, gs map[string]*gateway, c caller, path string, workers int) *replicaLoad {
	l := &replicaLoad{}
	for name, g := range gs {
		for range workers {
			l.wait.Add(1)
			go func() {
				defer l.wait.Done()
				for ctx.Err() == nil {
					begin := time.Now()
					status, probe := c.get(g, path)
					_, fwd := up.saw(probe)
					l.mu.Lock()
					l.seen = append(l.seen, replicaAnswer{name, begin, time.Now(), status, fwd})
					l.mu.Unlock()
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
	}
	return l
}

// within counts answers by status for requests that began and ended in
// [from, to).
func (l *replicaLoad) within(from, to time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, a := range l.seen {
		if !a.begin.Before(from) && a.end.Before(to) {
			out[fmt.Sprint(a.status)]++
		}
	}
	return out
}

// servedAfter lists the answers 200 to requests begun in (from, to), in
// the order they began.
func (l *replicaLoad) servedAfter(from, to time.Time) []replicaAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []replicaAnswer
	for _, a := range l.seen {
		if a.status == http.StatusOK && a.begin.After(from) && a.begin.Before(to) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b replicaAnswer) int { return a.begin.Compare(b.begin) })
	return out
}

// writer puts members through the replicas in turn until ctx ends,
// keeping the ones acknowledged.
type writer struct {
	mu       sync.Mutex
	acked    map[string]string // member -> replica that acknowledged it
	statuses map[string]int    // replica/status -> count
	wait     sync.WaitGroup
}

func startWriter(ctx context.Context, gs map[string]*gateway, token string, every time.Duration) *writer {
	w := &writer{acked: map[string]string{}, statuses: map[string]int{}}
	names := slices.Sorted(maps.Keys(gs))
	w.wait.Add(1)
	go func() {
		defer w.wait.Done()
		for i := 0; ctx.Err() == nil; i++ {
			name := names[i%len(names)]
			user := fmt.Sprintf("w%05d", i)
			status, _ := api(gs[name], token, "PUT", "tenants/acme/members/"+user,
				map[string]any{"role": "location_manager", "locations": []string{"l1"}, "features": map[string]string{"reviews": "read"}})
			w.mu.Lock()
			w.statuses[fmt.Sprintf("%s/%d", name, status)]++
			if status == http.StatusOK || status == http.StatusCreated {
				w.acked[user] = name
			}
			w.mu.Unlock()
			time.Sleep(every)
		}
	}()
	return w
}

// Three replicas on one PostgreSQL. Revocations made on replica A — a
// member deactivated, a delegation revoked, a master-access session
// revoked, a sign-out — are refused on B and C (the app never sees the
// requests);
// revocation propagation is measured over many trials; B is killed and
// restarted; PostgreSQL is stopped and crashed under load: requests that
// need the store fail closed (503, never a 200 on facts that changed),
// all three recover without a restart, nothing acknowledged is lost and
// the audit trail the three appended to is one chain that verifies.
func TestReplicas(t *testing.T) {
	need(t)
	cluster := pgtest.StartCluster(t)
	store := cluster.URL
	fig := replicaFigures{Date: time.Now().UTC().Format("2006-01-02"), Mode: mode, Replicas: 3,
		Command: "PORTERO_FAULTS=" + mode + " go test -count=1 -run TestReplicas ./faults"}

	// The facts: alice a member, bob a partner user whose organisation
	// holds a full delegation, pat a member revoked and restored in the
	// propagation trials, lena a member who signs out, olivia the owner
	// (master access enters as her).
	adminOn(t, store, "tenant", "create", "acme", "--name", "Acme", "--owner", "olivia")
	for _, u := range []string{"alice", "pat", "lena"} {
		adminOn(t, store, "member", "put", "acme", u, "--role", "location_manager", "--location", "l1", "--feature", "reviews=read")
	}
	adminOn(t, store, "partner", "create", "pco", "--name", "Partner Co")
	adminOn(t, store, "partner", "user", "pco", "bob")
	var dl struct{ ID string }
	if err := json.Unmarshal(adminOn(t, store, "delegation", "invite", "acme", "pco", "--scope", "full", "--by", "olivia"), &dl); err != nil || dl.ID == "" {
		t.Fatalf("delegation invite: %v", err)
	}
	adminOn(t, store, "delegation", "accept", dl.ID)

	dir := t.TempDir()
	key := filepath.Join(dir, "assertion.pem")
	pem, err := exec.Command(filepath.Join(binDir, "portero"), "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	iss := testissuer.New(t)
	iss.TokenTTL = time.Hour
	up, upAddr := startRecordingUpstream(t)
	a := startReplica(t, iss, upAddr, store, key)
	b := startReplica(t, iss, upAddr, store, key)
	c := startReplica(t, iss, upAddr, store, key)
	all := map[string]*gateway{"A": a, "B": b, "C": c}
	others := map[string]*gateway{"B": b, "C": c}

	bearer := func(sub string, groups ...string) caller {
		cl := iss.Claims(sub, "portero")
		cl["exp"] = time.Now().Add(2 * time.Hour).Unix()
		if len(groups) > 0 {
			cl["groups"] = groups
		}
		return caller{token: iss.Sign(t, cl)}
	}
	root := bearer("root", "system-admins") // a system admin using the management API
	alice, bob, pat := bearer("alice"), bearer("bob"), bearer("pat")
	const page = "/t/acme/reviews"

	// 1. A member deactivated on A.
	servedEverywhere(t, up, all, alice, page, "alice", "alice before deactivation")
	if s, body := api(a, root.token, "POST", "tenants/acme/members/alice/deactivate", nil); s != http.StatusOK {
		t.Fatalf("deactivate alice on A: %d %s", s, body)
	}
	for _, g := range others {
		waitFor(t, g, alice, page, http.StatusForbidden, 5*time.Second)
	}
	refusedEverywhere(t, up, all, alice, page, http.StatusForbidden, "alice deactivated on A")

	// 2. A delegation revoked on A.
	servedEverywhere(t, up, all, bob, page, "bob", "bob through the delegation")
	if s, body := api(a, root.token, "POST", "delegations/"+dl.ID+"/revoke", nil); s != http.StatusOK {
		t.Fatalf("revoke the delegation on A: %d %s", s, body)
	}
	for _, g := range others {
		waitFor(t, g, bob, page, http.StatusForbidden, 5*time.Second)
	}
	refusedEverywhere(t, up, all, bob, page, http.StatusForbidden, "delegation revoked on A")

	// 3. Master access: sam signs in on A and enters acme; his cookie is
	// good on B and C (one session key), where he is in acme as its owner.
	// Another system admin revokes the session through A's API.
	sam := newSignIn(a, iss, "sam")
	if err := sam.login(); err != nil {
		t.Fatal(err)
	}
	code, _, body, err := sam.do("POST", "/.portero/master-access", url.Values{"csrf": {sam.csrf}, "tenant": {"acme"},
		"reason": {"Ticket SUP-14: replicas test"}, "mode": {"read_only"}, "duration": {"30m"}})
	if err != nil || code != http.StatusSeeOther {
		t.Fatalf("start master access on A: %d %v %.300s", code, err, body)
	}
	samBrowser := caller{cookies: maps.Clone(sam.cookies)}
	servedEverywhere(t, up, all, samBrowser, page, "olivia", "sam under master access")
	var sessions []struct {
		ID    string `json:"id"`
		Admin string `json:"admin"`
	}
	s, raw := api(a, root.token, "GET", "master-access", nil)
	if err := json.Unmarshal(raw, &sessions); s != http.StatusOK || err != nil || len(sessions) != 1 || sessions[0].Admin != "sam" {
		t.Fatalf("list master access on A: %d %s", s, raw)
	}
	if s, body := api(a, root.token, "POST", "master-access/"+sessions[0].ID+"/revoke", nil); s != http.StatusOK {
		t.Fatalf("revoke master access on A: %d %s", s, body)
	}
	for _, g := range others {
		waitFor(t, g, samBrowser, page, http.StatusForbidden, 5*time.Second)
	}
	refusedEverywhere(t, up, all, samBrowser, page, http.StatusForbidden, "master access revoked on A")

	// 4. Sign-out: lena signs in on A; her cookie is good on B and C until
	// she signs out on A, after which all three send her to sign in again
	// and the app sees none of it.
	lena := newSignIn(a, iss, "lena")
	if err := lena.login(); err != nil {
		t.Fatal(err)
	}
	lenaBrowser := caller{cookies: maps.Clone(lena.cookies)}
	servedEverywhere(t, up, all, lenaBrowser, page, "lena", "lena signed in on A")
	if code, h, body, err := lena.do("POST", "/.portero/logout", url.Values{"csrf": {lena.csrf}}); err != nil || code != http.StatusSeeOther {
		t.Fatalf("sign out on A: %d %v %v %.300s", code, err, h, body)
	}
	for _, g := range others {
		waitFor(t, g, lenaBrowser, page, http.StatusFound, 5*time.Second)
	}
	refusedEverywhere(t, up, all, lenaBrowser, page, http.StatusFound, "lena signed out on A")

	// 5. Propagation: pat deactivated through A, B asked without pause
	// until it refuses; then reactivated, until B serves again.
	trials := pick(40, 250)
	var revoke, afterAck, writes, reinstate []time.Duration
	for i := range trials {
		waitFor(t, b, pat, page, http.StatusOK, 5*time.Second) // B holds pat's facts
		sent := time.Now()
		if s, body := api(a, root.token, "POST", "tenants/acme/members/pat/deactivate", nil); s != http.StatusOK {
			t.Fatalf("trial %d: deactivate pat on A: %d %s", i, s, body)
		}
		acked := time.Now()
		for {
			status, probe := pat.get(b, page)
			if status == http.StatusForbidden {
				if _, fwd := up.saw(probe); fwd {
					t.Fatalf("trial %d: B refused pat but the app received the request", i)
				}
				now := time.Now()
				revoke, afterAck, writes = append(revoke, now.Sub(sent)), append(afterAck, max(0, now.Sub(acked))), append(writes, acked.Sub(sent))
				break
			}
			if time.Since(sent) > 5*time.Second {
				t.Fatalf("trial %d: B still answers %d 5 s after pat was deactivated on A", i, status)
			}
		}
		sent = time.Now()
		if s, body := api(a, root.token, "POST", "tenants/acme/members/pat/reactivate", nil); s != http.StatusOK {
			t.Fatalf("trial %d: reactivate pat on A: %d %s", i, s, body)
		}
		waitFor(t, b, pat, page, http.StatusOK, 5*time.Second)
		reinstate = append(reinstate, time.Since(sent))
	}
	fig.Trials = len(revoke)
	fig.RevokeP50Ms, fig.RevokeP99Ms, fig.RevokeMaxMs = msOf(percentileOf(revoke, .5)), msOf(percentileOf(revoke, .99)), msOf(percentileOf(revoke, 1))
	fig.RevokeAfterAckP50, fig.RevokeAfterAckP99 = msOf(percentileOf(afterAck, .5)), msOf(percentileOf(afterAck, .99))
	fig.WriteP50Ms = msOf(percentileOf(writes, .5))
	fig.ReinstateP50Ms, fig.ReinstateP99Ms = msOf(percentileOf(reinstate, .5)), msOf(percentileOf(reinstate, .99))
	t.Logf("revocation on A → first refusal on B over %d trials: p50 %.1f ms, p99 %.1f ms, max %.1f ms (after A's acknowledgement: p50 %.1f ms, p99 %.1f ms; the write itself p50 %.1f ms); reinstatement p50 %.1f ms, p99 %.1f ms",
		fig.Trials, fig.RevokeP50Ms, fig.RevokeP99Ms, fig.RevokeMaxMs, fig.RevokeAfterAckP50, fig.RevokeAfterAckP99, fig.WriteP50Ms, fig.ReinstateP50Ms, fig.ReinstateP99Ms)
	slowest := slices.Clone(revoke)
	slices.Sort(slowest)
	t.Logf("slowest revocations (from the write sent / the write alone / after the acknowledgement): %v / %v / %v",
		slowest[max(0, len(slowest)-5):], percentileOf(writes, 1), percentileOf(afterAck, 1))

	// 6. B killed and started again: it serves what the store says.
	_ = b.cmd.Process.Kill()
	<-b.exited
	begin := time.Now()
	b.start()
	fig.KillRestartReadyMs = msOf(time.Since(begin))
	servedEverywhere(t, up, all, pat, page, "pat", "pat after B was killed and restarted")
	refusedEverywhere(t, up, all, alice, page, http.StatusForbidden, "alice after B was killed and restarted")
	refusedEverywhere(t, up, all, samBrowser, page, http.StatusForbidden, "master access after B was killed and restarted")
	refusedEverywhere(t, up, all, lenaBrowser, page, http.StatusFound, "lena's cookie after B was killed and restarted")

	// 7. PostgreSQL stopped, then crashed, while the three serve pat and
	// take writes.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := startReplicaLoad(ctx, up, all, pat, page, 2)
	wr := startWriter(ctx, all, root.token, pick(40*time.Millisecond, 20*time.Millisecond))
	time.Sleep(pick(time.Second, 5*time.Second))
	const detect = time.Second // for every replica to see its listening connection gone
	// A write reaches every replica within this (the target; the
	// trials above measure how fast it does).
	const propagationBound = time.Second
	for _, kind := range []string{"stop", "crash"} {
		if kind == "stop" {
			cluster.Stop()
		} else {
			cluster.Crash()
		}
		down := time.Now()
		for _, name := range slices.Sorted(maps.Keys(all)) {
			if _, body := all[name].waitReadyz(t, http.StatusServiceUnavailable, 5*time.Second); !strings.Contains(body, "access store") {
				t.Errorf("%s readyz while the database is down: %s", name, body)
			}
		}
		time.Sleep(pick(2*time.Second, 8*time.Second))
		restart := time.Now()
		while := load.within(down.Add(detect), restart)
		cluster.Start()
		started := time.Now()
		// Written while the replicas may still be reconnecting: a
		// notification they can miss. Their cached facts say pat is
		// active; once the write has had the time any revocation takes to
		// reach them (the notification on its way), none may serve him: a
		// replica that missed it must have dropped what it cached when it
		// listened again.
		adminOn(t, store, "member", "deactivate", "acme", "pat")
		deactivated := time.Now()
		var recover time.Duration
		for _, name := range slices.Sorted(maps.Keys(all)) {
			all[name].waitReadyz(t, http.StatusOK, 20*time.Second)
			recover = max(recover, time.Since(started))
		}
		for _, g := range all {
			waitFor(t, g, pat, page, http.StatusForbidden, 5*time.Second)
		}
		reactivating := time.Now()
		if stale := load.servedAfter(deactivated, reactivating); len(stale) > 0 {
			last := stale[len(stale)-1]
			t.Logf("%s: %d requests for pat served while the deactivation written after the restart was on its way (the last begun %v after it, on replica %s)",
				kind, len(stale), last.begin.Sub(deactivated).Round(time.Millisecond), last.replica)
		}
		if stale := load.servedAfter(deactivated.Add(propagationBound), reactivating); len(stale) > 0 {
			t.Errorf("%s: %d requests for pat begun more than %v after he was deactivated were served (first: replica %s, %v after): stale facts after the outage",
				kind, len(stale), propagationBound, stale[0].replica, stale[0].begin.Sub(deactivated).Round(time.Millisecond))
		}
		if s, body := api(a, root.token, "POST", "tenants/acme/members/pat/reactivate", nil); s != http.StatusOK {
			t.Fatalf("%s: reactivate pat on A after the restart: %d %s", kind, s, body)
		}
		for _, g := range all {
			waitFor(t, g, pat, page, http.StatusOK, 5*time.Second)
		}
		t.Logf("PostgreSQL %s: down %v; answers to requests begun and ended while it was down (after %v): %v; every replica ready %v after it accepted connections again",
			kind, restart.Sub(down).Round(time.Millisecond), detect, while, recover.Round(time.Millisecond))
		fig.Outages = append(fig.Outages, outageFigures{Kind: kind, DownMs: msOf(restart.Sub(down)), RecoverMs: msOf(recover), AnswersWhileDB: while})
		if while["200"] != 0 || while["503"] == 0 {
			t.Errorf("%s: while the database was down the replicas answered %v (want 503 only: fail closed)", kind, while)
		}
		time.Sleep(pick(time.Second, 5*time.Second))
	}
	cancel()
	load.wait.Wait()
	wr.wait.Wait()
	load.mu.Lock()
	for _, ans := range load.seen {
		if ans.status == http.StatusOK && !ans.forwarded {
			t.Errorf("replica %s answered 200 for a request the app never received", ans.replica)
			break
		}
		if ans.status != http.StatusOK && ans.forwarded {
			t.Errorf("replica %s answered %d for a request the app received", ans.replica, ans.status)
			break
		}
	}
	load.mu.Unlock()

	// Nothing acknowledged lost; the trail is one chain.
	for _, g := range all {
		g.stop() // SIGTERM: the shutdown checkpoint signs the last record
	}
	db := cluster.DB()
	present := map[string]bool{}
	rows, err := db.Query(`SELECT "user" FROM members WHERE tenant = 'acme'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		_ = rows.Scan(&u)
		present[u] = true
	}
	rows.Close()
	lost, byReplica := 0, map[string]int{}
	for u, replica := range wr.acked {
		byReplica[replica]++
		if !present[u] {
			lost++
			t.Errorf("member %s acknowledged by replica %s is not in the store", u, replica)
		}
	}
	var records, firstSeq, lastSeq int
	if err := db.QueryRow(`SELECT count(*), min(seq), max(seq) FROM audit_log`).Scan(&records, &firstSeq, &lastSeq); err != nil {
		t.Fatal(err)
	}
	var recorded int
	if err := db.QueryRow(`SELECT count(*) FROM audit_log WHERE record LIKE '%"member acme/w%'`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	fig.WritesAcknowledged, fig.AuditRecords = len(wr.acked), records
	t.Logf("writes through the replicas: %v; acknowledged %d (by replica %v), lost %d; audit trail: %d records, seq %d..%d, %d of them member writes",
		wr.statuses, len(wr.acked), byReplica, lost, records, firstSeq, lastSeq, recorded)
	if len(byReplica) != 3 {
		t.Errorf("writes were acknowledged by %d replicas, want all 3", len(byReplica))
	}
	if recorded < len(wr.acked) {
		t.Errorf("%d member writes acknowledged, %d in the audit trail", len(wr.acked), recorded)
	}
	if firstSeq != 1 || lastSeq != records {
		t.Errorf("the trail's seq runs %d..%d over %d records: not one chain", firstSeq, lastSeq, records)
	}
	out, err := exec.Command(filepath.Join(binDir, "portero"), "audit", "verify", "--store", store, "--key", key).CombinedOutput()
	t.Logf("portero audit verify --store: %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Errorf("audit verify: %v", err)
	}

	if path := os.Getenv("PORTERO_REPLICAS_JSON"); path != "" && !t.Failed() {
		b, _ := json.MarshalIndent(fig, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}
