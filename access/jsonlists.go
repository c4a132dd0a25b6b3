package access

import (
	"encoding/json"
	"unicode/utf8"
)

// fromJSON decodes a JSON column the store wrote with toJSON, ignoring a
// malformed one (the zero value: no rights, no scope). The store's lists
// and maps of strings (a member's businesses, locations, rights, features
// and fields, a delegation's products) are read on every facts lookup, and
// encoding/json's reflection was about a sixth of a lookup's allocations;
// they take a direct path that gives what json.Unmarshal gives, and
// anything it is not sure of (an escape, a control character,
// invalid UTF-8, null, a number) goes to json.Unmarshal. FuzzFromJSON holds
// the two to the same result.
func fromJSON[T any](s string) T {
	var v T
	var ok bool
	switch p := any(&v).(type) {
	case *[]string:
		*p, ok = stringList(s)
	case *map[string]string:
		*p, ok = stringMap(s)
	case *map[string][]string:
		*p, ok = stringListMap(s)
	}
	if !ok {
		var w T
		_ = json.Unmarshal([]byte(s), &w)
		return w
	}
	return v
}

// jsonScan reads the simple JSON the direct path accepts. Every method
// reports false on anything else, and the caller then leaves the value to
// json.Unmarshal.
type jsonScan struct {
	s string
	i int
}

func (j *jsonScan) space() {
	for j.i < len(j.s) {
		switch j.s[j.i] {
		case ' ', '\t', '\n', '\r':
			j.i++
		default:
			return
		}
	}
}

// next skips white space and consumes c when it comes next.
func (j *jsonScan) next(c byte) bool {
	j.space()
	if j.i < len(j.s) && j.s[j.i] == c {
		j.i++
		return true
	}
	return false
}

// str reads a string without escapes, as a substring of the column (no
// copy), valid UTF-8 and free of control characters, as JSON requires.
func (j *jsonScan) str() (string, bool) {
	if !j.next('"') {
		return "", false
	}
	start := j.i
	for j.i < len(j.s) {
		c := j.s[j.i]
		switch {
		case c == '"':
			v := j.s[start:j.i]
			j.i++
			return v, utf8.ValidString(v)
		case c == '\\' || c < 0x20:
			return "", false
		}
		j.i++
	}
	return "", false
}

// list reads an array of strings: a non-nil slice, empty for [].
func (j *jsonScan) list() ([]string, bool) {
	if !j.next('[') {
		return nil, false
	}
	out := make([]string, 0, j.quotedStrings())
	if j.next(']') {
		return out, true
	}
	for {
		v, ok := j.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if j.next(']') {
			return out, true
		}
		if !j.next(',') {
			return nil, false
		}
	}
}

// quotedStrings guesses how many strings the array at j.i holds, for its
// slice's capacity: half the quotes before the next ']'.
func (j *jsonScan) quotedStrings() int {
	n := 0
	for i := j.i; i < len(j.s) && j.s[i] != ']'; i++ {
		if j.s[i] == '"' {
			n++
		}
	}
	return n / 2
}

// object reads an object, each value by value; a repeated key keeps its
// last value, as in json.Unmarshal.
func (j *jsonScan) object(value func(key string) bool) bool {
	if !j.next('{') {
		return false
	}
	if j.next('}') {
		return true
	}
	for {
		k, ok := j.str()
		if !ok || !j.next(':') || !value(k) {
			return false
		}
		if j.next('}') {
			return true
		}
		if !j.next(',') {
			return false
		}
	}
}

// end reports whether only white space is left.
func (j *jsonScan) end() bool {
	j.space()
	return j.i == len(j.s)
}

func stringList(s string) ([]string, bool) {
	j := jsonScan{s: s}
	v, ok := j.list()
	return v, ok && j.end()
}

func stringMap(s string) (map[string]string, bool) {
	j := jsonScan{s: s}
	m := map[string]string{}
	ok := j.object(func(k string) bool {
		v, ok := j.str()
		m[k] = v
		return ok
	})
	return m, ok && j.end()
}

func stringListMap(s string) (map[string][]string, bool) {
	j := jsonScan{s: s}
	m := map[string][]string{}
	ok := j.object(func(k string) bool {
		v, ok := j.list()
		m[k] = v
		return ok
	})
	return m, ok && j.end()
}
