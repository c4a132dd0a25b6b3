package policy

import "github.com/open-policy-agent/opa/v1/ast"

// Body is input.request.body: a request body the gateway parsed (JSON, or a
// form in the same shape), prepared once for evaluation. A nil *Body means
// the request has no body the policy may read.
type Body struct {
	value ast.Value
}

// NewBody prepares a JSON-like document (maps, slices, strings,
// json.Number, bools, nil) as input.request.body.
func NewBody(doc any) (*Body, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, err
	}
	return &Body{value: v}, nil
}

// EmptyBody is the body of an edit that sent none: an empty object, so the
// policy can tell "no fields changed" from "body not read".
func EmptyBody() *Body { return &Body{value: ast.NewObject()} }
