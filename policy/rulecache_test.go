package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The rule cache answers as OPA's own for any sequence of calls: random
// pushes, pops, puts (values and "undefined", on refs that share
// prefixes) and gets, run against both. It is released and reused between
// sequences, as the request path does.
func TestRuleCacheAnswersAsOPAs(t *testing.T) {
	refs := []ast.Ref{
		ast.MustParseRef("data.portero.authz.decision"),
		ast.MustParseRef("data.portero.subject.current"),
		ast.MustParseRef("data.portero.subject.current.denial"),
		ast.MustParseRef("data.portero.subject"),
		ast.MustParseRef(`data.portero.requests.routes["GET"]`),
		ast.MustParseRef(`data.portero.requests.routes["PUT"]`),
		ast.MustParseRef(`data.portero.routes.requests["GET"]`), // the same hash: a ref's hash is its terms' sum
		ast.MustParseRef("data.portero.features.levels[1]"),
	}
	// Enough more (function calls are cached per argument) that the
	// cache's hash table grows while frames are pushed and popped.
	for i := range 300 {
		refs = append(refs, ast.MustParseRef("data.portero.features.feature_denial").Append(ast.StringTerm("g")).Append(ast.StringTerm(fmt.Sprint("f", i))))
	}
	values := []*ast.Term{nil, ast.StringTerm("a"), ast.BooleanTerm(false), ast.MustParseTerm(`{"allow": true}`)}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		ours, theirs := newRuleCache(), topdown.NewVirtualCache()
		depth := 0
		for step := range 1500 {
			ref := slices.Clone(refs[rng.IntN(len(refs))])
			switch op := rng.IntN(40); {
			case op == 0:
				ours.Push()
				theirs.Push()
				depth++
			case op == 1 && depth > 0:
				ours.Pop()
				theirs.Pop()
				depth--
			case op < 30:
				v := values[rng.IntN(len(values))]
				ours.Put(ref, v)
				theirs.Put(ref, v)
				ref[len(ref)-1] = ast.StringTerm("reused") // the evaluator reuses its buffers
			default:
				gv, gu := ours.Get(ref)
				wv, wu := theirs.Get(ref)
				if gu != wu || (gv == nil) != (wv == nil) || (gv != nil && !gv.Equal(wv)) {
					t.Fatalf("round %d step %d: Get(%v) = %v, %v; OPA's cache: %v, %v", round, step, ref, gv, gu, wv, wu)
				}
			}
			if got, want := refStrings(ours.Keys()), refStrings(theirs.Keys()); !slices.Equal(got, want) {
				t.Fatalf("round %d step %d: Keys() = %v; OPA's cache: %v", round, step, got, want)
			}
		}
		ours.release()
	}
}

func refStrings(refs []ast.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	slices.Sort(out)
	return out
}

// Every evaluation on the request path gets an empty cache: nothing of one
// evaluation is seen by the next.
func TestRuleCacheIsEmptyAfterRelease(t *testing.T) {
	c := newRuleCache()
	c.Push()
	c.Put(ast.MustParseRef("data.a.b"), ast.StringTerm("x"))
	c.release()
	for range 4 {
		c := newRuleCache()
		if v, undefined := c.Get(ast.MustParseRef("data.a.b")); v != nil || undefined || len(c.Keys()) != 0 || len(c.frames) != 1 {
			t.Fatalf("a reused cache holds %v, %v, %v", v, undefined, c.Keys())
		}
		c.release()
	}
}
