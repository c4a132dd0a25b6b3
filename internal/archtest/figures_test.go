package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// published is docs/gobench.json, written by `go -C bench run ./gobench`
// together with the figures in docs/performance.md and README.md.
type published struct {
	Command string `json:"command"`
	Results []struct {
		Pkg         string  `json:"pkg"`
		Bench       string  `json:"bench"`
		AllocsPerOp float64 `json:"allocs_per_op"`
	} `json:"results"`
}

// TestPublishedFiguresMatchTheCode measures the allocations of every Go
// benchmark the docs quote and compares them with the published figures.
// Allocation counts do not depend on the machine's load, so a difference
// means the code changed and the docs were not regenerated (or the hot
// path allocates more than it did): run `go -C bench run ./gobench` and
// commit the result with the change.
func TestPublishedFiguresMatchTheCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmarks the docs quote")
	}
	dir, _, _ := load(t)
	raw, err := os.ReadFile(filepath.Join(dir, "docs", "gobench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pub published
	if err := json.Unmarshal(raw, &pub); err != nil {
		t.Fatalf("docs/gobench.json: %v", err)
	}
	perPkg := map[string][]string{}
	for _, r := range pub.Results {
		top, _, _ := strings.Cut(r.Bench, "/")
		if !slices.Contains(perPkg[r.Pkg], top) {
			perPkg[r.Pkg] = append(perPkg[r.Pkg], top)
		}
	}
	measured := map[string]float64{}
	for p, benches := range perPkg {
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^Benchmark("+strings.Join(benches, "|")+")$",
			"-benchmem", "-cpu", "1", "./"+p+"/") // the default 1 s, as gobench: first-iteration costs amortise alike
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go test -bench ./%s: %v\n%s", p, err, out)
		}
		for name, allocs := range allocsOf(out) {
			measured[p+" "+name] = allocs
		}
	}
	for _, r := range pub.Results {
		got, ok := measured[r.Pkg+" "+r.Bench]
		if !ok {
			t.Errorf("%s in ./%s: no such benchmark any more; update bench/gobench's rows and regenerate", r.Bench, r.Pkg)
			continue
		}
		// A few allocations come and go with the runtime (maps growing,
		// pools); anything beyond is a change in the code.
		if slack := 2 + 0.03*r.AllocsPerOp; got > r.AllocsPerOp+slack || got < r.AllocsPerOp-slack {
			t.Errorf("%s (./%s): %.0f allocs/op, published %.0f: regenerate the figures with `%s` (and look at why the hot path changed)",
				r.Bench, r.Pkg, got, r.AllocsPerOp, pub.Command)
		}
	}
}

// TestPublishedFiguresAreTheGeneratedOnes: the table in
// docs/performance.md quotes docs/gobench.json, so nobody edits one
// without the other.
func TestPublishedFiguresAreTheGeneratedOnes(t *testing.T) {
	dir, _, _ := load(t)
	raw, err := os.ReadFile(filepath.Join(dir, "docs", "gobench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pub published
	if err := json.Unmarshal(raw, &pub); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(dir, "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pub.Results {
		// The row's last cell is its allocations.
		row := regexp.MustCompile("(?m)^\\| `[^`]*" + regexp.QuoteMeta(r.Bench) + "` \\|.*\\| " + fmt.Sprintf("%.0f", r.AllocsPerOp) + " \\|$")
		if !row.Match(doc) {
			t.Errorf("docs/performance.md has no row for %s with %.0f allocs/op: regenerate with `%s`", r.Bench, r.AllocsPerOp, pub.Command)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	for _, r := range pub.Results {
		if r.Bench == "DecideDefaultPolicy" && !bytes.Contains(readme, []byte(fmt.Sprintf("and %.0f allocations", r.AllocsPerOp))) {
			t.Errorf("README.md's generated summary does not quote DecideDefaultPolicy's %.0f allocations: regenerate with `%s`", r.AllocsPerOp, pub.Command)
		}
	}
	for _, f := range []string{"README.md", "docs/performance.md"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Count(b, []byte("<!-- gobench")) != 2*bytes.Count(b, []byte("<!-- gobench:begin -->"))+2*bytes.Count(b, []byte("<!-- gobench-summary:begin -->")) {
			t.Errorf("%s: unbalanced generated-section markers", f)
		}
	}
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+[\d.]+ ns/op.*?\s([\d.]+) allocs/op`)

func allocsOf(out []byte) map[string]float64 {
	got := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := benchLine.FindStringSubmatch(sc.Text()); m != nil {
			got[m[1]], _ = strconv.ParseFloat(m[2], 64)
		}
	}
	return got
}
