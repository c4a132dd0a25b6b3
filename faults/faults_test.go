// Package faults holds Portero's fault and soak tests: the real binary,
// started as an operator would, on loopback, with faults injected while
// requests flow. Each test is bounded in time and asserts what clients saw
// and what was lost.
//
// They run only when asked, as they take minutes:
//
//	PORTERO_FAULTS=short go test -count=1 ./faults   # CI: a short version of each
//	PORTERO_FAULTS=full  go test -count=1 -timeout 30m ./faults   # 10,000 idle connections, a 10-minute soak
//
// scripts/faults.sh runs the full set.
package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/internal/testport"
)

var (
	mode   = os.Getenv("PORTERO_FAULTS") // "", "short" or "full"
	binDir string
)

func TestMain(m *testing.M) {
	if mode == "" {
		fmt.Println("faults: skipped (set PORTERO_FAULTS=short or full)")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "portero-faults")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for pkg, out := range map[string]string{"../cmd/portero": "portero", "../bench/idleconns": "idleconns"} {
		// go -C: bench/ is a module of its own, built in its own directory.
		if b, err := exec.Command("go", "-C", pkg, "build", "-o", filepath.Join(dir, out), ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func need(t *testing.T) {
	t.Helper()
	if mode == "" {
		t.Skip("set PORTERO_FAULTS=short or full")
	}
}

// pick returns short's value in short mode and full's otherwise.
func pick[T any](short, full T) T {
	if mode == "full" {
		return full
	}
	return short
}

// gateway is a running portero binary.
type gateway struct {
	t            *testing.T
	cmd          *exec.Cmd
	public, ops  string
	logs         *lockedBuffer
	exited       chan struct{}
	exitErr      error
	configPath   string
	issuer       *testissuer.Issuer
	upstreamAddr string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const baseConfig = `
listen:
  public: ${PORTERO_PUBLIC_ADDR}
  ops: ${PORTERO_OPS_ADDR}
  shutdown_timeout: 10s
  client_connections: {per_minute: 1000000, burst: 100000}
tenant:
  path: /t/{tenant}/
oidc:
  issuer: ${FAULTS_ISSUER}
  audiences: [portero]
routes:
  - name: app
    upstream: ${FAULTS_UPSTREAM}
    api: true
    timeout: ${FAULTS_UPSTREAM_TIMEOUT:-30s}
log:
  level: warn
`

// startGateway writes config (baseConfig plus extra) to a directory and
// runs the binary with it until the test ends.
func startGateway(t *testing.T, iss *testissuer.Issuer, upstream, extra string, env ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(baseConfig+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := testport.Addrs(t, 2)
	g := &gateway{t: t, public: addrs[0], ops: addrs[1], logs: &lockedBuffer{}, exited: make(chan struct{}),
		configPath: cfg, issuer: iss, upstreamAddr: upstream}
	g.start(env...)
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", g.logs.String())
		}
	})
	return g
}

func (g *gateway) start(env ...string) {
	g.t.Helper()
	g.exited = make(chan struct{})
	g.cmd = exec.Command(filepath.Join(binDir, "portero"), "serve", "-c", g.configPath)
	g.cmd.Env = append(os.Environ(), append([]string{
		"PORTERO_PUBLIC_ADDR=" + g.public, "PORTERO_OPS_ADDR=" + g.ops,
		"FAULTS_ISSUER=" + g.issuer.URL, "FAULTS_UPSTREAM=http://" + g.upstreamAddr,
	}, env...)...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	go func() { g.exitErr = g.cmd.Wait(); close(g.exited) }()
	g.waitReady(30 * time.Second)
}

func (g *gateway) waitReady(limit time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get("http://" + g.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-g.exited:
			g.t.Fatalf("gateway exited before it was ready: %v\n%s", g.exitErr, g.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gateway not ready within %v\n%s", limit, g.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// metric reads one sample (name with its labels, as exposed) from the ops
// listener, or -1 when absent.
func (g *gateway) metric(name string) float64 {
	resp, err := http.Get("http://" + g.ops + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if n, v, ok := strings.Cut(sc.Text(), " "); ok && n == name {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func (g *gateway) rssKB() int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(g.cmd.Process.Pid) + "/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return -1
}

// upstream is an app behind the gateway whose behaviour a test can change.
type upstream struct {
	srv   *http.Server
	addr  string
	delay atomic.Int64 // nanoseconds before answering
}

func startUpstream(t *testing.T, addr string) *upstream {
	t.Helper()
	if addr == "" {
		addr = testport.Addr(t)
	}
	u := &upstream{addr: addr}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if d := time.Duration(u.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "user="+r.Header.Get("X-Portero-User"))
	})}
	var ln net.Listener
	var err error
	for range 50 { // the address may still be in TIME_WAIT after a restart
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = u.srv.Serve(ln) }()
	t.Cleanup(func() { _ = u.srv.Close() })
	return u
}

// result counts what the load's clients saw.
type result struct {
	mu       sync.Mutex
	byStatus map[int]int
	errors   map[string]int
	total    int
	wait     *sync.WaitGroup // done when every worker stopped
}

func (r *result) add(status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		r.errors[msg]++
		return
	}
	r.byStatus[status]++
}

func (r *result) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"total": r.total, "status": r.byStatus, "errors": r.errors})
	return string(b)
}

func (r *result) count(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byStatus[status]
}

func (r *result) failed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.errors {
		n += c
	}
	for s, c := range r.byStatus {
		if s != 200 {
			n += c
		}
	}
	return n
}

// load sends GET path with the token from workers keep-alive clients until
// ctx ends, at most one request per worker at a time.
func load(ctx context.Context, addr, path, token string, workers int) *result {
	r := &result{byStatus: map[int]int{}, errors: map[string]int{}}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					r.add(0, err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.add(resp.StatusCode, nil)
			}
		}()
	}
	r.wait = &wg
	return r
}

func member(t *testing.T, iss *testissuer.Issuer) string {
	c := iss.Claims("alice", "portero")
	c["roles"] = []string{"acme:administrator"}
	c["exp"] = time.Now().Add(2 * time.Hour).Unix()
	return iss.Sign(t, c)
}

// A broken policy written under load is refused; the last good policy
// keeps serving every request.
func TestBrokenPolicyUnderLoad(t *testing.T) {
	need(t)
	iss := testissuer.New(t)
	up := startUpstream(t, "")
	dir := t.TempDir()
	good := "package portero.authz\n\ndecision := {\"allow\": true, \"status\": 200, \"reason\": \"ok\", \"headers\": {\"X-Portero-User\": input.identity.sub}}\n"
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, iss, up.addr, "policy:\n  dir: "+dir+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), pick(6*time.Second, 60*time.Second))
	defer cancel()
	res := load(ctx, g.public, "/t/acme/x", member(t, iss), 8)
	breakEvery := pick(500*time.Millisecond, 2*time.Second)
	broken := 0
	for ctx.Err() == nil {
		time.Sleep(breakEvery)
		bad := fmt.Sprintf("package portero.authz\n\ndecision := {\"allow\": true, %d\n", broken)
		_ = os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(bad), 0o644)
		broken++
		time.Sleep(breakEvery)
		_ = os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(good), 0o644)
	}
	res.wait.Wait()
	t.Logf("broken policies written: %d; clients saw %s", broken, res)
	if res.failed() != 0 || res.count(200) == 0 {
		t.Fatalf("requests failed while broken policies were refused: %s", res)
	}
	if n := g.metric(`portero_policy_reloads_total{result="failure"}`); n < 1 {
		t.Fatalf("no refused reload counted (%v)", n)
	}
}

// SIGTERM under load: requests in flight complete, the process exits 0
// within the shutdown grace, and clients see no 5xx.
func TestSIGTERMUnderLoad(t *testing.T) {
	need(t)
	iss := testissuer.New(t)
	up := startUpstream(t, "")
	up.delay.Store(int64(200 * time.Millisecond)) // keep requests in flight
	g := startGateway(t, iss, up.addr, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := load(ctx, g.public, "/t/acme/x", member(t, iss), 16)
	time.Sleep(pick(2*time.Second, 10*time.Second))
	begin := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not exit within its shutdown grace")
	}
	took := time.Since(begin)
	cancel()
	res.wait.Wait()
	t.Logf("exited after %v with %v; clients saw %s", took, g.exitErr, res)
	if g.exitErr != nil {
		t.Fatalf("exit: %v", g.exitErr)
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	for s, n := range res.byStatus {
		if s >= 500 {
			t.Fatalf("%d requests answered %d during shutdown: %v", n, s, res.byStatus)
		}
	}
	// Refused connections after the listener closed are expected; nothing
	// accepted may be cut off mid-answer.
	for msg, n := range res.errors {
		if !strings.Contains(msg, "connection refused") {
			t.Fatalf("%d requests failed with %q during shutdown", n, msg)
		}
	}
}

// The upstream goes down, comes back slow, then recovers: clients get 502
// then 504 (never a hang), and 200 again as soon as it is healthy.
func TestUpstreamDownAndSlow(t *testing.T) {
	need(t)
	iss := testissuer.New(t)
	up := startUpstream(t, "")
	g := startGateway(t, iss, up.addr, "", "FAULTS_UPSTREAM_TIMEOUT=1s")
	tok := member(t, iss)
	get := func() (int, time.Duration) {
		req, _ := http.NewRequest("GET", "http://"+g.public+"/t/acme/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		begin := time.Now()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("client error: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(begin)
	}
	if s, _ := get(); s != 200 {
		t.Fatalf("healthy: %d", s)
	}
	_ = up.srv.Close()
	if s, _ := get(); s != http.StatusBadGateway {
		t.Fatalf("upstream down: %d, want 502", s)
	}
	up = startUpstream(t, up.addr)
	up.delay.Store(int64(3 * time.Second))
	if s, took := get(); s != http.StatusGatewayTimeout || took > 2500*time.Millisecond {
		t.Fatalf("upstream slow: %d after %v, want 504 after about the 1s timeout", s, took)
	}
	up.delay.Store(0)
	if s, _ := get(); s != 200 {
		t.Fatalf("recovered: %d", s)
	}
	if n := g.metric(`portero_upstream_errors_total{route="app"}`); n != 2 {
		t.Fatalf("upstream errors counted: %v, want 2", n)
	}
}

// Idle keep-alive connections: memory per connection, and memory given
// back after they close (bench/idleconns does the measuring).
func TestIdleConnections(t *testing.T) {
	need(t)
	n := pick(2000, 10000)
	out, err := exec.Command(filepath.Join(binDir, "idleconns"), "-bin", filepath.Join(binDir, "portero"),
		"-c", "../bench/idleconns/gateway.yaml", "-n", strconv.Itoa(n), "-settle", "12s").CombinedOutput()
	if err != nil {
		t.Fatalf("idleconns: %v\n%s", err, out)
	}
	var m map[string]float64
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("idleconns output: %v\n%s", err, out)
	}
	t.Logf("%d idle connections: %.1f KB each open, %.0f KB kept after they closed", n, m["kb_per_idle_connection"], m["kb_kept_after_close"])
	// A regression guard, not the target: 32 KB each before idle memory was
	// returned; see docs for the measured figure.
	if m["kb_per_idle_connection"] > 28 {
		t.Fatalf("%.1f KB per idle connection", m["kb_per_idle_connection"])
	}
	if m["kb_kept_after_close"] > 64*1024 {
		t.Fatalf("%.0f KB kept after the connections closed", m["kb_kept_after_close"])
	}
}

// A soak at a steady rate: resident memory and goroutines stay flat, and
// goroutines return to their level before the load once it stops.
func TestSoak(t *testing.T) {
	need(t)
	iss := testissuer.New(t)
	up := startUpstream(t, "")
	g := startGateway(t, iss, up.addr, "")
	baseGoroutines := g.metric("go_goroutines")
	ctx, cancel := context.WithTimeout(context.Background(), pick(30*time.Second, 10*time.Minute))
	defer cancel()
	res := load(ctx, g.public, "/t/acme/x", member(t, iss), 8)
	type sample struct {
		rss        int
		goroutines float64
	}
	var samples []sample
	tick := time.NewTicker(pick(3*time.Second, 15*time.Second))
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			samples = append(samples, sample{g.rssKB(), g.metric("go_goroutines")})
		}
	}
	res.wait.Wait()
	// The load's connections take a moment to end their goroutines, longer
	// on a busy machine: wait up to 15 s for the count to settle at the
	// limit below (a leak does not settle).
	limit := baseGoroutines + 2*8 + 4
	after := g.metric("go_goroutines")
	for deadline := time.Now().Add(15 * time.Second); after > limit && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		after = g.metric("go_goroutines")
	}
	t.Logf("soak: %s; samples (RSS KB, goroutines): %v; goroutines before %v, after %v", res, samples, baseGoroutines, after)
	if res.failed() != 0 {
		t.Fatalf("failed requests during the soak: %s", res)
	}
	if len(samples) < 4 {
		t.Fatalf("too few samples: %v", samples)
	}
	// Flat: the second half's peak within 25 % (and 16 MB) of the first
	// half's peak.
	half := len(samples) / 2
	peak := func(s []sample) int {
		m := 0
		for _, x := range s {
			m = max(m, x.rss)
		}
		return m
	}
	if first, second := peak(samples[:half]), peak(samples[half:]); float64(second) > float64(first)*1.25+16*1024 {
		t.Fatalf("RSS grew during the soak: first half peak %d KB, second half %d KB", first, second)
	}
	// Idle connections to the upstream stay pooled (two goroutines each,
	// one per worker's connection); anything beyond is a leak.
	if after > limit {
		t.Fatalf("goroutines leaked: %v before, %v after the load", baseGoroutines, after)
	}
}
