package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Impact replay: the decision log can record each decision's input as a
// JSON document (AppendJSON), and DecideRecorded evaluates such a document
// again, against another policy, through the gateway's own Decide, so a
// candidate policy is judged on real traffic exactly as it would decide it.

// InputMask chooses what a recorded input hides (see AppendJSON).
type InputMask interface {
	// Masked says whether the value at path (object keys from the
	// input's root, list elements by index) is hidden, with everything
	// in it. path is only valid during the call.
	Masked(path []string) bool
	// Pseudonym is written in place of a hidden string, number or
	// boolean: kind 's', 'n' or 'b', and its text.
	Pseudonym(kind byte, text string) string
}

// AppendJSON appends the whole input as JSON to buf: the document Value
// builds (what the policy reads, whatever parts it reads), without the
// stages' results, which a replay works out with the policy it evaluates;
// object keys sorted. Values mask hides (nil: none) are written as its
// pseudonyms, keeping the shape of objects and lists.
func (in *Input) AppendJSON(buf []byte, mask InputMask) []byte {
	w := jsonWriter{buf: buf, mask: mask, path: make([]string, 0, 8)}
	w.value(in.Value(), false)
	return w.buf
}

type jsonWriter struct {
	buf  []byte
	mask InputMask
	path []string
}

// listIndex names list elements in paths without allocating.
var listIndex = func() (s [64]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func (w *jsonWriter) value(v ast.Value, masked bool) {
	switch x := v.(type) {
	case ast.Object:
		w.buf = append(w.buf, '{')
		i := 0
		x.Foreach(func(k, e *ast.Term) { // keys in sorted order
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			i++
			key, ok := k.Value.(ast.String)
			if !ok { // not made from JSON: its text names it
				key = ast.String(k.Value.String())
			}
			w.buf = append(appendJSONString(w.buf, string(key)), ':')
			w.child(string(key), e.Value, masked)
		})
		w.buf = append(w.buf, '}')
	case *ast.Array:
		w.buf = append(w.buf, '[')
		for i := range x.Len() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			name := ""
			if i < len(listIndex) {
				name = listIndex[i]
			} else {
				name = strconv.Itoa(i)
			}
			w.child(name, x.Elem(i).Value, masked)
		}
		w.buf = append(w.buf, ']')
	case ast.String:
		if masked {
			w.buf = appendJSONString(w.buf, w.mask.Pseudonym('s', string(x)))
		} else {
			w.buf = appendJSONString(w.buf, string(x))
		}
	case ast.Number:
		if masked {
			w.buf = appendJSONString(w.buf, w.mask.Pseudonym('n', string(x)))
		} else {
			w.buf = append(w.buf, x...)
		}
	case ast.Boolean:
		if masked {
			w.buf = appendJSONString(w.buf, w.mask.Pseudonym('b', strconv.FormatBool(bool(x))))
		} else {
			w.buf = strconv.AppendBool(w.buf, bool(x))
		}
	case ast.Null:
		w.buf = append(w.buf, "null"...)
	default: // not made from Go data (a set): its text, hidden when masked
		if masked {
			w.buf = appendJSONString(w.buf, w.mask.Pseudonym('s', v.String()))
		} else {
			w.buf = appendJSONString(w.buf, v.String())
		}
	}
}

func (w *jsonWriter) child(name string, v ast.Value, masked bool) {
	w.path = append(w.path, name)
	if !masked && w.mask != nil {
		masked = w.mask.Masked(w.path)
	}
	w.value(v, masked)
	w.path = w.path[:len(w.path)-1]
}

// appendJSONString quotes s as encoding/json does without HTML escaping:
// control characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029
// escaped.
func appendJSONString(buf []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(append(buf, s[start:i]...), "\\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			buf = append(append(buf, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(buf, s[start:]...), '"')
}

// DecideRecorded evaluates a recorded input document (AppendJSON)
// against the policy being served. The document becomes an Input again
// and goes through Decide, with the stages' memos and the decision cache,
// as in the gateway; a document that does not come back exactly as
// recorded (from another version, or edited by hand) is evaluated as
// written, the stages first, as portero eval does. Input the recorded
// document gives for a stage (input.subject, input.operation) is dropped:
// the policy under test works its stages out itself. An error means the
// document could not be read; a policy that fails to decide gives a
// denial with Evaluation.Err, as in the gateway.
func (e *Engine) DecideRecorded(ctx context.Context, raw json.RawMessage) (Evaluation, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return Evaluation{}, fmt.Errorf("recorded input: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Evaluation{}, errors.New("recorded input: more than one JSON value")
	}
	if doc == nil {
		return Evaluation{}, errors.New("recorded input: null, not an object")
	}
	for _, st := range stageSpecs {
		delete(doc, st.field)
	}
	delete(doc, "grant") // the subject's, passed beside it
	if in, ok := inputFromDocument(doc); ok && sameDocument(in.Value(), doc) {
		return e.Decide(ctx, in), nil
	}
	recorded, err := ast.InterfaceToValue(doc)
	if err != nil {
		return Evaluation{}, fmt.Errorf("recorded input: %w", err)
	}
	p := e.current.Load()
	start := time.Now()
	ev := Evaluation{Revision: p.Revision}
	ev.Decision, _, ev.Err = p.EvalRaw(ctx, recorded, false)
	ev.Duration = time.Since(start)
	return ev, nil
}

// inputFromDocument rebuilds the Input whose recorded document
// (AppendJSON, decoded) doc is. It is lenient: a field of an unexpected
// type is left out, and the caller compares the rebuilt input with the
// document before trusting it.
func inputFromDocument(doc map[string]any) (*Input, bool) {
	in := &Input{}
	if r, ok := doc["request"].(map[string]any); ok {
		in.Request = Request{
			Method: str(r["method"]), Host: str(r["host"]), Path: str(r["path"]),
			Segments: strs(r["segments"]), AppSegments: strs(r["app_segments"]),
			QueryKeys: strs(r["query_keys"]), Upgrade: r["upgrade"] == true,
		}
		if q, ok := r["query"].(map[string]any); ok {
			in.Request.Query = make(map[string][]string, len(q))
			for k, v := range q {
				in.Request.Query[k] = strs(v)
			}
		}
		if h, ok := r["headers"].(map[string]any); ok {
			in.Request.Headers = make(map[string]string, len(h))
			for k, v := range h {
				in.Request.Headers[k] = str(v)
			}
		}
		if b, ok := r["body"]; ok {
			body, err := NewBody(b)
			if err != nil {
				return nil, false
			}
			in.Request.Body = body
		}
	}
	if r, ok := doc["route"].(map[string]any); ok {
		in.Route = Route{Name: str(r["name"]), API: r["api"] == true}
	}
	if t, ok := doc["tenant"].(map[string]any); ok {
		in.Tenant = &Tenant{ID: str(t["id"]), Status: str(t["status"])}
	}
	if id, ok := doc["identity"].(map[string]any); ok {
		m, _ := id["memberships"].(map[string]any)
		memberships := make(map[string][]string, len(m))
		for tenant, roles := range m {
			memberships[tenant] = strs(roles)
		}
		claims, _ := id["claims"].(map[string]any)
		in.Identity = NewIdentity(Identity{
			Subject: str(id["sub"]), Email: str(id["email"]), Org: str(id["org"]),
			Groups: strs(id["groups"]), Roles: strs(id["roles"]), Memberships: memberships,
			Claims: claims, Auth: str(id["auth"]), Session: str(id["session"]),
		})
	}
	if a, ok := doc["access"].(map[string]any); ok {
		acc, err := NewAccess(a)
		if err != nil {
			return nil, false
		}
		in.Access = acc
	}
	if m, ok := doc["management"].(map[string]any); ok {
		in.Management = managementFromDocument(m)
	}
	if g, ok := doc["gateway"].(map[string]any); ok {
		in.Gateway = NewGateway(str(g["header_profile"]))
	}
	if s, ok := doc["now"].(string); ok {
		now, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, false
		}
		in.Now = now
	}
	return in, true
}

func managementFromDocument(m map[string]any) *Management {
	out := &Management{Action: str(m["action"]), Tenant: str(m["tenant"]), Partner: str(m["partner"]), UserPartner: str(m["user_partner"]),
		UserPartnerRole: str(m["user_partner_role"])}
	if t, ok := m["target"].(map[string]any); ok {
		out.Target = &MemberChange{User: str(t["user"]), Current: memberGrantFromDocument(t["current"]), New: memberGrantFromDocument(t["new"])}
	}
	if g, ok := m["grant"].(map[string]any); ok {
		out.Grant = &DelegationGrant{Partner: str(g["partner"]), Scope: str(g["scope"]), Products: strs(g["products"]), Wallet: g["wallet"] == true}
	}
	return out
}

func memberGrantFromDocument(x any) *MemberGrant {
	m, ok := x.(map[string]any)
	if !ok {
		return nil
	}
	g := &MemberGrant{Role: str(m["role"]), Profile: str(m["profile"]), Status: str(m["status"]),
		Businesses: strs(m["businesses"]), Locations: strs(m["locations"]), Rights: strs(m["rights"])}
	features, _ := m["features"].(map[string]any)
	g.Features = make(map[string]string, len(features))
	for k, v := range features {
		g.Features[k] = str(v)
	}
	fields, _ := m["fields"].(map[string]any)
	g.Fields = make(map[string][]string, len(fields))
	for k, v := range fields {
		g.Fields[k] = strs(v)
	}
	return g
}

func str(x any) string {
	s, _ := x.(string)
	return s
}

// strs is a list of strings; nil when x is not a list.
func strs(x any) []string {
	list, ok := x.([]any)
	if !ok {
		return nil
	}
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = str(v)
	}
	return out
}

// sameDocument says whether v is the JSON-like document x: the check that
// an input rebuilt from a recorded document is the document, without
// converting the document to a value first.
func sameDocument(v ast.Value, x any) bool {
	switch v := v.(type) {
	case ast.Object:
		m, ok := x.(map[string]any)
		if !ok || v.Len() != len(m) {
			return false
		}
		same := true
		v.Until(func(k, e *ast.Term) bool {
			key, ok := k.Value.(ast.String)
			if !ok {
				same = false
			} else if xe, found := m[string(key)]; !found || !sameDocument(e.Value, xe) {
				same = false
			}
			return !same
		})
		return same
	case *ast.Array:
		list, ok := x.([]any)
		if !ok || v.Len() != len(list) {
			return false
		}
		for i, e := range list {
			if !sameDocument(v.Elem(i).Value, e) {
				return false
			}
		}
		return true
	case ast.String:
		s, ok := x.(string)
		return ok && string(v) == s
	case ast.Number:
		n, ok := x.(json.Number)
		return ok && string(v) == string(n)
	case ast.Boolean:
		b, ok := x.(bool)
		return ok && bool(v) == b
	case ast.Null:
		return x == nil
	}
	return false
}
