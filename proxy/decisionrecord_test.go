package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/policy"
)

type recorderFunc func(*policy.DecisionRecord)

func (f recorderFunc) Record(_ context.Context, d *policy.DecisionRecord) { f(d) }

// What a decision-log collector receives (policy.decision_logs) is masked
// as the local log's recorded input is, with the same pseudonyms: no
// credential, header, cookie or configured path leaves the gateway.
func TestDecisionRecordsAreMasked(t *testing.T) {
	cfg, err := config.Parse("g.yaml", []byte(`
oidc: {issuer: "https://login.example.com", audiences: [portero]}
routes: [{name: app, upstream: "http://127.0.0.1:1"}]
log:
  decision_inputs:
    enabled: true
    mask: [identity.claims.phone, request.headers.X-Custom]
`))
	if err != nil {
		t.Fatal(err)
	}
	in := &policy.Input{
		Route: policy.Route{Name: "app", API: true},
		Request: policy.Request{Method: "GET", Path: "/x", Segments: []string{"x"},
			Headers: inputHeaders(map[string][]string{
				"Authorization": {"Bearer eyJ-the-bearer-token"}, "Cookie": {"portero_session=the-cookie-value"},
				"Proxy-Authorization": {"Basic cHJveHk="}, "X-Api-Key": {"header-key-0001"}, "X-Custom": {"custom-secret-1"},
				"Accept": {"application/json"},
			}),
			Query: map[string][]string{"access_token": {"query-token-0001"}}},
		Identity: policy.NewIdentity(policy.Identity{Subject: "leo", Auth: "session", Session: "sess-hash-0123456789",
			Claims: map[string]any{"sub": "leo", "phone": "+1 555 0100"}}),
		Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	ev := policy.Evaluation{Revision: "r1", Duration: 7 * time.Microsecond, Decision: policy.Decision{Allow: true, Reason: "member",
		Headers: map[string][]string{"X-Portero-Phone": {"+1 555 0100"}}}}
	var got *policy.DecisionRecord
	var line bytes.Buffer
	g := &Gateway{cfg: cfg, pseudonymKey: []byte("k"), log: slog.New(slog.NewJSONHandler(&line, nil)),
		recorder: recorderFunc(func(d *policy.DecisionRecord) { got = d })}
	g.logDecision("d1", in, ev, "")
	g.recordDecision(context.Background(), "d1", in, ev)
	if got == nil {
		t.Fatal("nothing recorded")
	}
	raw, err := json.Marshal(got.Result)
	if err != nil {
		t.Fatal(err)
	}
	record := string(got.Input) + string(raw)
	for _, secret := range []string{"eyJ-the-bearer-token", "the-cookie-value", "cHJveHk=", "header-key-0001", "custom-secret-1",
		"query-token-0001", "sess-hash-0123456789", "+1 555 0100"} {
		if strings.Contains(record, secret) {
			t.Errorf("the collector's record holds %q: %s", secret, record)
		}
	}
	for _, h := range []string{`"authorization"`, `"cookie"`, `"proxy-authorization"`} {
		if strings.Contains(string(got.Input), h) {
			t.Errorf("the record's input has the %s header", h)
		}
	}
	var input map[string]any
	if err := json.Unmarshal(got.Input, &input); err != nil {
		t.Fatal(err)
	}
	var logged map[string]any
	if err := json.Unmarshal(line.Bytes(), &logged); err != nil {
		t.Fatal(err)
	}
	phone := at(t, input, "identity", "claims", "phone")
	if phone != at(t, logged["input"], "identity", "claims", "phone") || !strings.HasPrefix(phone.(string), "masked:") {
		t.Errorf("phone pseudonym %v differs from the log line's %v", phone, at(t, logged["input"], "identity", "claims", "phone"))
	}
	if got.Result["headers"].(map[string][]string)["X-Portero-Phone"][0] != phone {
		t.Errorf("the decision's header kept the masked value: %v", got.Result["headers"])
	}
	if got.ID != "d1" || got.Revision != "r1" || got.Duration != ev.Duration || !got.At.Equal(in.Now) || got.Result["allow"] != true {
		t.Errorf("record = %+v", got)
	}
}
