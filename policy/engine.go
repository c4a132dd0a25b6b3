// Package policy embeds OPA: it loads a Rego bundle, compiles and prepares it
// once, evaluates data.portero.authz.decision per request, and hot-reloads a
// policy directory with an atomic swap that never serves a half-loaded policy.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Query is the policy's single entry point.
const Query = "data.portero.authz.decision"

var queryRef = ast.MustParseRef(Query)

// Source is where policy files come from.
type Source struct {
	// Name labels the source in logs and errors ("embedded", or the directory).
	Name string
	FS   fs.FS
}

// Engine evaluates requests against the current policy. It is safe for
// concurrent use; Reload swaps the policy atomically.
type Engine struct {
	source  Source
	log     *slog.Logger
	metrics *Metrics

	reloadMu sync.Mutex  // one reload at a time; evaluation never waits on it
	gate     TestGate    // under reloadMu; TestsWhenPresent until the first load decides
	gated    atomic.Bool // gate == TestsRequired, for readers that must not wait on a reload
	current  atomic.Pointer[Loaded]
	lastErr  atomic.Pointer[ReloadError]

	// shadow is the candidate policy evaluated beside this one (see
	// DecideShadow); nil without policy.shadow_dir.
	shadow *shadow
	// role names the engine in logs: "policy" or "shadow policy".
	role string
	// history is the last revisions loaded (see History).
	history history
	// coverMu runs one coverage measurement at a time (measureCoverage).
	coverMu sync.Mutex
}

// Loaded is one compiled, prepared policy.
type Loaded struct {
	Revision string
	LoadedAt time.Time
	query    rego.PreparedEvalQuery
	use      inputUse
	cache    *decisionCache // nil when decisions may depend on more than identity, tenant and route
	stages   []*stage       // the stages the policy defines (see SubjectQuery)
	// definitions reads data.portero.definitions (feature catalogue,
	// profiles, rights) for the admin console.
	definitions rego.PreparedEvalQuery
	compiler    *ast.Compiler
	store       storage.Store
	// Tests is how many of the policy's own tests passed before it was
	// served, and how long they took; zero when loads are not test-gated.
	Tests         int
	TestsDuration time.Duration
	// coverage is what those tests cover, measured after the load
	// (Engine.measureCoverage); nil without the test gate.
	coverage *testCoverage
}

// testCoverage is the percentage of a policy's serving lines its tests
// cover: pct is nil until measured; done is closed when it is known or
// known to be unavailable.
type testCoverage struct {
	pct  atomic.Pointer[float64]
	done chan struct{}
}

// TestsCoverage returns the percentage of the policy's serving lines its
// tests cover, once measured (false before, and without the test gate).
func (p *Loaded) TestsCoverage() (float64, bool) {
	if p.coverage == nil {
		return 0, false
	}
	if c := p.coverage.pct.Load(); c != nil {
		return *c, true
	}
	return 0, false
}

// CoverageMeasured is closed once TestsCoverage is known or known to be
// unavailable; nil (never ready) when loads are not test-gated.
func (p *Loaded) CoverageMeasured() <-chan struct{} {
	if p.coverage == nil {
		return nil
	}
	return p.coverage.done
}

// ReloadError records why the last reload was refused.
type ReloadError struct {
	At  time.Time
	Err error
	// Tests are the failing tests when the test gate refused the load.
	Tests []TestFailure
	// Errors are the parse and compile errors, each where it is, when the
	// policy did not load or compile.
	Errors []PolicyError
}

// PolicyError is one parse or compile error of a policy, at its file,
// line and column (File relative to the source).
type PolicyError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// policyErrors lists the located parse and compile errors in err.
func policyErrors(err error) []PolicyError {
	var out []PolicyError
	add := func(e *ast.Error) {
		pe := PolicyError{Code: e.Code, Message: e.Message}
		if e.Location != nil {
			pe.File, pe.Line, pe.Column = e.Location.File, e.Location.Row, e.Location.Col
		}
		out = append(out, pe)
	}
	var walk func(error)
	walk = func(err error) {
		if le, ok := errors.AsType[loader.Errors](err); ok {
			for _, e := range le {
				walk(e)
			}
			return
		}
		if ae, ok := errors.AsType[ast.Errors](err); ok {
			for _, e := range ae {
				add(e)
			}
			return
		}
		if e, ok := errors.AsType[*ast.Error](err); ok {
			add(e)
		}
	}
	walk(err)
	return out
}

// Evaluation is the outcome of one evaluation, with what the decision log needs.
type Evaluation struct {
	Decision Decision
	Revision string
	Duration time.Duration
	// Err is set when the policy failed to decide; Decision is then a denial.
	Err error
	// Cached is true when the decision came from the decision cache.
	Cached bool
}

// NewEngine loads and compiles the source, without a test gate or a shadow
// policy (tools and tests; the gateway uses NewEngineWith). It fails when
// the first load fails: there is no last good policy to fall back on yet.
func NewEngine(ctx context.Context, src Source, metrics *Metrics, log *slog.Logger) (*Engine, error) {
	return NewEngineWith(ctx, EngineOptions{Source: src, Metrics: metrics, Log: log, Tests: TestsNotRequired})
}

// EngineOptions configure NewEngineWith.
type EngineOptions struct {
	Source  Source
	Metrics *Metrics
	Log     *slog.Logger
	// Tests says whether every load (the first and each reload) must pass
	// the policy's own tests; the zero value gates when the source has
	// tests (policy.require_tests).
	Tests TestGate
	// Shadow, when set, is a candidate policy evaluated beside the active
	// one on the same inputs, never enforced (policy.shadow_dir; see
	// DecideShadow). It is loaded and test-gated like the active policy.
	Shadow *Source
}

// NewEngineWith loads the source (compiled and, with the test gate, tested)
// and, when there is one, the shadow policy. It fails when the active
// policy's first load fails. A shadow policy that does not load is logged
// and recorded (Shadow().LastReloadError()) and the gateway serves without
// it until a reload of the shadow succeeds: a candidate never stops the
// active policy from serving.
func NewEngineWith(ctx context.Context, o EngineOptions) (*Engine, error) {
	e := &Engine{source: o.Source, log: o.Log, metrics: o.Metrics, gate: o.Tests, role: "policy"}
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	if o.Shadow != nil {
		sm := o.Metrics.forShadow()
		se := &Engine{source: *o.Shadow, log: o.Log, metrics: sm.engine, gate: o.Tests, role: "shadow policy"}
		e.shadow = newShadow(se, sm, o.Log)
		_ = se.Reload(ctx) // logged and recorded; the gateway runs without it until it loads
	}
	return e, nil
}

// SourceName names where the policy comes from ("embedded" or a directory).
func (e *Engine) SourceName() string { return e.source.Name }

// Current returns the policy being served.
func (e *Engine) Current() *Loaded { return e.current.Load() }

// LastReloadError returns the last refused reload, or nil when the last
// reload succeeded.
func (e *Engine) LastReloadError() *ReloadError { return e.lastErr.Load() }

// TestsRequired reports whether every load of this engine must pass the
// policy's own tests.
func (e *Engine) TestsRequired() bool { return e.gated.Load() }

// Shadow returns the shadow policy's engine (to watch, reload or report
// on it), or nil when there is none.
func (e *Engine) Shadow() *Engine {
	if e.shadow == nil {
		return nil
	}
	return e.shadow.engine
}

// Reload reads the source once, compiles it completely and, with the test
// gate on, runs the policy's tests on the same files; then it swaps it in.
// On any error, failing tests included, the policy being served stays as
// it was.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.reloadLocked(ctx, e.source.FS, nil)
}

// reloadLocked loads the policy files in fsys, as Reload describes, and
// logs the outcome with the extra attributes. The caller holds reloadMu.
func (e *Engine) reloadLocked(ctx context.Context, fsys fs.FS, extra []any) error {
	loaded, files, err := e.load(ctx, fsys)
	if err != nil {
		failed := FailedTests(err)
		result := reloadFailure
		if _, gated := errors.AsType[*TestsFailedError](err); gated {
			result = reloadTestFailure
		}
		e.lastErr.Store(&ReloadError{At: time.Now(), Err: err, Tests: failed, Errors: policyErrors(err)})
		e.metrics.reloaded(result, "")
		attrs := append([]any{"source", e.source.Name, "result", result, "error", err.Error()}, extra...)
		if len(failed) > 0 {
			names := make([]string, len(failed))
			for i, f := range failed {
				names[i] = f.String()
			}
			attrs = append(attrs, "failing_tests", names)
		}
		if cur := e.current.Load(); cur != nil {
			attrs = append(attrs, "revision", cur.Revision)
			e.log.Error(e.role+" reload refused; still serving the last good "+e.role, attrs...)
		} else if e.role != "policy" {
			e.log.Error(e.role+" load refused; running without it until a load succeeds", attrs...)
		}
		return err
	}
	if e.gate == TestsRequired {
		loaded.coverage = &testCoverage{done: make(chan struct{})}
	}
	prev := e.current.Swap(loaded)
	e.lastErr.Store(nil)
	e.history.record(e.source.Name, loaded, files)
	if loaded.coverage != nil {
		go e.measureCoverage(loaded, files)
	}
	e.metrics.reloaded(reloadSuccess, loaded.Revision)
	prevRev := ""
	if prev != nil {
		prevRev = prev.Revision
	}
	attrs := append([]any{"source", e.source.Name, "revision", loaded.Revision, "previous", prevRev, "stages", loaded.Stages()}, extra...)
	if e.gate == TestsRequired {
		attrs = append(attrs, "tests_passed", loaded.Tests, "tests_ms", loaded.TestsDuration.Milliseconds())
	}
	e.log.Info(e.role+" loaded", attrs...)
	return nil
}

// measureCoverage runs the tests of a policy being served again, with
// coverage, for the console (Loaded.TestsCoverage): after the swap, so
// that the test gate stays as fast as it was, on one CPU, one policy at a
// time, and not at all when a newer policy replaced it meanwhile.
func (e *Engine) measureCoverage(p *Loaded, files memFS) {
	defer close(p.coverage.done)
	e.coverMu.Lock()
	defer e.coverMu.Unlock()
	if e.current.Load() != p {
		return
	}
	run, err := runSnapshotTests(context.Background(), e.source.Name, &snapshot{files: files}, TestOptions{Coverage: true}, 1)
	if err != nil {
		e.log.Warn(e.role+" test coverage not measured", "source", e.source.Name, "revision", p.Revision, "error", err.Error())
		return
	}
	pct := run.servingCoverage()
	p.coverage.pct.Store(&pct)
}

// load reads fsys, the source, once (tests included) and loads it under the
// engine's test gate, which the first load decides when it is
// TestsWhenPresent. It returns the files read too (tests included), for
// the history. The caller holds reloadMu.
func (e *Engine) load(ctx context.Context, fsys fs.FS) (*Loaded, memFS, error) {
	all, err := readSnapshot(fsys, true)
	if err != nil {
		return nil, nil, fmt.Errorf("load policy %s: read: %w", e.source.Name, err)
	}
	if e.gate == TestsWhenPresent {
		e.gate = TestsNotRequired
		if all.hasTests() {
			e.gate = TestsRequired
		}
	}
	e.gated.Store(e.gate == TestsRequired)
	loaded, err := loadSnapshot(ctx, e.source.Name, all, e.gate == TestsRequired)
	return loaded, all.files, err
}

// Load reads the source once and compiles it and, when gate asks for it,
// runs the policy's tests on the same files, as every load of an engine
// does: `portero check` reports what the gateway would. A policy whose
// tests fail is a *TestsFailedError.
func Load(ctx context.Context, src Source, gate TestGate) (*Loaded, error) {
	all, err := readSnapshot(src.FS, true)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: read: %w", src.Name, err)
	}
	return loadSnapshot(ctx, src.Name, all, gate == TestsRequired || gate == TestsWhenPresent && all.hasTests())
}

// loadSnapshot compiles the serving files of a snapshot read with its
// tests and, with withTests, runs the tests: both on the same bytes.
func loadSnapshot(ctx context.Context, name string, all *snapshot, withTests bool) (*Loaded, error) {
	// The serving files and their revision, as Compile reads them, from the
	// copy in memory.
	serving, err := readSnapshot(all.files, false)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: read: %w", name, err)
	}
	loaded, err := compileSnapshot(ctx, name, serving)
	if err != nil || !withTests {
		return loaded, err
	}
	start := time.Now()
	passed, err := gateTests(ctx, name, serving.revision, all)
	if err != nil {
		return nil, err
	}
	loaded.Tests, loaded.TestsDuration = passed, time.Since(start)
	return loaded, nil
}

// Compile reads the source and prepares the entry point query. It runs no
// tests (see Load).
func Compile(ctx context.Context, src Source) (*Loaded, error) {
	snap, err := readSnapshot(src.FS, false)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: read: %w", src.Name, err)
	}
	return compileSnapshot(ctx, src.Name, snap)
}

// compileSnapshot parses and compiles a snapshot's serving files and
// prepares the entry point query.
func compileSnapshot(ctx context.Context, name string, snap *snapshot) (*Loaded, error) {
	modules, store, err := snap.load()
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", name, err)
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("load policy %s: compile: %w", name, compiler.Errors)
	}
	if len(compiler.GetRulesForVirtualDocument(queryRef)) == 0 {
		return nil, fmt.Errorf("load policy %s: no rule defines %s; the policy needs a package portero.authz with a decision rule", name, Query)
	}
	pq, err := rego.New(
		rego.Query(Query),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) {
			return decisionFromTerm(t)
		}),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: prepare: %w", name, err)
	}
	var stages []*stage
	for _, spec := range stageSpecs {
		st, err := newStage(ctx, compiler, spec, rego.Store(store))
		if err != nil {
			return nil, fmt.Errorf("load policy %s: %w", name, err)
		}
		if st != nil {
			stages = append(stages, st)
		}
	}
	defs, err := rego.New(rego.Query(DefinitionsQuery), rego.Compiler(compiler), rego.Store(store)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: prepare %s: %w", name, DefinitionsQuery, err)
	}
	use := analyseInputUse(compiler.Modules)
	return &Loaded{Revision: snap.revision, LoadedAt: time.Now(), query: pq, use: use,
		cache: newDecisionCache(compiler.Modules, use), stages: stages, definitions: defs, compiler: compiler, store: store}, nil
}

// DefinitionsQuery is the policy's data the admin console shows: the
// feature catalogue, profiles and rights.
const DefinitionsQuery = "data.portero.definitions"

// Definitions returns the policy's definitions as a JSON-like value, or nil
// when the policy has none.
func (p *Loaded) Definitions(ctx context.Context) (any, error) {
	rs, err := p.definitions.Eval(ctx)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	return rs[0].Expressions[0].Value, nil
}

// Stages describes the policy's stages (see SubjectQuery) for the load
// log: query -> "memoised" or why not.
func (p *Loaded) Stages() map[string]string {
	out := map[string]string{}
	for _, st := range p.stages {
		if st.pure {
			out[st.spec.query] = "memoised"
		} else {
			out[st.spec.query] = "evaluated per request: " + st.why
		}
	}
	return out
}

// Decide evaluates the input against the current policy. It always returns a
// decision: anything but a well-formed one from the policy is a denial.
func (e *Engine) Decide(ctx context.Context, in *Input) Evaluation {
	p := e.current.Load()
	start := time.Now()
	ev := Evaluation{Revision: p.Revision}
	var key decisionKey
	cacheable := false
	if p.cache != nil && in.Identity != nil {
		key, cacheable = p.cache.keyFor(in)
	}
	if cacheable {
		if d, ok := p.cache.get(key); ok {
			e.metrics.cacheHits.Inc()
			ev.Decision, ev.Cached = d, true
			ev.Duration = time.Since(start)
			return ev
		}
		e.metrics.cacheMisses.Inc()
	}
	ev.Decision, ev.Err = p.evaluate(ctx, in, e.metrics)
	ev.Duration = time.Since(start)
	e.metrics.observeEval(ev.Duration)
	if cacheable && ev.Err == nil {
		p.cache.put(key, ev.Decision)
	}
	return ev
}

// Evaluate decides the input as Decide does on a decision cache miss: the
// stages (from their memos when they hold the input's keys), then the
// decision, evaluated. Nothing is cached. Benchmarks use it to measure
// what a request the cache cannot answer costs.
func (p *Loaded) Evaluate(ctx context.Context, in *Input) (Decision, error) {
	return p.evaluate(ctx, in, nil)
}

// evaluate is Evaluate, counting stage memo hits in metrics when not nil.
func (p *Loaded) evaluate(ctx context.Context, in *Input, metrics *Metrics) (Decision, error) {
	var extra [numStages + 1][2]*ast.Term
	var before priorStages
	n := 0
	for _, st := range p.stages {
		r, hit, err := st.result(ctx, in, &before)
		if err != nil {
			return deny(500, ReasonError), err
		}
		if metrics != nil {
			metrics.stageLookup(st.spec.field, hit)
		}
		before.add(st, r)
		if r.term != nil {
			extra[n] = item(st.spec.field, r.term)
			n++
		}
		if st.spec == &subjectSpec && r.plain != nil { // its grant, as input.grant
			extra[n] = item("grant", r.plain)
			n++
		}
	}
	return p.decideInput(ctx, in.valueFor(p.use, extra[:n]...))
}

// decideInput evaluates the decision on input as the request path does
// (see withInput).
func (p *Loaded) decideInput(ctx context.Context, input ast.Value) (Decision, error) {
	rs, err := withInput(ctx, p.query, input)
	return decisionOf(rs, err)
}

func (p *Loaded) decide(ctx context.Context, opts ...rego.EvalOption) (Decision, error) {
	rs, err := p.query.Eval(ctx, opts...)
	return decisionOf(rs, err)
}

func decisionOf(rs rego.ResultSet, err error) (Decision, error) {
	switch {
	case err != nil:
		return deny(500, ReasonError), fmt.Errorf("evaluate %s: %w", Query, err)
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		return deny(403, ReasonUndefined), errors.New(Query + " is undefined for this input")
	}
	d, ok := rs[0].Expressions[0].Value.(Decision)
	if !ok {
		return deny(500, ReasonError), fmt.Errorf("evaluate %s: unexpected result %T", Query, rs[0].Expressions[0].Value)
	}
	return d, nil
}

// EvalRaw evaluates a raw JSON-like input document, as `portero eval` does.
// With explain, the evaluation trace is returned as text.
func (p *Loaded) EvalRaw(ctx context.Context, input any, explain bool) (Decision, []*topdown.Event, error) {
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return deny(400, ReasonError), nil, fmt.Errorf("input: %w", err)
	}
	if obj, ok := v.(ast.Object); ok {
		// As the gateway does: the body's shape beside a body, then the
		// stages first, their results in the input.
		with := withBodyShape(obj.Copy())
		for _, st := range p.stages {
			t := obj.Get(ast.InternedTerm(st.spec.field))
			if t == nil { // not given by the caller
				// Each stage sees the results of those before it (the
				// operation denial reads the operation), as in Decide.
				var err error
				if t, err = st.eval(ctx, rego.EvalParsedInput(with)); err != nil {
					return deny(500, ReasonError), nil, err
				}
				if t != nil {
					with.Insert(ast.InternedTerm(st.spec.field), t)
				}
			}
			// The subject's grant, computed or given, is input.grant, as
			// in Decide.
			if g, _ := grantOf(t); st.spec == &subjectSpec && g != nil && with.Get(grantKey) == nil {
				with.Insert(grantKey, g)
			}
		}
		v = with
	}
	opts := []rego.EvalOption{rego.EvalParsedInput(v)}
	var tracer *topdown.BufferTracer
	if explain {
		tracer = topdown.NewBufferTracer()
		opts = append(opts, rego.EvalQueryTracer(tracer))
	}
	d, err := p.decide(ctx, opts...)
	if tracer != nil {
		return d, *tracer, err
	}
	return d, nil, err
}

// withBodyShape adds input.request.body_kind and body_keys to a document
// with a request body and without them, as the gateway gives them beside
// every body it inspected (see Body), so an input written by hand or
// recorded before they existed is decided as the gateway would decide it.
func withBodyShape(doc ast.Object) ast.Object {
	t := doc.Get(ast.InternedTerm("request"))
	if t == nil {
		return doc
	}
	req, ok := t.Value.(ast.Object)
	if !ok {
		return doc
	}
	body := req.Get(ast.InternedTerm("body"))
	if body == nil || req.Get(ast.InternedTerm("body_kind")) != nil {
		return doc
	}
	b := bodyOf(body.Value)
	req = req.Copy()
	req.Insert(ast.InternedTerm("body_kind"), ast.StringTerm(b.kind))
	if b.keys != nil {
		req.Insert(ast.InternedTerm("body_keys"), stringArray(b.keys))
	}
	doc.Insert(ast.InternedTerm("request"), ast.NewTerm(req))
	return doc
}

// Operation returns the route mapping entry (data.portero.requests.entry)
// that classifies a request with this method and path as the tenant's app
// sees it, as a JSON-like object; nil when the mapping names none (the
// default policy then refuses the request). `portero explain` prints it.
func (p *Loaded) Operation(ctx context.Context, method string, appSegments []string) (map[string]any, error) {
	segs := make([]any, len(appSegments))
	for i, s := range appSegments {
		segs[i] = s
	}
	input := map[string]any{"request": map[string]any{"method": method, "app_segments": segs}}
	rs, err := rego.New(rego.Query(OperationQuery), rego.Compiler(p.compiler), rego.Store(p.store), rego.Input(input)).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", OperationQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	entry, _ := rs[0].Expressions[0].Value.(map[string]any)
	return entry, nil
}
