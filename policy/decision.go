package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decision is what the policy answered for one request. The Go code acts on it
// and never re-decides.
type Decision struct {
	Allow bool
	// Status is the HTTP status of a denial (4xx or 5xx).
	Status int
	// Reason is a stable id such as "member.role"; it is shown to clients,
	// so it never contains policy source or secrets.
	Reason string
	// Headers to set on the upstream request. A value may hold several
	// entries (e.g. repeated Impersonate-Group).
	Headers map[string][]string
	// Assertion, when the policy gives one, says whom the signed assertion
	// names instead of the caller: under master access the impersonated
	// user as sub and the admin as act (RFC 8693).
	Assertion *AssertionSubject
}

// AssertionSubject is the decision's optional "assertion" object:
// {"sub": "...", "act": "...", "roles": [...]}.
type AssertionSubject struct {
	Subject string
	Actor   string
	Roles   []string
}

// Reasons the engine itself gives when the policy did not decide properly.
const (
	ReasonUndefined = "policy.undefined"
	ReasonError     = "policy.error"
)

func deny(status int, reason string) Decision {
	return Decision{Status: status, Reason: reason}
}

var (
	keyAllow   = ast.StringTerm("allow")
	keyStatus  = ast.StringTerm("status")
	keyReason  = ast.StringTerm("reason")
	keyHeaders = ast.StringTerm("headers")
	keyAssert  = ast.StringTerm("assertion")
	keySub     = ast.StringTerm("sub")
	keyAct     = ast.StringTerm("act")
	keyRoles   = ast.StringTerm("roles")
)

// decisionFromTerm reads a decision document straight from the evaluation's
// AST, without the generic conversion to map[string]any. Anything that is not
// a well-formed decision is an error, which the caller turns into a denial.
func decisionFromTerm(t *ast.Term) (Decision, error) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, not an object", ast.ValueName(t.Value))
	}
	var d Decision
	allow, ok := valueOf(obj.Get(keyAllow)).(ast.Boolean)
	if !ok {
		return Decision{}, fmt.Errorf("decision.allow must be a boolean")
	}
	d.Allow = bool(allow)
	if s := obj.Get(keyStatus); s != nil {
		n, ok := s.Value.(ast.Number)
		status, isInt := n.Int()
		if !ok || !isInt || status < 100 || status > 599 {
			return Decision{}, fmt.Errorf("decision.status must be an HTTP status code, got %v", s)
		}
		d.Status = status
	}
	if r := obj.Get(keyReason); r != nil {
		s, ok := r.Value.(ast.String)
		if !ok {
			return Decision{}, fmt.Errorf("decision.reason must be a string")
		}
		d.Reason = string(s)
	}
	if h := obj.Get(keyHeaders); h != nil {
		headers, err := headersFromValue(h.Value)
		if err != nil {
			return Decision{}, err
		}
		d.Headers = headers
	}
	if a := obj.Get(keyAssert); a != nil {
		as, err := assertionFromValue(a.Value)
		if err != nil {
			return Decision{}, err
		}
		d.Assertion = as
	}
	switch {
	case d.Allow:
		d.Status = 200 // OK
	case d.Status < 400:
		d.Status = 403 // Forbidden
	}
	return d, nil
}

func headersFromValue(v ast.Value) (map[string][]string, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("decision.headers must be an object")
	}
	headers := make(map[string][]string, obj.Len())
	err := obj.Iter(func(k, val *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("decision.headers keys must be strings")
		}
		switch x := val.Value.(type) {
		case ast.String:
			headers[string(name)] = []string{string(x)}
		case *ast.Array:
			vals := make([]string, 0, x.Len())
			for i := range x.Len() {
				s, ok := x.Elem(i).Value.(ast.String)
				if !ok {
					return fmt.Errorf("decision.headers[%q] must hold strings", name)
				}
				vals = append(vals, string(s))
			}
			headers[string(name)] = vals
		default:
			return fmt.Errorf("decision.headers[%q] must be a string or a list of strings", name)
		}
		return nil
	})
	return headers, err
}

func assertionFromValue(v ast.Value) (*AssertionSubject, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("decision.assertion must be an object")
	}
	var a AssertionSubject
	sub, ok := valueOf(obj.Get(keySub)).(ast.String)
	if !ok || sub == "" {
		return nil, fmt.Errorf("decision.assertion.sub must be a non-empty string")
	}
	a.Subject = string(sub)
	if t := obj.Get(keyAct); t != nil {
		act, ok := t.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("decision.assertion.act must be a string")
		}
		a.Actor = string(act)
	}
	if t := obj.Get(keyRoles); t != nil {
		arr, ok := t.Value.(*ast.Array)
		if !ok {
			return nil, fmt.Errorf("decision.assertion.roles must be a list of strings")
		}
		for i := range arr.Len() {
			r, ok := arr.Elem(i).Value.(ast.String)
			if !ok {
				return nil, fmt.Errorf("decision.assertion.roles must be a list of strings")
			}
			a.Roles = append(a.Roles, string(r))
		}
	}
	return &a, nil
}

// valueOf returns t's value, or nil when the key was absent.
func valueOf(t *ast.Term) ast.Value {
	if t == nil {
		return nil
	}
	return t.Value
}
