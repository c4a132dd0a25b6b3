// Command benchrun measures Portero against the proxies and do-it-yourself
// policy stacks an operator would otherwise deploy: same upstream, same
// machine, same load (wrk over loopback), one row each. It writes a Markdown
// table and a bar chart. bench/run installs the tools and calls it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration, warmup time.Duration
	conns, threads   int
	rounds           int
	fixedRate        int // requests/s of the fixed-rate latency run (0: none)
	fixedDuration    time.Duration
	smoke            bool
	outDir           string // where results go
	workDir          string // scratch: configs, logs, binaries
	repo             string
	opa              string
	oauth2Proxy      string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load duration per row")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up load before each measured run")
	flag.IntVar(&o.conns, "connections", 64, "wrk connections (keep-alive)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per row (the table shows medians)")
	flag.IntVar(&o.fixedRate, "fixed-rate", 1000, "requests/s of the fixed-rate latency run after each row's load in every round (0: skip)")
	flag.DurationVar(&o.fixedDuration, "fixed-duration", 5*time.Second, "length of each fixed-rate latency run")
	flag.BoolVar(&o.smoke, "smoke", false, "a quick check of the harness: 1 s rows, results in a scratch directory")
	flag.StringVar(&o.outDir, "out", "docs", "directory for performance.md and performance.png")
	flag.StringVar(&o.opa, "opa", "", "path to the opa binary (empty: look in PATH)")
	flag.StringVar(&o.oauth2Proxy, "oauth2-proxy", "", "path to the oauth2-proxy binary (empty: look in PATH)")
	flag.Parse()
	if o.smoke {
		o.duration, o.warmup, o.conns, o.rounds, o.fixedDuration = time.Second, 0, 8, 1, time.Second
	}
	wd, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	o.repo = wd
	if o.workDir, err = os.MkdirTemp("", "portero-bench-"); err != nil {
		log.Fatal(err)
	}
	if o.smoke {
		o.outDir = o.workDir
	}
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (apt-get install wrk); bench/run installs it")
	}
	bin := filepath.Join(o.workDir, "bin")
	// Portero is built in the main module (the repository root); the bench's
	// own programs in the bench module (bench/, its own go.mod).
	for _, b := range []struct{ name, module, pkg string }{
		{"portero", ".", "./cmd/portero"}, {"upstream", "bench", "./upstream"}, {"bareproxy", "bench", "./bareproxy"},
		{"issuer", "bench", "./issuer"}, {"opa-adapter", "bench", "./opa-adapter"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b.name), b.pkg)
		cmd.Dir = filepath.Join(o.repo, b.module)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	h := &harness{o: o, bin: bin, dir: o.workDir}
	defer h.stopAll()

	upPort, issPort := freePort(), freePort()
	h.upstream = fmt.Sprintf("http://127.0.0.1:%d", upPort)
	h.issuer = fmt.Sprintf("http://127.0.0.1:%d", issPort)
	tokenFile, jwksFile := filepath.Join(o.workDir, "token"), filepath.Join(o.workDir, "jwks.json")
	h.start("upstream", nil, filepath.Join(bin, "upstream"), "-listen", hostport(upPort))
	h.start("issuer", nil, filepath.Join(bin, "issuer"), "-listen", hostport(issPort), "-token-out", tokenFile, "-jwks-out", jwksFile, "-users", strconv.Itoa(storeUsers))
	if err := waitStatus(h.upstream+"/", 200); err != nil {
		return err
	}
	if err := waitStatus(h.issuer+"/jwks", 200); err != nil {
		return err
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	h.auth = "Bearer " + string(token)
	h.jwks, _ = os.ReadFile(jwksFile)

	rows := h.measureRows(h.rows())
	h.dir = filepath.Join(o.workDir, "extras")
	_ = os.MkdirAll(h.dir, 0o755)
	extra := h.porteroExtras()
	extra.imported = h.imported
	report := render(o, rows, extra, h.versions())
	mdPath := filepath.Join(o.outDir, "performance.md")
	if err := writeReport(mdPath, report); err != nil {
		return err
	}
	pngPath := filepath.Join(o.outDir, "performance.png")
	if err := drawChart(pngPath, rows); err != nil {
		return err
	}
	log.Printf("wrote %s and %s", mdPath, pngPath)
	if !o.smoke {
		if err := writeReadmeSummary("README.md", report, rows); err != nil {
			return err
		}
		log.Printf("wrote README.md's bench summary")
	}
	if o.smoke {
		fmt.Println(report)
		for _, r := range rows {
			if r.skipped == "" && (r.rps <= 0 || r.non2xx > 0 || r.fixed.errors > 0) {
				return fmt.Errorf("smoke: row %q: %.0f req/s, %d non-2xx responses", r.name, r.rps, r.non2xx+r.fixed.errors)
			}
		}
	}
	return nil
}

// harness runs processes and the load for each row.
type harness struct {
	o          options
	bin        string
	upstream   string
	issuer     string
	auth       string
	jwks       []byte
	procs      []*proc
	dir        string      // the scratch directory of the row being set up
	imported   storeImport // set by the store row
	storeEdits *target     // the store row's gateway, loaded with edits
	storeDB    string      // the store row's access store, seeded
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func (h *harness) start(name string, env []string, path string, args ...string) *proc {
	logPath := filepath.Join(h.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath}
	h.procs = append(h.procs, p)
	return p
}

func (p *proc) stop() {
	if p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (h *harness) stopAll() {
	for i := len(h.procs) - 1; i >= 0; i-- {
		h.procs[i].stop()
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// handedOut holds every port freePort has returned in this run.
var handedOut = map[int]bool{}

// freePort returns a free loopback port for a process the harness starts,
// never one it returned before in this run. It comes from below Linux's
// ephemeral range (32768–60999), which the load generators' own outgoing
// connections draw from, so none of them can take it before the process
// listens.
func freePort() int {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if handedOut[port] {
			continue
		}
		l, err := net.Listen("tcp", hostport(port))
		if err != nil {
			continue
		}
		l.Close()
		handedOut[port] = true
		return port
	}
	log.Fatal("no free port in 20000–32000")
	return 0
}

func hostport(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// waitStatus polls url until it answers want, for at most 20 s.
func waitStatus(url string, want int) error { return waitStatusWith(url, want, "") }

// rowSpec is one configuration under load.
type rowSpec struct {
	name string
	note string
	// setup starts the row's processes and returns what to load.
	setup func() (target, error)
}

type result struct {
	name, note, skipped string
	rps                 float64 // median over the rounds
	p50, p99            time.Duration
	cpu                 float64 // cores
	peakMiB             float64
	non2xx              int
	// fixed is the latency at a fixed request rate below saturation.
	fixed    fixedRate
	perRound []result
}

// rowRun is a row that was set up, with its results round by round.
type rowRun struct {
	spec    rowSpec
	dir     string
	tg      target
	skipped string
	rounds  []result
}

// measureRows sets every row up at once, then loads them in interleaved
// rounds (row 1, 2, … then again), so that a slow spell of this shared
// machine touches every row alike; each row reports the median of its
// rounds. In each round a fixed-rate latency run follows the row's load.
func (h *harness) measureRows(specs []rowSpec) []result {
	base := len(h.procs)
	defer func() {
		for _, p := range h.procs[base:] {
			p.stop()
		}
		h.procs = h.procs[:base]
	}()
	runs := make([]*rowRun, len(specs))
	for i, spec := range specs {
		rr := &rowRun{spec: spec, dir: filepath.Join(h.o.workDir, fmt.Sprintf("row%02d", i+1))}
		runs[i] = rr
		if err := os.MkdirAll(rr.dir, 0o755); err != nil {
			rr.skipped = err.Error()
			continue
		}
		h.dir = rr.dir
		log.Printf("set up row %d: %s", i+1, spec.name)
		tg, err := spec.setup()
		if err != nil {
			rr.skipped = err.Error()
			log.Printf("  skipped: %s", rr.skipped)
			continue
		}
		rr.tg = tg
		if h.o.warmup > 0 {
			if _, err := h.wrk(tg, rr.dir, h.o.warmup); err != nil {
				rr.skipped = "warm-up: " + err.Error()
			}
		}
	}
	for round := 1; round <= h.o.rounds; round++ {
		for i, rr := range runs {
			if rr.skipped != "" {
				continue
			}
			res, err := h.measureOnce(rr)
			if err != nil {
				rr.skipped = err.Error()
				log.Printf("round %d, row %d: %s", round, i+1, err)
				continue
			}
			rr.rounds = append(rr.rounds, res)
			log.Printf("round %d, row %d: %.0f req/s, p50 %s, p99 %s, cpu %.2f cores; at %d req/s: p50 %s, p99 %s, %d errors",
				round, i+1, res.rps, res.p50, res.p99, res.cpu, res.fixed.rate, res.fixed.p50, res.fixed.p99, res.fixed.errors)
		}
	}
	out := make([]result, len(runs))
	for i, rr := range runs {
		out[i] = summarize(rr)
		if out[i].skipped != "" {
			continue
		}
		out[i].peakMiB = peakRSS(treePIDs(rr.tg.measured))
	}
	return out
}

// measureOnce loads a row once with wrk, reads its CPU use, then offers
// it the fixed rate.
func (h *harness) measureOnce(rr *rowRun) (result, error) {
	var res result
	pids := treePIDs(rr.tg.measured)
	cpu0 := cpuTicks(pids)
	t0 := time.Now()
	out, err := h.wrk(rr.tg, rr.dir, h.o.duration)
	wall := time.Since(t0)
	pids = treePIDs(rr.tg.measured) // nginx may have started workers
	cpu1 := cpuTicks(pids)
	if err != nil {
		return res, err
	}
	if err := parseWrk(out, &res); err != nil {
		return res, err
	}
	res.cpu = float64(cpu1-cpu0) / clockTicks / wall.Seconds()
	if h.o.fixedRate > 0 {
		res.fixed = fixedRateLoad(rr.tg, h.o.fixedRate, h.o.fixedDuration)
	}
	return res, nil
}

// summarize takes the median of a row's rounds; a row that failed in a
// later round keeps the rounds it finished.
func summarize(rr *rowRun) result {
	res := result{name: rr.spec.name, note: rr.spec.note, skipped: rr.skipped, perRound: rr.rounds}
	if len(rr.rounds) == 0 {
		return res
	}
	res.skipped = ""
	var rps, cpu []float64
	var p50, p99, fixed50, fixed99 []time.Duration
	for _, r := range rr.rounds {
		rps, cpu, p50, p99 = append(rps, r.rps), append(cpu, r.cpu), append(p50, r.p50), append(p99, r.p99)
		fixed50, fixed99 = append(fixed50, r.fixed.p50), append(fixed99, r.fixed.p99)
		res.non2xx += r.non2xx
		res.fixed.rate = r.fixed.rate
		res.fixed.sent += r.fixed.sent
		res.fixed.errors += r.fixed.errors
	}
	res.rps, res.cpu, res.p50, res.p99 = median(rps), median(cpu), median(p50), median(p99)
	res.fixed.p50, res.fixed.p99 = median(fixed50), median(fixed99)
	return res
}

// parseWrk reads requests/s, the 50th and 99th percentile latencies and the
// count of non-2xx/3xx answers from wrk --latency output.
func parseWrk(out string, res *result) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			res.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			res.p50 = parseWrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			res.p99 = parseWrkDuration(f[1])
		case len(f) == 5 && f[0] == "Non-2xx":
			res.non2xx, _ = strconv.Atoi(f[4])
		}
	}
	if res.rps == 0 || res.p50 == 0 {
		return fmt.Errorf("could not read wrk's output:\n%s", out)
	}
	return nil
}

func parseWrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat CPU times (100 on Linux).
const clockTicks = 100

// treePIDs returns the processes and all their descendants.
func treePIDs(procs []*proc) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			parent[pid] = ppid
		}
	}
	in := map[int]bool{}
	for _, p := range procs {
		if p.cmd.Process != nil {
			in[p.cmd.Process.Pid] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid], changed = true, true
			}
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		out = append(out, pid)
	}
	return out
}

// statFields returns /proc/PID/stat after the command name: state, ppid, ...
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// cpuTicks sums user and system time of the processes.
func cpuTicks(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		f := statFields(pid)
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			total += u + s
		}
	}
	return total
}

// peakRSS sums the processes' peak resident set (VmHWM), in MiB.
func peakRSS(pids []int) float64 { return sumStatus(pids, "VmHWM:") }

// rss sums the processes' current resident set, in MiB.
func rss(pids []int) float64 { return sumStatus(pids, "VmRSS:") }

func sumStatus(pids []int, field string) float64 {
	var kb float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, field); ok {
				v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				kb += v
			}
		}
	}
	return kb / 1024
}

// sessionCookie signs in through the real code flow against the bench
// issuer and returns the Cookie header a browser would then send, and the
// body of the page it landed on.
func sessionCookie(gateway, page string) (string, []byte, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := client.Get(gateway + page)
	if err != nil {
		return "", nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", nil, fmt.Errorf("sign-in ended with %s at %s", resp.Status, resp.Request.URL)
	}
	req, _ := http.NewRequest("GET", gateway+page, nil)
	var parts []string
	for _, c := range jar.Cookies(req.URL) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return "Cookie: " + strings.Join(parts, "; "), body, nil
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func memTotalGiB() float64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return kb / 1024 / 1024
		}
	}
	return 0
}
