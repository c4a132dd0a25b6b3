package policy

import (
	"fmt"
	"net/http"

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
	switch {
	case d.Allow:
		d.Status = http.StatusOK
	case d.Status < 400:
		d.Status = http.StatusForbidden
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

// valueOf returns t's value, or nil when the key was absent.
func valueOf(t *ast.Term) ast.Value {
	if t == nil {
		return nil
	}
	return t.Value
}
