package policy

import (
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Body is input.request.body: a request body the gateway parsed (JSON, or a
// form in the same shape), prepared once for evaluation. A nil *Body means
// the request has no body the policy may read.
//
// Beside the body itself the input carries its shape, which is all a
// per-field check needs: input.request.body_kind (the JSON type of the
// top level: "object", "array", "string", "number", "boolean" or "null")
// and, for an object, input.request.body_keys (its top-level keys,
// sorted). A policy that reads the shape and not the body (the default
// policy) has its edits answered from the decision cache like reads: the
// shape repeats across requests where the values do not.
type Body struct {
	value ast.Value
	kind  string
	keys  []string // sorted; nil unless kind is "object"
	// shape is kind and keys as part of a decision cache key: each
	// length-prefixed, so no two shapes share one whatever the keys hold.
	shape string
}

// NewBody prepares a JSON-like document (maps, slices, strings,
// json.Number, bools, nil) as input.request.body.
func NewBody(doc any) (*Body, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, err
	}
	return bodyOf(v), nil
}

// EmptyBody is the body of an edit that sent none: an empty object, so the
// policy can tell "no fields changed" from "body not read".
func EmptyBody() *Body { return bodyOf(ast.NewObject()) }

func bodyOf(v ast.Value) *Body {
	b := &Body{value: v, kind: kindOf(v)}
	if obj, ok := v.(ast.Object); ok {
		b.keys = make([]string, 0, obj.Len())
		obj.Foreach(func(k, _ *ast.Term) {
			if s, ok := k.Value.(ast.String); ok {
				b.keys = append(b.keys, string(s))
			}
		})
		slices.Sort(b.keys)
	}
	b.shape = string(appendList(append([]byte(b.kind), ':'), b.keys))
	return b
}

// kindOf names a JSON value's type as Rego's type_name does.
func kindOf(v ast.Value) string {
	switch v.(type) {
	case ast.Object:
		return "object"
	case *ast.Array:
		return "array"
	case ast.String:
		return "string"
	case ast.Number:
		return "number"
	case ast.Boolean:
		return "boolean"
	case ast.Null:
		return "null"
	}
	return ast.ValueName(v)
}

// appendList appends ss so that no other list appends the same bytes: the
// count, then each string's length before it.
func appendList(b []byte, ss []string) []byte {
	b = strconv.AppendInt(b, int64(len(ss)), 10)
	for _, s := range ss {
		b = strconv.AppendInt(append(b, ','), int64(len(s)), 10)
		b = append(append(b, ':'), s...)
	}
	return b
}
