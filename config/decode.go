package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a configuration error at a position in a file.
type Error struct {
	File   string
	Line   int
	Column int
	// Key is the dotted path of the value, such as "routes[1].upstream".
	Key string
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors collects every problem found in one file, so an operator fixes them
// all in one go.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// position is where a key's value sits in the file.
type position struct{ line, column int }

// decoder walks a yaml.Node tree into a struct by its yaml tags, remembering
// where each value came from and collecting every error with its position.
type decoder struct {
	file      string
	errs      Errors
	positions map[string]position
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	e := &Error{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} in a scalar. An unset
// variable without a default is an error: silently using "" hides typos.
func (d *decoder) expandEnv(n *yaml.Node, key string) string {
	return envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := os.LookupEnv(m[1]); ok {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		d.fail(n, key, "environment variable %s is not set (set it, or write ${%s:-default})", m[1], m[1])
		return ""
	})
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.positions[key] = position{n.Line, n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	switch {
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), key)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, v, key)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(n, v, key)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
		d.decodeMap(n, v, key)
	case v.Type() == durationType:
		s, ok := d.scalar(n, key, "a duration such as 30s or 5m")
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(n, key, "expected a duration such as 30s or 5m, got %q", s)
			return
		}
		if dur < 0 {
			d.fail(n, key, "must not be negative, got %s; give a duration such as 30s (or leave the key out for the default)", s)
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		if s, ok := d.scalar(n, key, "a string"); ok {
			v.SetString(s)
		}
	case v.Kind() == reflect.Bool:
		s, ok := d.scalar(n, key, "true or false")
		if !ok {
			return
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.fail(n, key, "expected true or false, got %q", s)
		}
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		s, ok := d.scalar(n, key, "a whole number")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.fail(n, key, "expected a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case v.Kind() == reflect.Float64:
		s, ok := d.scalar(n, key, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.fail(n, key, "expected a number such as 0.25, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("config: no decoder for %s", v.Type()))
	}
}

// scalar returns a scalar's value with environment references expanded.
func (d *decoder) scalar(n *yaml.Node, key, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, key, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	return d.expandEnv(n, key), true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, key, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	fields := map[string]int{}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		child := join(key, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(k, child, "unknown key %q; expected one of: %s", k.Value, strings.Join(sortedKeys(fields), ", "))
			continue
		}
		if seen[k.Value] {
			d.fail(k, child, "key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.Field(idx), child)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
	}
	v.Set(s)
}

// decodeMap reads a mapping with string keys chosen by the user (tenant
// ids, say); duplicate keys are errors, as in structs.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, key, "expected a mapping of names to values, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		if m.MapIndex(reflect.ValueOf(name).Convert(v.Type().Key())).IsValid() {
			d.fail(k, join(key, name), "duplicate key %q", name)
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, join(key, name))
		m.SetMapIndex(reflect.ValueOf(name).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}
