package deploy_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/mail"
	"github.com/portero-gateway/portero/proxy"
)

const (
	dashboardFile = "grafana/portero.json"
	rulesFile     = "prometheus/alerts.yml"
	rulesTestFile = "prometheus/alerts_test.yml"
)

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": "…"}
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func loadRules(t *testing.T) ruleGroups {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var g ruleGroups
	if err := yaml.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return g
}

// query is one PromQL expression and where it is written.
type query struct{ where, expr string }

// queries are every PromQL expression of the dashboard (panel targets and
// template variables) and of the alert rules.
func queries(t *testing.T) []query {
	t.Helper()
	var qs []query
	d := loadDashboard(t)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		inner := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`).FindStringSubmatch(q)
		if inner == nil {
			t.Errorf("dashboard variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		qs = append(qs, query{"dashboard variable " + v.Name, inner[1]})
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("dashboard panel %q (%s)", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alert " + r.Alert + r.Record, r.Expr})
		}
	}
	return qs
}

// The dashboard is a well-formed Grafana model: unique panel ids, panels
// inside the 24-column grid, a Prometheus query on every panel.
func TestDashboardModel(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard without title or uid")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target %s has no expression", p.Title, tg.RefID)
			}
		}
	}
}

// Every metric a dashboard panel, a dashboard variable or an alert rule
// names is one the gateway exports: the names registered on a whole
// gateway's registry (internal/gatewaytest, wired as serve wires it, with
// an access store and master access, plus the public listener's connection
// limiter), and the few serve registers itself (cmd/portero).
func TestQueriesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	for _, q := range queries(t) {
		names := metricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", q.where, q.expr)
		}
		for _, n := range names {
			if !exported[n] && !exported[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] {
				t.Errorf("%s names %s, which the gateway does not export", q.where, n)
			}
		}
	}
}

// The name check itself: a misspelt or removed metric is caught.
func TestQueriesNameExportedMetricsCatchesATypo(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	for _, expr := range []string{
		`sum(rate(portero_request_total[5m]))`,
		`histogram_quantile(0.9, sum by (le) (rate(portero_policy_eval_seconds_bucket[5m])))`,
		`portero_access_store_up == 0 and on() portero_store_up`,
	} {
		missing := 0
		for _, n := range metricNames(expr) {
			if !exported[n] && !exported[strings.TrimSuffix(n, "_bucket")] {
				missing++
			}
		}
		if missing != 1 {
			t.Errorf("%q: %d unknown metrics found, want 1", expr, missing)
		}
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics are the names the gateway registers.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := gatewaytest.NewMaster(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	proxy.LimitListener(ln, config.Listen{MaxConnections: 1}, m.Registry)
	names := map[string]bool{}
	// The mail sender's, which serve registers when mail: is configured.
	mailReg := prometheus.NewRegistry()
	if _, err := mail.New(config.Mail{From: "portero@example.com", SMTP: config.SMTP{TLS: "none", Timeout: time.Second}, Batch: 1},
		nil, slog.New(slog.DiscardHandler), mailReg); err != nil {
		t.Fatal(err)
	}
	for _, reg := range []*prometheus.Registry{m.Registry, mailReg} {
		descs := make(chan *prometheus.Desc)
		go func() { reg.Describe(descs); close(descs) }()
		for d := range descs {
			// Desc has no accessor for its name; its String is stable and
			// names it as fqName.
			if mm := descName.FindStringSubmatch(d.String()); mm != nil {
				names[mm[1]] = true
			}
		}
	}
	if !names["portero_requests_total"] || !names["portero_master_access_active"] {
		t.Fatalf("the gateway's registry lacks its own metrics: %v", slices.Sorted(maps.Keys(names)))
	}
	// What serve registers itself, beside the packages' metrics.
	for _, n := range servedByServe(t) {
		names[n] = true
	}
	return names
}

// servedByServe are the metrics cmd/portero registers itself.
func servedByServe(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../cmd/portero/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/portero: %v", err)
	}
	var names []string
	opts := regexp.MustCompile(`prometheus\.(?:Counter|Gauge|Histogram|Summary)Opts\{\s*Name:\s*"(\w+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range opts.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	return names
}

var (
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promqlRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlOffset   = regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`)
	promqlIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "offset": true, "inf": true, "nan": true}
)

// metricNames are the metric names a PromQL expression selects: what is
// left once strings, label matchers, ranges, grouping labels and function
// calls are taken out. It is not a parser (promtool checks the syntax);
// it reads the expressions the dashboard and the rules are written in.
func metricNames(expr string) []string {
	s := promqlStrings.ReplaceAllString(expr, " ")
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlRanges.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	s = promqlOffset.ReplaceAllString(s, " ")
	var names []string
	for _, m := range promqlIdent.FindAllStringSubmatchIndex(s, -1) {
		word := s[m[0]:m[1]]
		if m[2] >= 0 || promqlKeywords[strings.ToLower(word)] {
			continue // a function call, or an operator
		}
		if m[0] > 0 && (s[m[0]-1] >= '0' && s[m[0]-1] <= '9' || s[m[0]-1] == '.') {
			continue // 1e3, 0.99's tail
		}
		if !slices.Contains(names, word) {
			names = append(names, word)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string]string{
		`sum by (route, decision) (rate(portero_requests_total{job=~"$job",route=~"$route"}[$__rate_interval]))`: "portero_requests_total",
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`:                                             "x_bucket",
		`a > 2 * ((sum(rate(b[1h] offset 5m)) or vector(0)) / sum(rate(c[1h] offset 5m))) + 0.05`:                "a b c",
		`d > 0 and time() - d > on(instance) group_left e`:                                                       "d e",
		`label_replace(f, "dst", "$1", "src", "(.*)") unless g{l="and or"}`:                                      "f g",
		`h == bool 1e3`: "h",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// promtool checks the rules and runs their unit tests (alerts_test.yml),
// and checks every dashboard expression parses (as recording rules, with
// Grafana's variables given values). Skipped without promtool unless
// PORTERO_E2E=1 (scripts/test.sh installs Debian's prometheus package).
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("PORTERO_E2E") == "1" {
			t.Fatal("promtool not found; PORTERO_E2E=1 needs it (apt-get install prometheus)")
		}
		t.Skip("promtool not found: install Debian's prometheus package to check the rules (required with PORTERO_E2E=1)")
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", rulesFile)
	run("test", "rules", rulesTestFile)

	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*", "$route", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range queries(t) {
		if !strings.HasPrefix(q.where, "dashboard") {
			continue
		}
		expr, _ := json.Marshal(vars.Replace(q.expr)) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, expr)
	}
	file := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", file)
}
