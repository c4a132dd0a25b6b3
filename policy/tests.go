package policy

import (
	"context"
	"fmt"
	"io"
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

// RunTests runs the Rego tests (rules named test_*) in src with OPA's tester
// and writes a report to out.
func RunTests(ctx context.Context, src Source, opts TestOptions, out io.Writer) (TestSummary, error) {
	var sum TestSummary
	snap, err := readSnapshot(src.FS, true)
	if err != nil {
		return sum, fmt.Errorf("load policy %s: read: %w", src.Name, err)
	}
	modules, store, err := snap.load()
	if err != nil {
		return sum, fmt.Errorf("load policy %s: %w", src.Name, err)
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(true)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		SetTimeout(10 * time.Second).
		Filter(opts.Run)
	var cov *cover.Cover
	if opts.Coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return sum, fmt.Errorf("run tests in %s: %w", src.Name, err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
		switch {
		case r.Error != nil:
			sum.Errored++
		case r.Fail:
			sum.Failed++
		default:
			sum.Passed++
		}
	}
	reporter := tester.PrettyReporter{Output: out, Verbose: opts.Verbose, FailureLine: true}
	relay := make(chan *tester.Result, len(results))
	for _, r := range results {
		relay <- r
	}
	close(relay)
	if err := reporter.Report(relay); err != nil {
		return sum, err
	}
	if cov != nil {
		report := cov.Report(modules)
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

func isTestFile(name string) bool {
	return len(name) > len("_test.rego") && name[len(name)-len("_test.rego"):] == "_test.rego"
}
