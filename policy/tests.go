package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestOptions configure RunTests.
type TestOptions struct {
	Coverage bool
	Verbose  bool
	// Run is a regular expression selecting tests by name; empty runs all.
	Run string
}

// TestSummary counts test outcomes.
type TestSummary struct {
	Passed, Failed, Errored int
	// Coverage is the percentage of policy lines covered, when asked for.
	Coverage float64
}

// testTimeout bounds one Rego test.
const testTimeout = 10 * time.Second

// RunTests runs the Rego tests (rules named test_*) in src with OPA's tester
// and writes a report to out.
func RunTests(ctx context.Context, src Source, opts TestOptions, out io.Writer) (TestSummary, error) {
	var sum TestSummary
	snap, err := readSnapshot(src.FS, true)
	if err != nil {
		return sum, fmt.Errorf("load policy %s: read: %w", src.Name, err)
	}
	run, err := runSnapshotTests(ctx, src.Name, snap, opts, 0)
	if err != nil {
		return sum, err
	}
	sum = run.summary()
	reporter := tester.PrettyReporter{Output: out, Verbose: opts.Verbose, FailureLine: true}
	relay := make(chan *tester.Result, len(run.results))
	for _, r := range run.results {
		relay <- r
	}
	close(relay)
	if err := reporter.Report(relay); err != nil {
		return sum, err
	}
	if run.cov != nil {
		report := run.cov.Report(run.modules)
		sum.Coverage = report.Coverage
		for file, fr := range report.Files {
			if isTestFile(file) {
				continue
			}
			fmt.Fprintf(out, "coverage %s: %.1f%% (%d lines not covered)\n", file, fr.Coverage, len(fr.NotCovered))
		}
		fmt.Fprintf(out, "coverage total: %.1f%%\n", report.Coverage)
	}
	return sum, nil
}

// testRun is the outcome of running a snapshot's tests.
type testRun struct {
	results []*tester.Result
	modules map[string]*ast.Module
	cov     *cover.Cover // nil unless coverage was asked for
}

// runSnapshotTests runs the tests of a snapshot read with its tests, on
// at most parallel tests at once (0: one per CPU). `portero test` and the
// test gate of every load (see TestGate) both run tests here.
func runSnapshotTests(ctx context.Context, name string, snap *snapshot, opts TestOptions, parallel int) (*testRun, error) {
	modules, store, err := snap.load()
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", name, err)
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(true)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		SetTimeout(testTimeout).
		SetParallel(parallel).
		Filter(opts.Run)
	run := &testRun{modules: modules}
	if opts.Coverage {
		run.cov = cover.New()
		runner = runner.SetCoverageQueryTracer(run.cov)
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("run tests in %s: %w", name, err)
	}
	for r := range ch {
		run.results = append(run.results, r)
	}
	return run, nil
}

func (run *testRun) summary() TestSummary {
	var sum TestSummary
	for _, r := range run.results {
		switch {
		case r.Skip:
		case r.Error != nil:
			sum.Errored++
		case r.Fail:
			sum.Failed++
		default:
			sum.Passed++
		}
	}
	return sum
}

// failures lists the tests that failed or errored, in file and line order.
func (run *testRun) failures() []TestFailure {
	var out []TestFailure
	for _, r := range run.results {
		if r.Skip || (r.Error == nil && !r.Fail) {
			continue
		}
		f := TestFailure{Name: r.Package + "." + r.Name}
		if r.Location != nil {
			f.File, f.Line = r.Location.File, r.Location.Row
		}
		if r.Error != nil {
			f.Error = r.Error.Error()
		}
		if len(r.Output) > 0 {
			f.Output = strings.TrimSpace(string(r.Output))
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Name < b.Name
	})
	return out
}

// TestGate says whether a policy load must pass the policy's own Rego
// tests (test_* rules in *_test.rego files) before it may serve.
type TestGate uint8

const (
	// TestsWhenPresent gates loads when the source has *_test.rego files
	// at the engine's first load; from then on the engine's gate stays as
	// decided, so deleting the tests cannot turn it off.
	TestsWhenPresent TestGate = iota
	// TestsRequired gates every load; a policy without tests is refused.
	TestsRequired
	// TestsNotRequired serves a policy that compiles, tests or not.
	TestsNotRequired
)

// TestFailure is one policy test that failed (was false or undefined) or
// errored, where it is defined.
type TestFailure struct {
	// Name is the rule's full name: data.portero.authz.test_member_allowed.
	Name string `json:"name"`
	// File and Line locate the test rule (File relative to the source).
	File string `json:"file"`
	Line int    `json:"line"`
	// Error is set when the test could not be evaluated.
	Error string `json:"error,omitempty"`
	// Output is what the test printed (print()).
	Output string `json:"output,omitempty"`
}

func (f TestFailure) String() string {
	s := fmt.Sprintf("%s (%s:%d)", f.Name, f.File, f.Line)
	if f.Error != "" {
		s += ": " + f.Error
	}
	return s
}

// TestsFailedError is a load refused by the test gate: the policy compiles
// but its own tests fail, or the gate is on and it has none. Like a compile
// error, it leaves the last good policy serving.
type TestsFailedError struct {
	Source   string
	Revision string // of the refused policy's serving files
	Passed   int
	Failures []TestFailure // empty when there were no tests at all
}

// maxNamedFailures bounds the failures Error names; Failures has them all.
const maxNamedFailures = 10

func (e *TestsFailedError) Error() string {
	if len(e.Failures) == 0 {
		return fmt.Sprintf("load policy %s: policy.require_tests is on but the policy has no tests (test_* rules in *_test.rego files); add its tests back, or set policy.require_tests: false", e.Source)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load policy %s: %d of %d policy tests failed: ", e.Source, len(e.Failures), len(e.Failures)+e.Passed)
	for i, f := range e.Failures {
		if i == maxNamedFailures {
			fmt.Fprintf(&b, "; and %d more", len(e.Failures)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.String())
	}
	b.WriteString(" (run portero test on the policy for the details)")
	return b.String()
}

// FailedTests returns the failing tests when err is a load refused by the
// test gate, else nil.
func FailedTests(err error) []TestFailure {
	if tf, ok := errors.AsType[*TestsFailedError](err); ok {
		return tf.Failures
	}
	return nil
}

// hasTests reports whether a snapshot read with tests holds test files.
func (s *snapshot) hasTests() bool {
	for name := range s.files {
		if isTestFile(name) {
			return true
		}
	}
	return false
}

// gateTests runs the snapshot's tests for a load on one CPU, so that a
// reload leaves the other cores to the requests being served. It returns
// how many passed, or a *TestsFailedError. It measures no coverage: that
// makes the run five times slower (0.3 s → 1.6 s for the default policy),
// so it is measured after the swap (Engine.measureCoverage).
func gateTests(ctx context.Context, name, revision string, snap *snapshot) (int, error) {
	run, err := runSnapshotTests(ctx, name, snap, TestOptions{}, 1)
	if err != nil {
		return 0, err
	}
	sum := run.summary()
	if failed := run.failures(); len(failed) > 0 || sum.Passed == 0 {
		return sum.Passed, &TestsFailedError{Source: name, Revision: revision, Passed: sum.Passed, Failures: failed}
	}
	return sum.Passed, nil
}

// servingCoverage is the percentage of the serving files' lines (test
// files left out) that a run with coverage covered.
func (run *testRun) servingCoverage() float64 {
	if run.cov == nil {
		return 0
	}
	var covered, notCovered int
	for file, fr := range run.cov.Report(run.modules).Files {
		if !isTestFile(file) {
			covered += fr.CoveredLines
			notCovered += fr.NotCoveredLines
		}
	}
	if covered+notCovered == 0 {
		return 0
	}
	return 100 * float64(covered) / float64(covered+notCovered)
}

func isTestFile(name string) bool {
	return len(name) > len("_test.rego") && name[len(name)-len("_test.rego"):] == "_test.rego"
}
