package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// inputUse records which parts of the input the loaded policy can read, so
// the gateway builds only those for each request. Building parts nobody
// reads costs allocations, and under load allocations are GC time. The
// analysis is conservative: any reference to input that is not a constant
// path (input, input[x], object.get(input, …)) makes every part needed.
type inputUse struct {
	all     bool
	top     map[string]bool // input.<key>
	request map[string]bool // input.request.<key>; nil with top["request"] means all of request
	reqAll  bool
}

func analyseInputUse(modules map[string]*ast.Module) inputUse {
	u := inputUse{top: map[string]bool{}, request: map[string]bool{}}
	for _, m := range modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			u.add(r)
			return false
		})
	}
	return u
}

// add records one reference, when it is a reference to input.
func (u *inputUse) add(r ast.Ref) {
	if !r[0].Equal(ast.InputRootDocument) {
		return
	}
	key, ok := constKey(r, 1)
	if !ok {
		u.all = true
		return
	}
	u.top[key] = true
	if key == "request" {
		sub, ok := constKey(r, 2)
		if !ok {
			u.reqAll = true
		} else {
			u.request[sub] = true
		}
	}
}

func constKey(r ast.Ref, i int) (string, bool) {
	if len(r) <= i {
		return "", false
	}
	s, ok := r[i].Value.(ast.String)
	return string(s), ok
}

func (u inputUse) needs(key string) bool { return u.all || u.top[key] }

func (u inputUse) needsRequest(key string) bool {
	return u.all || u.reqAll || u.request[key]
}

// everything is the use of a policy that reads all of the input.
var everything = inputUse{all: true}
