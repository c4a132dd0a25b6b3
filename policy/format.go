package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// Format returns src (the Rego module in file name) in OPA's canonical
// formatting, the one `opa fmt` writes, for Rego v1. The result must mean
// what src means: OPA's formatter has mangled some one-line `else := … if
// …` chains (it repeated text from elsewhere in the file), so the output is
// parsed again and compared with src, rule by rule, and refused when it
// differs — write such a chain with braces (`} else := x if { … }`).
func Format(name string, src []byte) ([]byte, error) {
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	before, err := ast.ParseModuleWithOpts(name, string(src), opts)
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", name, err)
	}
	out, err := format.SourceWithOpts(name, src, format.Opts{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", name, err)
	}
	after, err := ast.ParseModuleWithOpts(name, string(out), opts)
	if err != nil {
		return nil, fmt.Errorf("format %s: OPA's formatter produced Rego that does not parse (%v); write the rule near there with braces", name, err)
	}
	if len(before.Rules) != len(after.Rules) {
		return nil, fmt.Errorf("format %s: OPA's formatter changed the number of rules (%d to %d)", name, len(before.Rules), len(after.Rules))
	}
	for i, r := range before.Rules {
		if !sameMeaning(r, after.Rules[i]) {
			return nil, fmt.Errorf("format %s:%d: OPA's formatter would change what rule %s means; write it with braces", name, r.Location.Row, r.Head.Name)
		}
	}
	return out, nil
}

// sameMeaning compares two rules, else chains included, ignoring whether a
// head was written with := (the formatter writes `f(x) := true if …` as
// `f(x) if …`, which means the same).
func sameMeaning(a, b *ast.Rule) bool {
	return unassigned(a).Equal(unassigned(b))
}

func unassigned(r *ast.Rule) *ast.Rule {
	c := r.Copy()
	for e := c; e != nil; e = e.Else {
		e.Head.Assign = false
	}
	return c
}
