package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
	// be keyed (it is then evaluated). before holds the results of the
	// stages evaluated before this one.
	key func(in *Input, before *priorStages) (stageKey, bool)
	// input builds the stage's input when it is not the parts of the
	// request's input the stage reads; nil: those parts.
	input func(in *Input, use inputUse, before *priorStages) ast.Value
	// undefined is passed when the stage is undefined for an input, so the
	// policy does not work it out again; nil passes nothing.
	undefined *ast.Term
}

type stageKey struct {
	identity, access, op ValueKey
	a, b                 string
}

// priorStages are the results of the stages evaluated before another for
// one input (nil when the policy does not define them).
type priorStages struct {
	subject, operation *stageResult
	// subjectPure: the subject's result is a function of its key.
	subjectPure bool
}

// stageResult is a stage's result for an input, as memoised.
type stageResult struct {
	term *ast.Term
	// For the operation stage: the operation without its scope, the
	// operation denial stage's input.operation, and its value key.
	plain    *ast.Term
	plainKey ValueKey
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

// subjectReads says why a stage keyed by the subject (and, with
// operation, the operation) reads more than its key holds, or "".
func subjectReads(u inputUse, operation bool) string {
	for key := range u.top {
		if !slices.Contains([]string{"identity", "access", "tenant", "gateway"}, key) && (!operation || key != "operation" && key != "subject") {
			return "it reads input." + key
		}
	}
	return ""
}

var subjectSpec = stageSpec{
	query: SubjectQuery,
	field: "subject",
	reads: func(u inputUse) string { return subjectReads(u, false) },
	key:   func(in *Input, _ *priorStages) (stageKey, bool) { return subjectKey(in) },
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
	key: func(in *Input, _ *priorStages) (stageKey, bool) {
		method := in.Request.Method
		if in.Request.Upgrade {
			method += "\x00upgrade"
		}
		var b strings.Builder
		appendStrings(&b, in.Request.AppSegments) // length-prefixed: no two paths share a key
		return stageKey{a: method, b: b.String()}, true
	},
	undefined: ast.NewTerm(ast.NewObject()),
}

// operationDenialSpec's input is the subject's parts of the input, the
// subject's result (input.subject: the caller's facts, worked out already)
// and the operation without its scope; its key is the subject's and the
// operation's, so it is memoised only while the subject's result is a
// function of the subject's key.
var operationDenialSpec = stageSpec{
	query: OperationDenialQuery,
	field: "operation_denial",
	reads: func(u inputUse) string { return subjectReads(u, true) },
	key: func(in *Input, before *priorStages) (stageKey, bool) {
		if before.operation == nil || before.operation.plain == nil || before.subject == nil || !before.subjectPure {
			return stageKey{}, false
		}
		k, ok := subjectKey(in)
		k.op = before.operation.plainKey
		return k, ok
	},
	input: func(in *Input, use inputUse, before *priorStages) ast.Value {
		var extra [2][2]*ast.Term
		n := 0
		if s := before.subject; s != nil && s.term != nil {
			extra[n] = item("subject", s.term)
			n++
		}
		if op := before.operation; op != nil && op.plain != nil {
			extra[n] = item("operation", op.plain)
			n++
		}
		return in.valueFor(use, extra[:n]...)
	},
}

// stageSpecs are the stages a policy may define, in the order they are
// evaluated (the operation denial needs the operation).
var stageSpecs = []*stageSpec{&subjectSpec, &operationSpec, &operationDenialSpec}

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
		key, memoise = s.spec.key(in, before)
	}
	if memoise {
		// A stage's result does not expire: the key holds all it reads.
		if r, ok := s.memo.Get(key); ok {
			return r, true, nil
		}
	}
	var input ast.Value
	if s.spec.input != nil {
		input = s.spec.input(in, s.use, before)
	} else {
		input = in.valueFor(s.use)
	}
	t, err := s.termOf(withInput(ctx, s.query, input))
	if err != nil {
		return nil, false, err
	}
	r := &stageResult{term: t}
	if s.spec == &operationSpec && t != nil {
		r.plain, r.plainKey = withoutScope(t)
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
