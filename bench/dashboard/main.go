// Command dashboard draws the panels of Portero's Grafana dashboard
// (deploy/grafana/portero.json) from a real run, for docs/screenshots where
// Grafana cannot be installed. It builds and starts the gateway (access
// store, watched policy directory, forward-auth listener), the bench's
// issuer and upstream, and a Prometheus server (Debian's prometheus
// package) scraping the ops listener every 2 s; drives a few minutes of
// mixed traffic through phases (a policy that does not compile, the
// upstream gone, the store file moved away, a burst of unauthenticated
// requests); then asks that Prometheus for every panel's own expression
// (query_range) and plots the answers, one tile per panel, into a PNG.
//
// From the repository root: go -C bench run ./dashboard [-phase 45s]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	phase := flag.Duration("phase", 45*time.Second, "length of each phase of the run (there are 7)")
	rate := flag.Int("rate", 150, "requests/s of the steady traffic")
	out := flag.String("out", "docs/screenshots/dashboard.png", "the PNG to write")
	dash := flag.String("dashboard", "deploy/grafana/portero.json", "the Grafana dashboard whose panels are drawn")
	promBin := flag.String("prometheus", "prometheus", "the Prometheus server binary")
	repo := flag.String("repo", "..", "the repository root (-out and -dashboard are relative to it)")
	flag.BoolVar(&keepWork, "keep", false, "keep the work directory (configs, logs, the store, Prometheus's data)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("dashboard: ")
	if err := run(*repo, *phase, *rate, *out, *dash, *promBin); err != nil {
		log.Fatal(err)
	}
}

// keepWork keeps the work directory for a look at the logs.
var keepWork bool

// procs are the processes this program started; stopped by their own pid.
type procs struct {
	mu   sync.Mutex
	list []*exec.Cmd
}

func (p *procs) start(dir, logName string, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	f, err := os.Create(filepath.Join(dir, logName+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.mu.Lock()
	p.list = append(p.list, cmd)
	p.mu.Unlock()
	return cmd, nil
}

func (p *procs) stop(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
}

func (p *procs) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.list) - 1; i >= 0; i-- {
		if p.list[i].ProcessState == nil {
			p.stop(p.list[i])
		}
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func waitStatus(u string, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within 30s", u, want)
}

const gatewayConfig = `listen:
  public: %s
  ops: %s
  client_connections: {per_minute: 1000000, burst: 100000}
tenant:
  path: /t/{tenant}/
oidc:
  issuer: %s
  audiences: [portero]
  client_id: bench
  client_secret: bench
  redirect_url: http://%s/.portero/callback
session:
  keys: ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
master_access:
  enabled: true
  webhook: http://%s/hook   # nothing listens: every notification fails
  webhook_timeout: 500ms
routes:
  - name: app
    upstream: %s
    api: true
    timeout: 2s
access:
  store: %s
  watch_interval: 200ms
policy:
  dir: %s
forward_auth:
  listen: %s
  trusted_proxies: [127.0.0.1/32]
log:
  level: warn
`

func run(repo string, phase time.Duration, rate int, outPath, dashPath, promBin string) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "cmd/portero")); err != nil {
		return errors.New("-repo must be the repository root (from the root: go -C bench run ./dashboard)")
	}
	if !filepath.IsAbs(outPath) {
		outPath = filepath.Join(repo, outPath)
	}
	prom, err := exec.LookPath(promBin)
	if err != nil {
		return fmt.Errorf("no Prometheus server (%s): apt-get install prometheus", promBin)
	}
	d, err := readDashboard(filepath.Join(repo, dashPath))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "portero-dashboard-")
	if err != nil {
		return err
	}
	if keepWork {
		log.Printf("work directory (kept): %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "bin")
	for _, b := range []struct{ name, dir, pkg string }{
		{"portero", ".", "./cmd/portero"}, {"upstream", "bench", "./upstream"}, {"issuer", "bench", "./issuer"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b.name), b.pkg)
		cmd.Dir = filepath.Join(repo, b.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	var ps procs
	defer ps.stopAll()

	upPort, issPort, pubPort, opsPort, faPort, promPort := freePort(), freePort(), freePort(), freePort(), freePort(), freePort()
	upstreamURL, issuer := "http://"+addr(upPort), "http://"+addr(issPort)
	public, ops, fa := "http://"+addr(pubPort), "http://"+addr(opsPort), "http://"+addr(faPort)
	upstream, err := ps.start(work, "upstream", filepath.Join(bin, "upstream"), "-listen", addr(upPort))
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(work, "token")
	if _, err := ps.start(work, "issuer", filepath.Join(bin, "issuer"), "-listen", addr(issPort), "-token-out", tokenFile, "-groups", "system-admins"); err != nil {
		return err
	}
	if err := waitStatus(upstreamURL+"/", 200); err != nil {
		return err
	}
	if err := waitStatus(issuer+"/jwks", 200); err != nil {
		return err
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}

	// The store: acme, where the issuer's bench-user is an administrator,
	// and globex, where it is not a member.
	db, seed := filepath.Join(work, "access.db"), filepath.Join(work, "seed.jsonl")
	seedText := `{"tenant": {"id": "acme", "name": "Acme", "owner": "bench-user", "master_access": true}}
{"tenant": {"id": "globex", "name": "Globex", "owner": "someone-else", "master_access": true}}
{"member": {"tenant": "acme", "user": "bench-user", "role": "administrator"}}
`
	if err := os.WriteFile(seed, []byte(seedText), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(filepath.Join(bin, "portero"), "admin", "--store", db, "import", seed).CombinedOutput(); err != nil {
		return fmt.Errorf("seed the store: %v\n%s", err, out)
	}
	// The policy: the default bundle, from a watched directory.
	policyDir := filepath.Join(work, "policy")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		return err
	}
	regoFiles, _ := filepath.Glob(filepath.Join(repo, "rego", "*"))
	for _, f := range regoFiles {
		if strings.HasSuffix(f, ".rego") || strings.HasSuffix(f, ".json") {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(policyDir, filepath.Base(f)), b, 0o644); err != nil {
				return err
			}
		}
	}
	cfgPath := filepath.Join(work, "gateway.yaml")
	cfg := fmt.Sprintf(gatewayConfig, addr(pubPort), addr(opsPort), issuer, addr(pubPort), addr(freePort()), upstreamURL, db, policyDir, addr(faPort))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	gw, err := ps.start(work, "portero", filepath.Join(bin, "portero"), "serve", "-c", cfgPath)
	if err != nil {
		return err
	}
	if err := waitStatus(ops+"/readyz", 200); err != nil {
		return fmt.Errorf("%w (see %s)", err, filepath.Join(work, "portero.log"))
	}

	promCfg := filepath.Join(work, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 2s
scrape_configs:
  - job_name: portero
    static_configs:
      - targets: ["%s"]
        labels: {instance: gw1}
`, addr(opsPort))), 0o600); err != nil {
		return err
	}
	promURL := "http://" + addr(promPort)
	if _, err := ps.start(work, "prometheus", prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(work, "tsdb"),
		"--web.listen-address="+addr(promPort)); err != nil {
		return err
	}
	if err := waitStatus(promURL+"/-/ready", 200); err != nil {
		return err
	}

	// Traffic for the whole run, then the phases on top.
	bearer := "Bearer " + strings.TrimSpace(string(token))
	var stopLoad atomic.Bool
	var scan atomic.Bool
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	mix := []struct {
		share  int
		method string
		url    string
		auth   string
		hdr    map[string]string
	}{
		{40, "GET", public + "/t/acme/locations", bearer, nil},          // allowed
		{30, "GET", public + "/t/acme/reviews", bearer, nil},            // allowed
		{6, "GET", public + "/t/globex/reviews", bearer, nil},           // not a member
		{6, "GET", public + "/t/acme/reviews", "", nil},                 // no credentials
		{3, "GET", public + "/t/acme/reviews", "Bearer not-a-jwt", nil}, // a bad token
		{2, "GET", public + "/t/acme/%2e%2e/reviews", bearer, nil},      // a path that is refused
		{13, "GET", fa + "/", bearer, map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/t/acme/reviews", "X-Forwarded-Host": "localhost"}},
	}
	var deck []int
	for i, m := range mix {
		for range m.share {
			deck = append(deck, i)
		}
	}
	do := func(method, u, auth string, hdr map[string]string) {
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			return
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := time.Second * workers / time.Duration(rate)
			t := time.NewTicker(every)
			defer t.Stop()
			for n := w; !stopLoad.Load(); n += 7 {
				<-t.C
				m := mix[deck[n%len(deck)]]
				do(m.method, m.url, m.auth, m.hdr)
				if scan.Load() {
					// A client that tries paths without credentials.
					do("GET", fmt.Sprintf("%s/t/acme/admin/%d", public, n), "", nil)
				}
			}
		}()
	}

	start := time.Now()
	var events []string
	step := func(what string) {
		log.Printf("%5.0fs  %s", time.Since(start).Seconds(), what)
		events = append(events, mmss(time.Since(start))+" "+what)
	}
	step("steady traffic")
	time.Sleep(phase)
	broken := filepath.Join(policyDir, "zz_broken.rego")
	step("a policy file that does not compile (the last good policy keeps serving)")
	if err := os.WriteFile(broken, []byte("package portero.broken\n\nallow if {\n"), 0o644); err != nil {
		return err
	}
	time.Sleep(phase)
	step("fixed: a new revision")
	if err := os.WriteFile(broken, []byte("package portero.extra\n\nversion := 2\n"), 0o644); err != nil {
		return err
	}
	step("master access starts (its webhook fails)")
	admin, err := signIn(public)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if err := masterForm(admin, public, "/.portero/master-access", url.Values{"tenant": {"globex"},
		"reason": {"Ticket SUP-7: the owner cannot see reviews"}, "ticket": {"SUP-7"}, "mode": {"read_only"}, "duration": {"30m"}}); err != nil {
		return fmt.Errorf("start master access: %w", err)
	}
	time.Sleep(phase / 2)
	step("the upstream is stopped")
	ps.stop(upstream)
	time.Sleep(phase)
	step("the upstream is back")
	if _, err := ps.start(work, "upstream2", filepath.Join(bin, "upstream"), "-listen", addr(upPort)); err != nil {
		return err
	}
	time.Sleep(phase / 2)
	step("the store file is moved away")
	if err := os.Rename(db, db+".away"); err != nil {
		return err
	}
	time.Sleep(phase / 2)
	step("the store file is back")
	if err := os.Rename(db+".away", db); err != nil {
		return err
	}
	time.Sleep(phase)
	step("master access ends")
	if err := masterForm(admin, public, "/.portero/master-access/end", nil); err != nil {
		return fmt.Errorf("end master access: %w", err)
	}
	step("a client scans without credentials")
	scan.Store(true)
	time.Sleep(phase)
	scan.Store(false)
	step("steady traffic")
	time.Sleep(phase)
	stopLoad.Store(true)
	wg.Wait()
	time.Sleep(4 * time.Second) // the last scrape
	end := time.Now()
	if gw.ProcessState != nil {
		return fmt.Errorf("the gateway exited early (see %s)", filepath.Join(work, "portero.log"))
	}

	tiles, err := queryPanels(promURL, d, start, end)
	if err != nil {
		return err
	}
	caption := []string{fmt.Sprintf("Portero's Grafana dashboard (deploy/grafana/portero.json) drawn by bench/dashboard: each panel's own query answered by Prometheus %s "+
		"scraping a real gateway every 2 s, %s of traffic at ~%d requests/s on %s (rate interval %s).",
		promVersion(prom), end.Sub(start).Round(time.Second), rate, end.UTC().Format("2006-01-02"), rateInterval),
	}
	line := "Minutes into the run:"
	for _, e := range events[1:] {
		if len(line)+len(e) > 200 {
			caption = append(caption, line)
			line = "   "
		}
		line += " " + e + ";"
	}
	caption = append(caption, strings.TrimSuffix(line, ";")+".")
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	if err := render(tiles, caption, end.Sub(start).Seconds(), outPath); err != nil {
		return err
	}
	log.Printf("wrote %s (%d panels)", outPath, len(tiles))
	return nil
}

// signIn signs a browser in through the code flow and returns it.
func signIn(public string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(public + "/.portero/login?rd=/.portero/userinfo")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign-in ended with %s at %s", resp.Status, resp.Request.URL)
	}
	return c, nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// masterForm submits a master-access form as the signed-in browser does:
// the page's CSRF token, the gateway's Origin.
func masterForm(c *http.Client, public, path string, form url.Values) error {
	resp, err := c.Get(public + path)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", string(m[1]))
	req, _ := http.NewRequest("POST", public+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", public)
	noRedirect := *c
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s (%s)", path, resp.Status, reasonIn(body))
	}
	return nil
}

func mmss(d time.Duration) string {
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func promVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	if f := strings.Fields(string(out)); len(f) >= 3 {
		return f[2]
	}
	return ""
}

type dashboard struct {
	Panels []struct {
		Type      string `json:"type"`
		Title     string `json:"title"`
		GridPos   struct{ X, Y, W, H int }
		FieldConf struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(path string) (*dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// series is one line of a panel.
type series struct {
	name string
	xy   plotter.XYs
}

type tile struct {
	title, unit, kind string
	lines             []series
}

// rateInterval stands in for Grafana's $__rate_interval: four scrape
// intervals and then some, as Grafana would pick for a 2 s scrape.
const rateInterval = "15s"

var legendVar = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

func queryPanels(promURL string, d *dashboard, start, end time.Time) ([]tile, error) {
	vars := strings.NewReplacer("$__rate_interval", rateInterval, "$job", ".*", "$instance", ".*", "$route", ".*")
	var tiles []tile
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		t := tile{title: p.Title, unit: p.FieldConf.Defaults.Unit, kind: p.Type}
		for _, tg := range p.Targets {
			q := url.Values{"query": {vars.Replace(tg.Expr)}, "start": {strconv.FormatInt(start.Unix(), 10)},
				"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"2"}}
			resp, err := http.Get(promURL + "/api/v1/query_range?" + q.Encode())
			if err != nil {
				return nil, err
			}
			var body struct {
				Status string `json:"status"`
				Error  string `json:"error"`
				Data   struct {
					Result []struct {
						Metric map[string]string `json:"metric"`
						Values [][2]any          `json:"values"`
					} `json:"result"`
				} `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || body.Status != "success" {
				return nil, fmt.Errorf("panel %q: %s: %v %s", p.Title, tg.Expr, err, body.Error)
			}
			for _, r := range body.Data.Result {
				name := legendVar.ReplaceAllStringFunc(tg.LegendFormat, func(m string) string {
					return r.Metric[legendVar.FindStringSubmatch(m)[1]]
				})
				if name == "" {
					name = fmt.Sprint(r.Metric)
				}
				var xy plotter.XYs
				for _, v := range r.Values {
					ts, _ := v[0].(float64)
					s, _ := v[1].(string)
					f, err := strconv.ParseFloat(s, 64)
					if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
						continue
					}
					xy = append(xy, plotter.XY{X: ts - float64(start.Unix()), Y: f})
				}
				if len(xy) > 0 {
					t.lines = append(t.lines, series{name, xy})
				}
			}
		}
		sort.SliceStable(t.lines, func(i, j int) bool { return t.lines[i].name < t.lines[j].name })
		tiles = append(tiles, t)
	}
	return tiles, nil
}

// scale turns a panel's unit into a factor and an axis label.
func scale(unit string) (float64, string) {
	switch unit {
	case "s":
		return 1000, "ms"
	case "percentunit":
		return 100, "%"
	case "reqps":
		return 1, "requests/s"
	case "ops":
		return 1, "lookups/s"
	case "cps":
		return 1, "connections/s"
	}
	return 1, ""
}

func render(tiles []tile, caption []string, length float64, path string) error {
	const cols = 4
	rows := (len(tiles) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	for i, t := range tiles {
		p := plot.New()
		p.Title.Text = t.title
		p.Title.TextStyle.Font.Size = vg.Points(11)
		factor, label := scale(t.unit)
		p.Y.Label.Text = label
		p.X.Label.Text = "minutes into the run"
		p.X.Tick.Marker = minuteTicks{}
		p.X.Min, p.X.Max = 0, length
		p.Y.Min = 0
		p.Legend.Top = true
		p.Legend.TextStyle.Font.Size = vg.Points(7)
		p.Legend.Padding = vg.Points(1)
		p.Add(plotter.NewGrid())
		if len(t.lines) == 0 {
			p.Title.Text += " (no data in this run)"
		}
		shown := t.lines
		if len(shown) > 8 {
			shown = shown[:8]
		}
		for j, s := range t.lines {
			xy := make(plotter.XYs, len(s.xy))
			for k, v := range s.xy {
				xy[k] = plotter.XY{X: v.X, Y: v.Y * factor}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(j)
			l.Width = vg.Points(1.2)
			p.Add(l)
			if j < len(shown) {
				name := s.name
				if t.kind == "stat" {
					name += fmt.Sprintf(" (last %s)", strconv.FormatFloat(s.xy[len(s.xy)-1].Y*factor, 'g', 4, 64))
				}
				if len(name) > 42 {
					name = name[:40] + "…"
				}
				p.Legend.Add(name, l)
			}
		}
		plots[i/cols][i%cols] = p
	}
	const tileW, tileH = 5.2 * vg.Inch, 3.3 * vg.Inch
	headH := vg.Length(len(caption))*0.24*vg.Inch + 0.15*vg.Inch
	w, h := cols*tileW, vg.Length(rows)*tileH+headH
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	sty := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(12)), XAlign: draw.XLeft, YAlign: draw.YCenter,
		Handler: plot.DefaultTextHandler}
	for i, line := range caption {
		dc.FillText(sty, vg.Point{X: 0.2 * vg.Inch, Y: h - 0.22*vg.Inch - vg.Length(i)*0.24*vg.Inch}, line)
	}
	body := draw.Crop(dc, 0, 0, 0, -headH)
	canvases := plot.Align(plots, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(10), PadY: vg.Points(10),
		PadTop: vg.Points(4), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}, body)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// minuteTicks marks whole minutes of the run.
type minuteTicks struct{}

func (minuteTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for s := math.Ceil(min/60) * 60; s <= max; s += 60 {
		ticks = append(ticks, plot.Tick{Value: s, Label: strconv.Itoa(int(s / 60))})
	}
	return ticks
}

var reasonCode = regexp.MustCompile(`Reason: <code>([^<]+)</code>`)

// reasonIn is the reason id of one of Portero's denial pages.
func reasonIn(page []byte) string {
	if m := reasonCode.FindSubmatch(page); m != nil {
		return string(m[1])
	}
	return fmt.Sprintf("%.200s", page)
}
