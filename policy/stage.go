package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/portero-gateway/portero/internal/cache"
)

// The policy may define two stages the engine evaluates before the
// decision and passes to it in the input. OPA spends a few microseconds on
// every rule it evaluates; these stages take most of the default policy's
// rules, and their results repeat across requests, so each is memoised
// while it is pure: the rules it uses read only the input parts of its key
// and call no non-deterministic builtin (otherwise it is evaluated for
// every request, and the load log says why). A reload starts new memos.
//
// SubjectQuery is everything about the caller in the request's tenant that
// does not depend on the request (role, feature levels, scope, identity
// headers, refusals that hold for every request or per operation), passed
// as input.subject. Its key is the identity's and the access facts' value
// keys (Identity.Key, Access.Key: hashes of everything the policy can read
// in them) and the tenant, so a memoised result is exactly what evaluating
// again would give, whoever built the identity and the facts.
const SubjectQuery = "data.portero.subject.facts"

// OperationQuery is the route mapping entry of the request (feature,
// action, resource, params), passed as input.operation ({} when the mapping
// names none). Its key is the method, whether it is an upgrade, and the
// path segments.
const OperationQuery = "data.portero.requests.entry"

// OperationDenialQuery is the refusal of the request's operation that
// depends only on the caller (delegation products, rights, role actions,
// feature levels; "" when none), passed as input.operation_denial. It is
// worked out for the operations a caller uses, when they first use them,
// not for every operation of the mapping at once: a caller's first request
// costs one operation, whatever the size of the mapping. It sees
// input.operation without its "scope" (the path's ids), so one result
// serves every path of the same mapping entry: its key is the subject's
// (identity, access facts, tenant) and the value key of the operation
// without its scope, which is all its input holds.
const OperationDenialQuery = "data.portero.subject.operation_denial"

// GrantFactsQuery is what a grant gives (levels per feature, the levels
// that take effect, the X-Portero-Features header), passed as input.grant_facts. A grant
// is the "grant" field of the subject's result (input.grant): the part of
// the caller's facts their levels and refusals per operation depend on,
// with nothing that names them. Many callers share one, so this stage is
// memoised by the grant's value while it reads nothing but input.grant: a
// caller whose grant another caller had before costs no levels at all.
const GrantFactsQuery = "data.portero.subject.grant_facts"

// maxMemoised bounds each memo (see cache.Bounded for which entry makes
// room).
const maxMemoised = 20000

// stageSpec says what a stage is and what it may read to be memoised.
type stageSpec struct {
	query string
	field string // the input key its result is passed in
	// reads says why the stage's input use does not fit its key, or "".
	reads func(u inputUse) string
	// key is the memo's key for the input, or false when the input cannot
	// be keyed (it is then evaluated). use is what the stage reads; before
	// holds the results of the stages evaluated before this one.
	key func(in *Input, use inputUse, before *priorStages) (stageKey, bool)
	// prior are the earlier stages' results the stage sees in its input,
	// beside the parts of the request's input it reads; nil: none.
	prior func(before *priorStages, use inputUse, items *[numStages][2]*ast.Term) [][2]*ast.Term
	// undefined is passed when the stage is undefined for an input, so the
	// policy does not work it out again; nil passes nothing.
	undefined *ast.Term
	bit       stageSet // in stageSpecs' order
}

// numStages is len(stageSpecs).
const numStages = 4

func init() {
	if len(stageSpecs) != numStages {
		panic("policy: numStages is not len(stageSpecs)")
	}
	for i, spec := range stageSpecs {
		spec.bit = 1 << i
	}
}

type stageKey struct {
	identity, access, op ValueKey
	a, b                 string
}

// priorStages are the results of the stages evaluated before another for
// one input (nil when the policy does not define them).
type priorStages struct {
	subject, grantFacts, operation *stageResult
	// defined: the stages the policy defines; pure: those whose result is
	// a function of their key.
	defined, pure stageSet
}

// stageSet is a set of stageSpecs, a bit each in stageSpecs' order.
type stageSet uint8

// keyed says whether the results of the stages named are functions of
// their keys (or not defined by the policy).
func (b *priorStages) keyed(specs ...*stageSpec) bool {
	for _, spec := range specs {
		if b.defined&spec.bit != 0 && b.pure&spec.bit == 0 {
			return false
		}
	}
	return true
}

// add records a stage's result for the stages after it.
func (b *priorStages) add(st *stage, r *stageResult) {
	b.defined |= st.spec.bit
	if st.pure {
		b.pure |= st.spec.bit
	}
	switch st.spec {
	case &subjectSpec:
		b.subject = r
	case &grantFactsSpec:
		b.grantFacts = r
	case &operationSpec:
		b.operation = r
	}
}

// grant is the subject's grant and a key for it: its value key, or
// "none" when the subject names none (no store facts: the stages that read
// only the grant then read nothing, and one result serves every such
// input). False when the subject was not worked out.
func (b *priorStages) grant() (*ast.Term, grantKeyOf, bool) {
	switch {
	case b.subject == nil:
		return nil, grantKeyOf{}, false
	case b.subject.plain == nil:
		return nil, grantKeyOf{none: true}, true
	}
	return b.subject.plain, grantKeyOf{key: b.subject.plainKey}, true
}

// grantKeyOf keys the stages that read the grant: its value key, or none.
type grantKeyOf struct {
	key  ValueKey
	none bool
}

func (g grantKeyOf) tag() string {
	if g.none {
		return "no grant"
	}
	return "grant"
}

// stageResult is a stage's result for an input, as memoised.
type stageResult struct {
	term *ast.Term
	// For the operation stage: the operation without its scope, the
	// operation denial stage's input.operation; for the subject, its
	// grant. Each with its value key.
	plain    *ast.Term
	plainKey ValueKey
}

// priorItem appends the result of an earlier stage (t, when not nil) to
// items as input.<field>.
func priorItem(items [][2]*ast.Term, field string, t *ast.Term) [][2]*ast.Term {
	if t == nil {
		return items
	}
	return append(items, item(field, t))
}

func termOf(r *stageResult) *ast.Term {
	if r == nil {
		return nil
	}
	return r.term
}

// subjectKey is the subject stage's key: the identity's and the access
// facts' value keys and the tenant.
func subjectKey(in *Input) (stageKey, bool) {
	id, ok := in.Identity.cacheKey()
	if !ok {
		return stageKey{}, false
	}
	acc, ok := in.Access.cacheKey()
	if !ok {
		return stageKey{}, false
	}
	k := stageKey{identity: id, access: acc}
	if in.Tenant != nil {
		k.a, k.b = in.Tenant.ID, in.Tenant.Status
	}
	return k, true
}

// reads says why a stage that may read only the input keys allowed reads
// more, or "".
func reads(u inputUse, allowed ...string) string {
	for key := range u.top {
		if !slices.Contains(allowed, key) {
			return "it reads input." + key
		}
	}
	return ""
}

// readsOnly says whether the stage reads no input keys but those allowed.
func readsOnly(u inputUse, allowed ...string) bool { return reads(u, allowed...) == "" }

var subjectSpec = stageSpec{
	query: SubjectQuery,
	field: "subject",
	reads: func(u inputUse) string { return reads(u, "identity", "access", "tenant", "gateway") },
	key:   func(in *Input, _ inputUse, _ *priorStages) (stageKey, bool) { return subjectKey(in) },
}

var grantKey = ast.InternedTerm("grant")

// grantFactsSpec is keyed by the grant's value, which is all it may read.
var grantFactsSpec = stageSpec{
	query: GrantFactsQuery,
	field: "grant_facts",
	reads: func(u inputUse) string { return reads(u, "grant") },
	key: func(_ *Input, _ inputUse, b *priorStages) (stageKey, bool) {
		_, k, ok := b.grant()
		return stageKey{op: k.key, a: k.tag()}, ok
	},
	prior: func(b *priorStages, _ inputUse, items *[numStages][2]*ast.Term) [][2]*ast.Term {
		g, _, _ := b.grant()
		return priorItem(items[:0], "grant", g)
	},
}

var operationSpec = stageSpec{
	query: OperationQuery,
	field: "operation",
	reads: func(u inputUse) string {
		for key := range u.top {
			if key != "request" {
				return "it reads input." + key
			}
		}
		if u.reqAll {
			return "it reads input.request through a computed key"
		}
		for key := range u.request {
			if key != "method" && key != "app_segments" && key != "upgrade" {
				return "it reads input.request." + key
			}
		}
		return ""
	},
	key: func(in *Input, _ inputUse, _ *priorStages) (stageKey, bool) {
		method := in.Request.Method
		if in.Request.Upgrade {
			method += "\x00upgrade"
		}
		var stack [128]byte // length-prefixed: no two paths share a key
		return stageKey{a: method, b: string(appendList(stack[:0], in.Request.AppSegments))}, true
	},
	undefined: ast.NewTerm(ast.NewObject()),
}

// operationDenialSpec's input is the parts of the input it reads, the
// earlier stages' results (input.subject, input.grant, input.grant_facts)
// and the operation without its scope. When it reads nothing but the
// grant, the grant's facts and the operation (the default policy), its key
// is the grant's value and the operation's: one result serves every caller
// with that grant. Otherwise its key is the subject's (identity, access
// facts, tenant) and the operation's, memoised only while the subject's
// result is a function of the subject's key.
var operationDenialSpec = stageSpec{
	query: OperationDenialQuery,
	field: "operation_denial",
	reads: func(u inputUse) string {
		return reads(u, "identity", "access", "tenant", "gateway", "subject", "operation", "grant", "grant_facts")
	},
	key: func(in *Input, use inputUse, before *priorStages) (stageKey, bool) {
		if before.operation == nil || before.operation.plain == nil || !before.keyed(&subjectSpec, &grantFactsSpec) {
			return stageKey{}, false
		}
		if readsOnly(use, "grant", "grant_facts", "operation") {
			_, g, ok := before.grant()
			return stageKey{identity: g.key, op: before.operation.plainKey, a: g.tag()}, ok
		}
		if before.subject == nil {
			return stageKey{}, false
		}
		k, ok := subjectKey(in)
		k.op = before.operation.plainKey
		return k, ok
	},
	prior: func(b *priorStages, use inputUse, items *[numStages][2]*ast.Term) [][2]*ast.Term {
		// Keyed by the grant, it is given nothing else: its input is its
		// key, whatever the analysis of its reads missed.
		out := items[:0]
		if !readsOnly(use, "grant", "grant_facts", "operation") {
			out = priorItem(out, "subject", termOf(b.subject))
		}
		g, _, _ := b.grant()
		out = priorItem(out, "grant", g)
		out = priorItem(out, "grant_facts", termOf(b.grantFacts))
		if b.operation != nil {
			out = priorItem(out, "operation", b.operation.plain)
		}
		return out
	},
}

// stageSpecs are the stages a policy may define, in the order they are
// evaluated (each may read those before it).
var stageSpecs = []*stageSpec{&subjectSpec, &grantFactsSpec, &operationSpec, &operationDenialSpec}

var scopeKey = ast.InternedTerm("scope")

// withoutScope is the operation stage's result as the operation denial
// stage sees it, with its key.
func withoutScope(t *ast.Term) (*ast.Term, ValueKey) {
	plain := t
	if obj, ok := t.Value.(ast.Object); ok && obj.Get(scopeKey) != nil {
		keep := make([][2]*ast.Term, 0, obj.Len())
		obj.Foreach(func(k, v *ast.Term) {
			if !k.Equal(scopeKey) {
				keep = append(keep, [2]*ast.Term{k, v})
			}
		})
		plain = ast.ObjectTerm(keep...)
	}
	return plain, valueKey("operation", plain.Value)
}

// grantOf returns the subject's grant (its "grant" field) and the grant's
// value key; nil when it names none.
func grantOf(subject *ast.Term) (*ast.Term, ValueKey) {
	if subject == nil {
		return nil, ValueKey{}
	}
	obj, ok := subject.Value.(ast.Object)
	if !ok {
		return nil, ValueKey{}
	}
	g := obj.Get(grantKey)
	if g == nil {
		return nil, ValueKey{}
	}
	return g, valueKey("grant", g.Value)
}

type stage struct {
	spec  *stageSpec
	query rego.PreparedEvalQuery
	use   inputUse
	// pure is false when the stage reads other input or is
	// non-deterministic: then it is evaluated for every request.
	pure bool
	// why says why the stage is not memoised, for the load log.
	why string

	memo *cache.Bounded[stageKey, *stageResult]
}

// newStage prepares a stage, or returns nil when the policy does not
// define it. opts are the decision query's (the store).
func newStage(ctx context.Context, compiler *ast.Compiler, spec *stageSpec, opts ...func(*rego.Rego)) (*stage, error) {
	rules := compiler.GetRulesForVirtualDocument(ast.MustParseRef(spec.query))
	if len(rules) == 0 {
		return nil, nil
	}
	pq, err := rego.New(append([]func(*rego.Rego){
		rego.Query(spec.query),
		rego.Compiler(compiler),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	}, opts...)...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", spec.query, err)
	}
	reached := reachableRules(compiler, rules)
	s := &stage{spec: spec, query: pq, use: analyseRuleInputUse(reached), memo: cache.New[stageKey, *stageResult](maxMemoised)}
	switch {
	case s.use.all:
		s.why = "it reads input through a computed key"
	case !deterministic(reached):
		s.why = "it calls a non-deterministic builtin"
	case hasWith(reached):
		s.why = "it uses `with`"
	default:
		s.why = spec.reads(s.use)
	}
	s.pure = s.why == ""
	return s, nil
}

// result returns the stage's result for the input (memoised when the stage
// is pure), spec.undefined when it is undefined, and whether it came from
// the memo.
func (s *stage) result(ctx context.Context, in *Input, before *priorStages) (*stageResult, bool, error) {
	var key stageKey
	memoise := false
	if s.pure {
		key, memoise = s.spec.key(in, s.use, before)
	}
	if memoise {
		// A stage's result does not expire: the key holds all it reads.
		if r, ok := s.memo.Get(key); ok {
			return r, true, nil
		}
	}
	var input ast.Value
	if s.spec.prior != nil {
		var items [numStages][2]*ast.Term
		input = in.valueFor(s.use, s.spec.prior(before, s.use, &items)...)
	} else {
		input = in.valueFor(s.use)
	}
	t, err := s.termOf(withInput(ctx, s.query, input))
	if err != nil {
		return nil, false, err
	}
	r := &stageResult{term: t}
	switch {
	case t == nil:
	case s.spec == &operationSpec:
		r.plain, r.plainKey = withoutScope(t)
	case s.spec == &subjectSpec:
		r.plain, r.plainKey = grantOf(t)
	}
	if memoise {
		s.memo.Put(key, r)
	}
	return r, false, nil
}

func (s *stage) eval(ctx context.Context, opts ...rego.EvalOption) (*ast.Term, error) {
	return s.termOf(s.query.Eval(ctx, opts...))
}

func (s *stage) termOf(rs rego.ResultSet, err error) (*ast.Term, error) {
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", s.spec.query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return s.spec.undefined, nil
	}
	t, _ := rs[0].Expressions[0].Value.(*ast.Term)
	return t, nil
}

// reachableRules returns the rules the given rules depend on, themselves
// included, following references into data (rules and functions).
func reachableRules(compiler *ast.Compiler, start []*ast.Rule) []*ast.Rule {
	seen := map[*ast.Rule]bool{}
	var out []*ast.Rule
	queue := slices.Clone(start)
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, r)
		// Every rule of the same name (else branches, incremental
		// definitions) is part of the same document.
		queue = append(queue, compiler.GetRules(r.Ref().GroundPrefix())...)
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			if ref[0].Equal(ast.DefaultRootDocument) {
				queue = append(queue, compiler.GetRules(ref)...)
			}
			return false
		})
		for e := r.Else; e != nil; e = e.Else {
			queue = append(queue, e)
		}
	}
	return out
}

func analyseRuleInputUse(rules []*ast.Rule) inputUse {
	u := inputUse{top: map[string]bool{}, request: map[string]bool{}}
	for _, r := range rules {
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			u.add(ref)
			return false
		})
	}
	return u
}

func deterministic[T any](nodes []T) bool {
	ok := true
	for _, n := range nodes {
		ast.WalkExprs(n, func(e *ast.Expr) bool {
			if e.IsCall() {
				if b, found := ast.BuiltinMap[e.Operator().String()]; found && b.Nondeterministic {
					ok = false
				}
			}
			return !ok
		})
	}
	return ok
}

func hasWith(rules []*ast.Rule) bool {
	found := false
	for _, r := range rules {
		ast.WalkExprs(r, func(e *ast.Expr) bool {
			if len(e.With) > 0 {
				found = true
			}
			return found
		})
	}
	return found
}
