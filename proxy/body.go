package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/portero-gateway/portero/policy"
)

// bodyRefusal is why a body was refused: the status and the reason id.
type bodyRefusal struct {
	status int
	reason string
}

var (
	bodyTooLarge    = &bodyRefusal{http.StatusRequestEntityTooLarge, "request.body_too_large"}
	bodyUnsupported = &bodyRefusal{http.StatusUnsupportedMediaType, "request.body_unsupported"}
	bodyMalformed   = &bodyRefusal{http.StatusBadRequest, "request.bad_body"}
	bodyDuplicate   = &bodyRefusal{http.StatusBadRequest, "request.duplicate_key"}
	bodyOverride    = &bodyRefusal{http.StatusBadRequest, "request.method_override"}
)

// readBody is the one place a request body is read for the policy, on
// routes that inspect bodies. The body is read whole (at most max bytes),
// parsed into the shape input.request.body has, and put back for the
// upstream byte for byte, so the policy decides on exactly what the app
// receives. What cannot be parsed is refused whatever its label: only JSON
// (application/json, application/*+json) and form-encoded bodies, in
// UTF-8, unencoded, with one Content-Type, are accepted. JSON with a key
// twice at any depth is refused (stacks disagree on which copy wins), and
// so is a top-level "_method" key, which Laravel and Rails read as a method
// override. A request without a body gets nil; edits (methods other than
// GET, HEAD and OPTIONS) without one get an empty object, so the policy can
// tell "no fields changed" from "body not inspected".
func readBody(r *http.Request, max int64) (*policy.Body, *bodyRefusal) {
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if !hasBody {
		return emptyBodyFor(r.Method), nil
	}
	if r.ContentLength > max {
		return nil, bodyTooLarge
	}
	kind, refusal := bodyKind(r.Header)
	if refusal != nil {
		return nil, refusal
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body.Close()
	if err != nil {
		return nil, bodyMalformed
	}
	if int64(len(data)) > max {
		return nil, bodyTooLarge
	}
	r.Body = &bufferedBody{Reader: bytes.NewReader(data), data: data}
	r.ContentLength = int64(len(data))
	if len(data) == 0 {
		r.Body = http.NoBody
		return emptyBodyFor(r.Method), nil
	}
	if !utf8.Valid(data) {
		return nil, bodyMalformed
	}
	var doc any
	switch kind {
	case "json":
		doc, refusal = parseJSONBody(data)
	default:
		doc, refusal = parseFormBody(data)
	}
	if refusal != nil {
		return nil, refusal
	}
	if obj, ok := doc.(map[string]any); ok {
		for k := range obj {
			if isMethodParam(k) {
				return nil, bodyOverride
			}
		}
	}
	body, err := policy.NewBody(doc)
	if err != nil {
		return nil, bodyMalformed
	}
	return body, nil
}

func emptyBodyFor(method string) *policy.Body {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	return policy.EmptyBody()
}

// bodyKind returns "json" or "form" for a body Portero can parse, or why it
// cannot.
func bodyKind(h http.Header) (string, *bodyRefusal) {
	if enc := h.Values("Content-Encoding"); len(enc) > 0 && !(len(enc) == 1 && strings.EqualFold(strings.TrimSpace(enc[0]), "identity")) {
		return "", bodyUnsupported
	}
	types := h.Values("Content-Type")
	if len(types) != 1 {
		return "", bodyUnsupported
	}
	mt, params, err := mime.ParseMediaType(types[0])
	if err != nil {
		return "", bodyUnsupported
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return "", bodyUnsupported
		}
	}
	switch {
	case mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		return "json", nil
	case mt == "application/x-www-form-urlencoded":
		return "form", nil
	}
	return "", bodyUnsupported
}

// parseJSONBody decodes one JSON value (numbers kept exact) and refuses
// anything after the value, nesting deeper than maxJSONDepth, and
// duplicate keys at any depth.
func parseJSONBody(data []byte) (any, *bodyRefusal) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, bodyMalformed
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bodyMalformed
	}
	switch duplicateKey(data) {
	case errDuplicateKey:
		return nil, bodyDuplicate
	case errTooDeep:
		return nil, bodyMalformed
	}
	return doc, nil
}

var (
	errDuplicateKey = errors.New("duplicate key")
	errTooDeep      = errors.New("nested too deep")
)

// maxJSONDepth bounds nesting.
const maxJSONDepth = 64

// duplicateKey scans JSON that already decoded without error and reports
// errDuplicateKey when an object names a key twice (after unescaping:
// "a" and "\u0061" are the same key), or errTooDeep. Stacks disagree on
// which copy of a duplicate wins, so the policy and the app could see
// different values.
func duplicateKey(data []byte) error {
	type frame struct {
		object, expectKey bool
		keys              []string
	}
	var stack []frame
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			if len(stack) >= maxJSONDepth {
				return errTooDeep
			}
			stack = append(stack, frame{object: data[i] == '{', expectKey: data[i] == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := len(stack) - 1; top >= 0 && stack[top].object {
				stack[top].expectKey = true
			}
		case '"':
			j, escaped := i+1, false
			for ; data[j] != '"'; j++ {
				if data[j] == '\\' {
					j++
					escaped = true
				}
			}
			if top := len(stack) - 1; top >= 0 && stack[top].expectKey {
				key := string(data[i+1 : j])
				if escaped {
					_ = json.Unmarshal(data[i:j+1], &key)
				}
				if slices.Contains(stack[top].keys, key) {
					return errDuplicateKey
				}
				stack[top].keys = append(stack[top].keys, key)
				stack[top].expectKey = false
			}
			i = j
		}
	}
	return nil
}

// parseFormBody gives a form-encoded body the shape a JSON object would
// have: one value is a string, repeated keys an array. Semicolons as
// separators and bad escapes are refused, as for query strings.
func parseFormBody(data []byte) (any, *bodyRefusal) {
	vals, err := url.ParseQuery(string(data))
	if err != nil {
		return nil, bodyMalformed
	}
	obj := make(map[string]any, len(vals))
	for k, vs := range vals {
		if !utf8.ValidString(k) {
			return nil, bodyMalformed
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, bodyMalformed
			}
		}
		if len(vs) == 1 {
			obj[k] = vs[0]
			continue
		}
		arr := make([]any, len(vs))
		for i, v := range vs {
			arr[i] = v
		}
		obj[k] = arr
	}
	return obj, nil
}
