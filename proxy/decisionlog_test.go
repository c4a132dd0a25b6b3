package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/policy"
)

func decisionLogInput() (*policy.Input, policy.Evaluation) {
	in := &policy.Input{Route: policy.Route{Name: "app"}, Request: policy.Request{Method: "GET", Path: "/"},
		Tenant: &policy.Tenant{ID: "acme"}, Identity: policy.NewIdentity(policy.Identity{Subject: "u"})}
	ev := policy.Evaluation{Decision: policy.Decision{Allow: true, Status: 200}}
	return in, ev
}

func recording(enabled bool, sample float64) config.Log {
	return config.Log{DecisionInputs: config.DecisionInputs{Enabled: enabled, Sample: &sample}}
}

// TestDecisionLogCostsNothingWhenOff: above info the decision log line is
// not built at all (it runs on every request), recorded input or not; and
// with input recording off, or on for a decision outside the sample, the
// one step recording adds to the line (sampled) allocates nothing, so the
// line costs what it cost before recording existed (the request path's
// published allocations, internal/archtest, hold it to that).
func TestDecisionLogCostsNothingWhenOff(t *testing.T) {
	in, ev := decisionLogInput()
	quiet := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, l := range []config.Log{{}, recording(true, 1)} {
		g := &Gateway{log: quiet, cfg: &config.Config{Log: l}}
		if n := testing.AllocsPerRun(100, func() { g.logDecision("id", in, ev, "") }); n != 0 {
			t.Fatalf("%v allocations per request with the decision log off (%+v)", n, l.DecisionInputs)
		}
	}
	for _, l := range []config.Log{{}, recording(false, 1), recording(true, 0)} {
		g := &Gateway{cfg: &config.Config{Log: l}}
		n := testing.AllocsPerRun(100, func() {
			if g.sampled() {
				t.Fatalf("recorded with %+v", l.DecisionInputs)
			}
		})
		if n != 0 {
			t.Fatalf("deciding not to record allocates %v times (%+v)", n, l.DecisionInputs)
		}
	}
	info := slog.New(slog.NewJSONHandler(io.Discard, nil))
	allocs := func(l config.Log) float64 {
		g := &Gateway{log: info, cfg: &config.Config{Log: l}}
		return testing.AllocsPerRun(100, func() { g.logDecision("id", in, ev, "") })
	}
	if off, on := allocs(config.Log{}), allocs(recording(true, 1)); on <= off {
		t.Errorf("recording every input: %v allocations, no more than off (%v)?", on, off)
	}
}

// The sample is a fraction of decisions, drawn per decision.
func TestDecisionInputsAreSampled(t *testing.T) {
	in, ev := decisionLogInput()
	var buf bytes.Buffer
	g := &Gateway{log: slog.New(slog.NewJSONHandler(&buf, nil)), cfg: &config.Config{Log: recording(true, 0.25)}}
	const n = 4000
	for range n {
		g.logDecision("id", in, ev, "")
	}
	got := strings.Count(buf.String(), `"input":`)
	if got < n/4-200 || got > n/4+200 { // ±200 is more than 6 standard deviations
		t.Fatalf("%d of %d decisions recorded with sample 0.25", got, n)
	}
}

// recordedLine logs one decision with input recording on and returns the
// line, raw and decoded.
func recordedLine(t *testing.T, in *policy.Input, d policy.Decision, mask ...string) (string, map[string]any) {
	t.Helper()
	cfg, err := config.Parse("g.yaml", []byte(`
oidc: {issuer: "https://login.example.com", audiences: [portero]}
routes: [{name: app, upstream: "http://127.0.0.1:1"}]
log:
  decision_inputs:
    enabled: true
    mask: [`+strings.Join(mask, ", ")+`]
`))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	g := &Gateway{log: slog.New(slog.NewJSONHandler(&buf, nil)), cfg: cfg}
	g.logDecision("d1", in, policy.Evaluation{Decision: d}, "")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	return buf.String(), line
}

func at(t *testing.T, doc any, path ...string) any {
	t.Helper()
	for _, k := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("%v: no object at %s", path, k)
		}
		doc = m[k]
	}
	return doc
}

// A recorded input carries no credential and none of the configured
// paths' values; equal values keep equal pseudonyms (the master-access
// session is compared with the caller's), different ones stay apart, and
// a masked value the decision put in a header is masked there too.
func TestRecordedInputMasksSecrets(t *testing.T) {
	acc, err := policy.NewAccess(map[string]any{"master": map[string]any{"id": "m1", "session": "sess-hash-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := policy.NewBody(map[string]any{"phone": "+1 555 0199", "password": "hunter2-body",
		"nested": []any{map[string]any{"api_key": "body-key-0001"}}, "hours": "9-17"})
	if err != nil {
		t.Fatal(err)
	}
	in := &policy.Input{
		Route: policy.Route{Name: "app", API: true},
		Request: policy.Request{Method: "PATCH", Path: "/t/acme/x", Segments: []string{"t", "acme", "x"},
			Headers: inputHeaders(map[string][]string{
				"Authorization": {"Bearer eyJ-the-bearer-token"}, "Cookie": {"portero_session=the-cookie-value"},
				"Proxy-Authorization": {"Basic cHJveHk="}, "X-Api-Key": {"header-key-0001"}, "X-Csrf-Token": {"csrf-0001"},
				"X-Custom": {"custom-secret-1"}, "Accept": {"application/json"},
			}),
			Query: map[string][]string{"access_token": {"query-token-0001"}, "page": {"2"}}, Body: body},
		Tenant: &policy.Tenant{ID: "acme", Status: "active"},
		Identity: policy.NewIdentity(policy.Identity{Subject: "leo", Email: "leo@example.com", Auth: "session", Session: "sess-hash-0123456789",
			Claims: map[string]any{"sub": "leo", "sid": "idp-session-0001", "nonce": "nonce-0001", "phone": "+1 555 0100", "at_hash": "at-hash-0001"}}),
		Access: acc,
		Now:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	d := policy.Decision{Allow: true, Status: 200, Reason: "member",
		Headers:   map[string][]string{"X-Portero-User": {"leo"}, "X-Portero-Phone": {"+1 555 0100"}, "X-Portero-Note": {"session sess-hash-0123456789 here"}},
		Assertion: &policy.AssertionSubject{Subject: "+1 555 0100", Actor: "sam", Roles: []string{"administrator"}}}
	raw, line := recordedLine(t, in, d, "identity.claims.phone", "request.headers.X-Custom", "request.body.phone")
	for _, secret := range []string{"eyJ-the-bearer-token", "the-cookie-value", "cHJveHk=", "header-key-0001", "csrf-0001", "custom-secret-1",
		"query-token-0001", "hunter2-body", "body-key-0001", "sess-hash-0123456789", "idp-session-0001", "nonce-0001", "+1 555 0100", "+1 555 0199", "at-hash-0001"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the decision log line holds %q:\n%s", secret, raw)
		}
	}
	input := line["input"]
	headers := at(t, input, "request", "headers").(map[string]any)
	for _, h := range []string{"authorization", "cookie", "proxy-authorization"} {
		if _, ok := headers[h]; ok {
			t.Errorf("input.request.headers has %s", h)
		}
	}
	if headers["accept"] != "application/json" || at(t, input, "request", "body", "hours") != "9-17" || at(t, input, "identity", "sub") != "leo" {
		t.Errorf("values that are not secret were masked: %s", raw)
	}
	session := at(t, input, "identity", "session").(string)
	if !strings.HasPrefix(session, "masked:") || at(t, input, "access", "master", "session") != session {
		t.Errorf("identity.session %q and access.master.session %v: want one pseudonym for one value", session, at(t, input, "access", "master", "session"))
	}
	if at(t, input, "identity", "claims", "phone") == at(t, input, "request", "body", "phone") {
		t.Error("two different phone numbers got one pseudonym")
	}
	got := line["decision_headers"].(map[string]any)
	if got["X-Portero-User"].([]any)[0] != "leo" || got["X-Portero-Phone"].([]any)[0] != at(t, input, "identity", "claims", "phone") ||
		got["X-Portero-Note"].([]any)[0] != "session "+session+" here" {
		t.Errorf("decision headers %v", got)
	}
	if a := line["decision_assertion"].(map[string]any); a["sub"] != at(t, input, "identity", "claims", "phone") || a["act"] != "sam" || a["roles"].([]any)[0] != "administrator" {
		t.Errorf("decision assertion %v", a)
	}
	if d.Headers["X-Portero-Phone"][0] != "+1 555 0100" {
		t.Error("masking changed the decision's own headers (cached decisions share them)")
	}
}

// secretName's table: names that hold credentials, and ones that do not.
func TestSecretNames(t *testing.T) {
	for name, want := range map[string]bool{
		"x-api-key": true, "X-Auth-Token": true, "access_token": true, "client_secret": true, "password": true,
		"x-csrf-token": true, "sid": true, "session_id": true, "nonce": true, "at_hash": true, "x-hub-signature-256": true,
		"code": true, "x-portero-assertion": true,
		"accept": false, "content-type": false, "phone": false, "page": false, "sub": false, "email": false, "hours": false,
	} {
		if secretName(name) != want {
			t.Errorf("secretName(%q) = %v", name, !want)
		}
	}
}

// BenchmarkDecisionLogRecorded is the decision log line with the input
// recorded (every decision), against BenchmarkDecisionLog without.
func BenchmarkDecisionLogRecorded(b *testing.B) {
	benchmarkDecisionLog(b, recording(true, 1))
}

func BenchmarkDecisionLog(b *testing.B) {
	benchmarkDecisionLog(b, config.Log{})
}

func benchmarkDecisionLog(b *testing.B, l config.Log) {
	g := &Gateway{log: slog.New(slog.NewJSONHandler(io.Discard, nil)), cfg: &config.Config{Log: l}}
	acc, _ := policy.NewAccess(map[string]any{"tenant": map[string]any{"id": "acme", "status": "active"},
		"membership": map[string]any{"role": "location_manager", "locations": []any{"l1"}, "features": map[string]any{"profile_listings": "edit"}}})
	in := &policy.Input{Route: policy.Route{Name: "app", API: true},
		Request: policy.Request{Method: "GET", Host: "localhost", Path: "/t/acme/locations/l1/profile", Segments: []string{"t", "acme", "locations", "l1", "profile"},
			AppSegments: []string{"locations", "l1", "profile"}, Headers: map[string]string{"accept": "application/json", "user-agent": "bench"}},
		Tenant:   &policy.Tenant{ID: "acme", Status: "active"},
		Identity: policy.NewIdentity(policy.Identity{Subject: "leo", Email: "leo@example.com", Auth: "bearer", Claims: map[string]any{"sub": "leo", "iss": "https://idp", "exp": 1767229200}}),
		Access:   acc, Gateway: policy.NewGateway("portero"), Now: time.Now()}
	ev := policy.Evaluation{Decision: policy.Decision{Allow: true, Status: 200, Reason: "role.location_manager",
		Headers: map[string][]string{"X-Portero-User": {"leo"}, "X-Portero-Tenant": {"acme"}}}}
	b.ReportAllocs()
	for b.Loop() {
		g.logDecision("id", in, ev, "")
	}
}
