package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Impact replay: the decision log can record each decision's input as a
// JSON document (Document), and DecideRecorded evaluates such a document
// again, against another policy, through the gateway's own Decide, so a
// candidate policy is judged on real traffic exactly as it would decide it.

// Document is the whole input as JSON-like data (objects are
// map[string]any, numbers json.Number): the document Value builds, without
// the stages' results, which a replay works out with the policy it
// evaluates. The result is the caller's to change (the decision log masks
// credentials in it).
func (in *Input) Document() (map[string]any, error) {
	x, err := ast.JSON(in.Value())
	if err != nil {
		return nil, fmt.Errorf("input as JSON: %w", err)
	}
	doc, ok := x.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("input as JSON: %T, not an object", x)
	}
	return doc, nil
}

// DecideRecorded evaluates a recorded input document (Document, as JSON)
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
	for _, st := range []*stageSpec{&subjectSpec, &operationSpec} {
		delete(doc, st.field)
	}
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

// inputFromDocument rebuilds the Input whose Document doc is. It is
// lenient: a field of an unexpected type is left out, and the caller
// compares the rebuilt input with the document before trusting it.
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
	out := &Management{Action: str(m["action"]), Tenant: str(m["tenant"]), Partner: str(m["partner"]), UserPartner: str(m["user_partner"])}
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
