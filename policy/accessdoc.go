package policy

import "github.com/open-policy-agent/opa/v1/ast"

// A Field is one field of a JSON object built for the input
// (input.access) straight into the form the policy reads: the gateway
// builds one document per store lookup, and through a map[string]any and
// ast.InterfaceToValue that cost about a fifth of the lookup. Lists and
// maps that are nil become empty ones, as in JSON from Go's zero values.
type Field = [2]*ast.Term

// StringField, BoolField, StringsField, StringMapField, StringsMapField
// and ObjectField make a field of each kind of value.
func StringField(name, v string) Field { return ast.Item(ast.StringTerm(name), ast.StringTerm(v)) }

func BoolField(name string, v bool) Field { return ast.Item(ast.StringTerm(name), ast.BooleanTerm(v)) }

func StringsField(name string, list []string) Field {
	return ast.Item(ast.StringTerm(name), stringArray(list))
}

func StringMapField(name string, m map[string]string) Field {
	return ast.Item(ast.StringTerm(name), stringObject(m))
}

func StringsMapField(name string, m map[string][]string) Field {
	return ast.Item(ast.StringTerm(name), stringListObject(m))
}

func ObjectField(name string, fields ...Field) Field {
	return ast.Item(ast.StringTerm(name), ast.ObjectTerm(fields...))
}

// AccessOf is NewAccess for a document built from Fields.
func AccessOf(fields ...Field) *Access {
	v := ast.NewObject(fields...)
	return &Access{value: v, key: valueKey("access", v)}
}
