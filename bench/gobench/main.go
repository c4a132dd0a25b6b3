// Command gobench runs the Go benchmarks of the request path's pieces and
// writes their figures where the documentation quotes them, so the docs
// cannot drift from the code: the table in docs/performance.md, the summary
// sentence in README.md (each between gobench markers) and
// docs/gobench.json, which internal/archtest checks the code against.
//
// Run from the repository root: go -C bench run ./gobench [-count 3] [-cpu 1]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one benchmark the docs quote.
type row struct {
	Pkg   string // package directory, relative to the repository root
	Bench string // full benchmark name, sub-benchmarks included
	Label string // how the table names it
	What  string
}

var rows = []row{
	{"policy", "DecideDefaultPolicy", "DecideDefaultPolicy", "build the input (only the parts the policy reads) + evaluate the default policy + read the decision"},
	{"policy", "DecideCached", "DecideCached", "the same decision from the decision cache"},
	{"policy", "DecideTrivialPolicy", "DecideTrivialPolicy", "`decision := {\"allow\": true}`: OPA's fixed cost per evaluation"},
	{"policy", "InputValue", "InputValue", "building the whole input `ast.Value`"},
	{"proxy", "DecisionPath", "DecisionPath", "sanitize, route, bearer auth (token cache hit), decide (cached), log, deny"},
	{"proxy", "RequestPath", "RequestPath", "the whole path, forwarded over loopback to an in-process upstream"},
	{"proxy", "AssertionSignFresh", "AssertionSignFresh", "one ES256 assertion signature"},
	{"proxy", "DecideWithStoreFacts/edit", "DecideWithStoreFacts/edit", "the store-backed default policy, a location manager editing two allowed fields, evaluated (a decision cache miss: a body shape not seen before)"},
	{"proxy", "DecideWithStoreFacts/edit-cached", "DecideWithStoreFacts/edit-cached", "the same edit from the decision cache (the policy reads the body's shape, not its values)"},
	{"proxy", "DecideWithStoreFacts/edit-new-lookup", "DecideWithStoreFacts/edit-new-lookup", "the same, after the caller's facts changed: the caller's subject stage (kind, role, scope, headers, grant) is worked out first; their grant's levels and the operation's refusal come from the memos (their grant did not change)"},
	{"proxy", "DecideWithStoreFacts/edit-new-grant", "DecideWithStoreFacts/edit-new-grant", "the same for a caller whose grant (role, profile, rights) no caller had before: the grant's levels and the operation's refusal are worked out too"},
	{"proxy", "FirstRequest/members-100k", "FirstRequest/members-100k", "a caller's first request (an edit) at 100,000 members, the callers a tenant's ten in turn (its owner and members of the four roles): the store lookup (resolver cache miss, SQLite), input.access, the caller's subject stage, the decision; the grant's levels and the operation's refusal from the memos when another caller had the same grant (here, most do)"},
	{"proxy", "FirstRequest/200-ops", "FirstRequest/200-ops", "the same with the route mapping grown to 200 operations"},
	{"proxy", "DecideWithStoreFacts/edit-same-facts-again", "DecideWithStoreFacts/edit-same-facts-again", "a new store lookup whose facts did not change: the stages come from their memos (value keys)"},
	{"proxy", "DecideWithStoreFacts/read-cached", "DecideWithStoreFacts/read-cached", "the same user reading, from the decision cache"},
	{"proxy/authn", "SessionStep/cached", "SessionStep/cached", "session cookie seen before"},
	{"proxy/authn", "SessionStep/open", "SessionStep/open", "first sight of a session cookie: AES-GCM open, JSON, identity"},
	{"proxy/authn/session", "Open", "session.Open", "AES-GCM open of a 1.2 KB session alone"},
	{"access", "Resolve/hit", "access.Resolve/hit", "(user, tenant) facts from the cache, 100,000 members over 10,000 tenants"},
	{"access", "Resolve/miss", "access.Resolve/miss", "the same from SQLite (one prepared query joining the tenant, the member, the open master session and the partner; no transaction around it unless the user is a partner's)"},
}

// Result is one row's medians.
type Result struct {
	Pkg         string  `json:"pkg"`
	Bench       string  `json:"bench"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// Run is what docs/gobench.json holds.
type Run struct {
	Date    string   `json:"date"`
	Go      string   `json:"go"`
	CPUs    int      `json:"cpus"`
	Command string   `json:"command"`
	Results []Result `json:"results"`
}

func main() {
	count := flag.Int("count", 3, "runs of each benchmark (medians are reported)")
	cpu := flag.Int("cpu", 1, "GOMAXPROCS for the benchmarks (-cpu 1 keeps GC from running beside them)")
	root := flag.String("root", "..", "the repository root (go -C bench run ./gobench runs in bench/)")
	flag.Parse()
	if err := run(*root, *count, *cpu); err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}

func run(root string, count, cpu int) error {
	pkgs := map[string][]string{}
	var order []string
	for _, r := range rows {
		if _, ok := pkgs[r.Pkg]; !ok {
			order = append(order, r.Pkg)
		}
		top, _, _ := strings.Cut(r.Bench, "/")
		if !slices.Contains(pkgs[r.Pkg], top) {
			pkgs[r.Pkg] = append(pkgs[r.Pkg], top)
		}
	}
	samples := map[string][][3]float64{} // pkg + " " + bench -> (ns, B, allocs) per run
	for _, pkg := range order {
		pattern := "^Benchmark(" + strings.Join(pkgs[pkg], "|") + ")$"
		args := []string{"test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", strconv.Itoa(count), "-cpu", strconv.Itoa(cpu), "./" + pkg + "/"}
		fmt.Fprintln(os.Stderr, "gobench: go", strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("go test %s: %w\n%s", pkg, err, out)
		}
		for name, s := range parse(out) {
			samples[pkg+" "+name] = append(samples[pkg+" "+name], s...)
		}
	}
	res := Run{Date: time.Now().UTC().Format("2006-01-02"), Go: runtime.Version(), CPUs: runtime.NumCPU(),
		Command: fmt.Sprintf("go -C bench run ./gobench -count %d -cpu %d", count, cpu)}
	for _, r := range rows {
		s := samples[r.Pkg+" "+r.Bench]
		if len(s) == 0 {
			return fmt.Errorf("no result for %s in ./%s", r.Bench, r.Pkg)
		}
		res.Results = append(res.Results, Result{Pkg: r.Pkg, Bench: r.Bench,
			NsPerOp: median(s, 0), BytesPerOp: median(s, 1), AllocsPerOp: median(s, 2)})
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(root, "docs", "gobench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := replaceBetween(filepath.Join(root, "docs", "performance.md"), "gobench", table(res)); err != nil {
		return err
	}
	return replaceBetween(filepath.Join(root, "README.md"), "gobench-summary", summary(res))
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

// parse reads `go test -bench` output: name -> (ns/op, B/op, allocs/op).
func parse(out []byte) map[string][][3]float64 {
	got := map[string][][3]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var v [3]float64
		for i := range 3 {
			v[i], _ = strconv.ParseFloat(m[i+2], 64)
		}
		got[m[1]] = append(got[m[1]], v)
	}
	return got
}

func median(s [][3]float64, i int) float64 {
	vals := make([]float64, len(s))
	for j := range s {
		vals[j] = s[j][i]
	}
	slices.Sort(vals)
	if len(vals)%2 == 1 {
		return vals[len(vals)/2]
	}
	return (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
}

func find(res Run, bench string) Result {
	for _, r := range res.Results {
		if r.Bench == bench {
			return r
		}
	}
	return Result{}
}

// duration formats ns/op for people.
func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e4:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
}

func table(res Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `%s` on %s (%s, %d CPUs; medians of the runs).\n\n", res.Command, res.Date, res.Go, res.CPUs)
	b.WriteString("| benchmark | what it covers | time/op | B/op | allocs/op |\n| --- | --- | ---: | ---: | ---: |\n")
	for _, r := range rows {
		x := find(res, r.Bench)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %.0f | %.0f |\n", r.Label, r.What, duration(x.NsPerOp), x.BytesPerOp, x.AllocsPerOp)
	}
	return b.String()
}

func summary(res Run) string {
	d, e, c := find(res, "DecideDefaultPolicy"), find(res, "DecideWithStoreFacts/edit"), find(res, "DecideWithStoreFacts/read-cached")
	n, s := find(res, "FirstRequest/members-100k"), find(res, "SessionStep/cached")
	t := find(res, "DecideTrivialPolicy")
	return fmt.Sprintf("Evaluating the default policy takes %s and %.0f allocations with membership from claims and\n"+
		"%s / %.0f allocations with the access store (%s for a caller's first request after their facts\n"+
		"change, store lookup at 100,000 members included); repeated requests, edits with fields decided before included, come from the decision cache in %s. A session cookie seen before costs\n"+
		"%s (Go benchmarks at -cpu 1, %s; generated, see `docs/performance.md`). Times depend on the machine:\n"+
		"on the one that measured these, OPA's fixed cost per evaluation (a one-line policy) was %s.\n",
		duration(d.NsPerOp), d.AllocsPerOp, duration(e.NsPerOp), e.AllocsPerOp, duration(n.NsPerOp), duration(c.NsPerOp), duration(s.NsPerOp), res.Date,
		duration(t.NsPerOp))
}

// replaceBetween puts text between <!-- name:begin --> and
// <!-- name:end --> in file.
func replaceBetween(file, name, text string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->"
	i, j := bytes.Index(data, []byte(begin)), bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		return errors.New(file + ": no " + begin + " … " + end + " markers")
	}
	out := append([]byte{}, data[:i+len(begin)]...)
	out = append(out, text...)
	out = append(out, data[j:]...)
	return os.WriteFile(file, out, 0o644)
}
