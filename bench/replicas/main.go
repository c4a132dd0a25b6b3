// Command replicas measures Portero as several replicas on PostgreSQL and
// writes the figures where the documentation quotes them, so they are
// generated, not typed: docs/replicas.json and the section of
// docs/performance.md between the replicas markers.
//
//   - Revocation propagation, a PostgreSQL restart under load, a replica
//     killed: faults.TestReplicas (three `portero serve` on a throwaway
//     cluster), which writes its figures to PORTERO_REPLICAS_JSON.
//   - Cache-miss lookups with 100,000 members: access.BenchmarkResolvePostgres
//     on the server in PORTERO_TEST_POSTGRES, beside BenchmarkResolve on
//     SQLite.
//
// The two-replica load row is bench/run's (its table, above the section).
//
// Run from the repository root:
//
//	PORTERO_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go -C bench run ./replicas [-faults full|short|skip] [-count 3]
//
// After a bench/run, `-faults skip -count 0` writes the section again
// (it quotes the run's two-replica row) and keeps the figures.
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

// Figures is what docs/replicas.json holds.
type Figures struct {
	Date    string `json:"date"`
	Go      string `json:"go"`
	CPUs    int    `json:"cpus"`
	Command string `json:"command"`
	// LoadAvg is /proc/loadavg's 1-minute figure before and after the run:
	// the machine is shared, and a busy one stretches every tail.
	LoadAvg  [2]float64      `json:"load_average"`
	Replicas json.RawMessage `json:"replicas"` // TestReplicas' figures, as it wrote them
	Lookups  []Lookup        `json:"lookups"`
}

// Lookup is one benchmark's medians.
type Lookup struct {
	Bench       string  `json:"bench"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesEntry  float64 `json:"bytes_per_entry,omitempty"`
}

// replicaFigures are the parts of TestReplicas' figures the section quotes.
type replicaFigures struct {
	Date               string  `json:"date"`
	Mode               string  `json:"mode"`
	Replicas           int     `json:"replicas"`
	Command            string  `json:"command"`
	Trials             int     `json:"trials"`
	RevokeP50Ms        float64 `json:"revoke_p50_ms"`
	RevokeP99Ms        float64 `json:"revoke_p99_ms"`
	RevokeMaxMs        float64 `json:"revoke_max_ms"`
	RevokeAfterAckP50  float64 `json:"revoke_after_ack_p50_ms"`
	RevokeAfterAckP99  float64 `json:"revoke_after_ack_p99_ms"`
	WriteP50Ms         float64 `json:"write_p50_ms"`
	ReinstateP50Ms     float64 `json:"reinstate_p50_ms"`
	ReinstateP99Ms     float64 `json:"reinstate_p99_ms"`
	KillRestartReadyMs float64 `json:"kill_restart_ready_ms"`
	Outages            []struct {
		Kind           string         `json:"kind"`
		DownMs         float64        `json:"down_ms"`
		RecoverMs      float64        `json:"recover_ms"`
		AnswersWhileDB map[string]int `json:"answers_while_down"`
	} `json:"outages"`
	WritesAcknowledged int `json:"writes_acknowledged"`
	AuditRecords       int `json:"audit_records"`
}

// benches are the lookups the section shows, in order.
var benches = []struct{ bench, what string }{
	{"ResolvePostgres/hit", "(user, tenant) facts from the cache"},
	{"ResolvePostgres/miss", "a cache miss: one prepared query on PostgreSQL over loopback joining the tenant, member, master session and partner (a partner's user: that and the delegation's, in one read transaction), one at a time"},
	{"ResolvePostgres/miss-parallel", "the same with 8 lookups in flight (a replica's concurrent requests; the pool allows 20 connections): wall time per lookup"},
	{"ResolvePostgres/memory-per-entry", "memory the cache holds per entry"},
	{"Resolve/miss", "for comparison, a miss on the SQLite store (same data)"},
}

func main() {
	faults := flag.String("faults", "full", "PORTERO_FAULTS mode of TestReplicas (full: ≥200 propagation trials; short; skip: keep docs/replicas.json's figures)")
	count := flag.Int("count", 3, "runs of each benchmark (medians are reported); 0 keeps docs/replicas.json's lookups")
	root := flag.String("root", "..", "the repository root (go -C bench run ./replicas runs in bench/)")
	flag.Parse()
	if err := run(*root, *faults, *count); err != nil {
		fmt.Fprintln(os.Stderr, "replicas:", err)
		os.Exit(1)
	}
}

func run(root, faults string, count int) error {
	if os.Getenv("PORTERO_TEST_POSTGRES") == "" && count > 0 {
		return errors.New("set PORTERO_TEST_POSTGRES to a PostgreSQL database the benchmark may create schemas in (CI's: postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	jsonPath := filepath.Join(root, "docs", "replicas.json")
	fig := Figures{Date: time.Now().UTC().Format("2006-01-02"), Go: runtime.Version(), CPUs: runtime.NumCPU(),
		Command: fmt.Sprintf("go -C bench run ./replicas -faults %s -count %d", faults, count)}
	fig.LoadAvg[0] = loadAverage()
	var old Figures
	if faults == "skip" || count == 0 {
		raw, err := os.ReadFile(jsonPath)
		if err == nil {
			err = json.Unmarshal(raw, &old)
		}
		if err != nil || len(old.Replicas) == 0 || (count == 0 && len(old.Lookups) == 0) {
			return fmt.Errorf("-faults skip and -count 0 keep the figures of an earlier run in %s: %v", jsonPath, err)
		}
	}
	if faults == "skip" && count == 0 {
		// Only the section again (after a bench/run, whose row it quotes):
		// the figures, and when and how they were measured, stay.
		fig = old
	} else if faults == "skip" {
		fig.Replicas = old.Replicas
	} else {
		tmp, err := os.CreateTemp("", "replicas-*.json")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		args := []string{"test", "-count=1", "-timeout", "30m", "-v", "-run", "^TestReplicas$", "./faults/"}
		fmt.Fprintln(os.Stderr, "replicas: PORTERO_FAULTS="+faults, "go", strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PORTERO_FAULTS="+faults, "PORTERO_REPLICAS_JSON="+tmp.Name())
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("TestReplicas: %w", err)
		}
		if fig.Replicas, err = os.ReadFile(tmp.Name()); err != nil || len(fig.Replicas) == 0 {
			return fmt.Errorf("TestReplicas wrote no figures: %v", err)
		}
		fig.Replicas = bytes.TrimSpace(fig.Replicas)
	}

	if count == 0 {
		fig.Lookups = old.Lookups
	} else if err := lookups(root, count, &fig); err != nil {
		return err
	}
	if faults != "skip" || count != 0 {
		fig.LoadAvg[1] = loadAverage()
	}
	js, _ := json.MarshalIndent(fig, "", "  ")
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	perf := filepath.Join(root, "docs", "performance.md")
	doc, err := os.ReadFile(perf)
	if err != nil {
		return err
	}
	text, err := section(fig, benchRow(string(doc)))
	if err != nil {
		return err
	}
	if err := replaceBetween(perf, "replicas", text); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "replicas: wrote docs/replicas.json and docs/performance.md's replicas section")
	return nil
}

// lookups runs the Resolve benchmarks count times and keeps their medians.
func lookups(root string, count int, fig *Figures) error {
	args := []string{"test", "-run", "^$", "-bench", "^(BenchmarkResolve|BenchmarkResolvePostgres)$", "-benchmem", "-count", strconv.Itoa(count), "-cpu", "1", "-timeout", "30m", "./access/"}
	fmt.Fprintln(os.Stderr, "replicas: go", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PORTERO_POSTGRES_REQUIRED=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go test -bench: %w\n%s", err, out)
	}
	samples := parse(out)
	for _, b := range benches {
		s := samples[b.bench]
		if len(s) == 0 {
			return fmt.Errorf("no result for Benchmark%s in ./access", b.bench)
		}
		fig.Lookups = append(fig.Lookups, Lookup{Bench: b.bench, NsPerOp: median(s, 0), BytesPerOp: median(s, 1), AllocsPerOp: median(s, 2), BytesEntry: median(s, 3)})
	}
	return nil
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// parse reads `go test -bench` output: name -> (ns/op, B/op, allocs/op,
// bytes/entry) per run.
func parse(out []byte) map[string][][4]float64 {
	got := map[string][][4]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var v [4]float64
		v[0], _ = strconv.ParseFloat(m[2], 64)
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			x, _ := strconv.ParseFloat(f[i], 64)
			switch f[i+1] {
			case "B/op":
				v[1] = x
			case "allocs/op":
				v[2] = x
			case "bytes/entry":
				v[3] = x
			}
		}
		got[m[1]] = append(got[m[1]], v)
	}
	return got
}

func median(s [][4]float64, i int) float64 {
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

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// loadAverage is the machine's 1-minute load average.
func loadAverage() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// replicasRowName is bench/run's two-replica row.
const replicasRowName = "Portero, two replicas on PostgreSQL behind one load"

// benchRow quotes what the last bench/run wrote about the two-replica row
// (its table row's figures and the comparison with one gateway), or says
// it has not run since the row was added.
func benchRow(doc string) string {
	i, j := strings.Index(doc, "<!-- bench:start"), strings.Index(doc, "<!-- bench:end -->")
	if i < 0 || j < i {
		return ""
	}
	block := doc[i:j]
	date := ""
	if k := strings.Index(block, "Run on "); k >= 0 {
		date, _, _ = strings.Cut(block[k+len("Run on "):], ": ")
	}
	var row, compare string
	for l := range strings.SplitSeq(block, "\n") {
		if strings.Contains(l, "| "+replicasRowName+" |") {
			row = l
		}
		if strings.HasPrefix(l, "- Two replicas on PostgreSQL") {
			compare = strings.TrimPrefix(l, "- ")
		}
	}
	if row == "" {
		return "- **Two replicas behind one load**: the last `bench/run` above predates its row; the next full run adds it to the table.\n"
	}
	f := strings.Split(row, "|")
	if len(f) < 11 {
		return ""
	}
	cell := func(k int) string { return strings.TrimSpace(f[k]) }
	return fmt.Sprintf("- **Two replicas behind one load** (`bench/run`, row %s of the table above, run of %s): %s requests/s, p50 %s, p99 %s under wrk; %s and %s at 1,000 requests/s; %s cores and %s with PostgreSQL. %s\n",
		cell(1), date, cell(3), cell(4), cell(5), cell(8), cell(9), cell(6), cell(7), compare)
}

// section is the generated part of docs/performance.md.
func section(fig Figures, row string) (string, error) {
	var r replicaFigures
	if err := json.Unmarshal(fig.Replicas, &r); err != nil {
		return "", fmt.Errorf("TestReplicas' figures: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `%s` on %s (%s, %d CPUs; load average %.1f before, %.1f after: the machine is shared); TestReplicas ran on %s in %s mode (`%s`).\n\n",
		fig.Command, fig.Date, fig.Go, fig.CPUs, fig.LoadAvg[0], fig.LoadAvg[1], r.Date, r.Mode, r.Command)
	fmt.Fprintf(&b, "- **Revocation propagation** (%d replicas on one PostgreSQL, a member deactivated through replica A's management API, replica B asked without pause until it refuses; %d trials): "+
		"p50 %.1f ms, p99 %.1f ms, slowest %.1f ms from the write sent to B's first refusal (target p99 < 1 s: %s). Counted from A's acknowledgement of the write: p50 %.1f ms, p99 %.1f ms; "+
		"the write itself took %.1f ms at the median. Reactivated, B served the member again after p50 %.1f ms, p99 %.1f ms.\n",
		r.Replicas, r.Trials, r.RevokeP50Ms, r.RevokeP99Ms, r.RevokeMaxMs, verdict(r.RevokeP99Ms < 1000), r.RevokeAfterAckP50, r.RevokeAfterAckP99, r.WriteP50Ms, r.ReinstateP50Ms, r.ReinstateP99Ms)
	fmt.Fprintf(&b, "- **A replica killed** (SIGKILL) and started again: ready in %.0f ms, serving what the store says.\n", r.KillRestartReadyMs)
	for _, o := range r.Outages {
		kind := map[string]string{"stop": "stopped (fast shutdown)", "crash": "crashed (immediate shutdown, recovery from the WAL)"}[o.Kind]
		keys := make([]string, 0, len(o.AnswersWhileDB))
		for k := range o.AnswersWhileDB {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var answers []string
		for _, k := range keys {
			answers = append(answers, fmt.Sprintf("%d × %s", o.AnswersWhileDB[k], k))
		}
		fmt.Fprintf(&b, "- **PostgreSQL %s** for %.1f s under load: the three answered %s to requests made while it was down (fail closed); every replica ready again %.0f ms after the server accepted connections, without a restart.\n",
			kind, o.DownMs/1000, strings.Join(answers, ", "), o.RecoverMs)
	}
	fmt.Fprintf(&b, "- **Nothing acknowledged lost**: %d member writes acknowledged through the three replicas during the run, all in the store afterwards; the audit trail they appended to is one hash chain of %d records that `portero audit verify --store` verifies.\n",
		r.WritesAcknowledged, r.AuditRecords)
	b.WriteString(row)
	b.WriteString("\nCache-miss lookups with 100,000 members over 10,000 tenants (`go test -bench`, `-cpu 1`, medians of the runs):\n\n")
	b.WriteString("| benchmark | what it covers | time/op | lookups/s | B/op | allocs/op |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
	for i, x := range fig.Lookups {
		if x.BytesEntry > 0 {
			fmt.Fprintf(&b, "| `access.%s` | %s | %.0f bytes/entry | | | |\n", x.Bench, benches[i].what, x.BytesEntry)
			continue
		}
		fmt.Fprintf(&b, "| `access.%s` | %s | %s | %.0f | %.0f | %.0f |\n", x.Bench, benches[i].what, duration(x.NsPerOp), 1e9/x.NsPerOp, x.BytesPerOp, x.AllocsPerOp)
	}
	return b.String(), nil
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
