package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/policy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

// replayTraffic is a gateway with a store of two tenants and several
// members, browser sign-in, master access and input recording on, after a
// few thousand varied requests: members of every role on their own and the
// other tenant, a stranger, anonymous callers, both routes, reads and edits
// with bodies, and a system admin under master access. It returns the
// decision log and every secret the requests carried.
func replayTraffic(t testing.TB) (logFile string, secrets []string) {
	t.Helper()
	m := gatewaytest.NewMaster(t, "log:\n  decision_inputs:\n    enabled: true\n    mask: [identity.claims.phone]\n")
	ctx := context.Background()
	if _, err := m.Store.CreateTenant(ctx, access.Tenant{ID: "globex", Name: "Globex", Owner: "gus"}); err != nil {
		t.Fatal(err)
	}
	for _, mem := range []access.Member{
		{Tenant: "acme", User: "adam", Role: "administrator"},
		{Tenant: "acme", User: "amy", Role: "account_manager", Profile: "full"},
		{Tenant: "acme", User: "avery", Role: "account_manager", Profile: "accounting"},
		{Tenant: "acme", User: "leo", Role: "location_manager", Locations: []string{"l1"},
			Features: map[string]string{"profile_listings": "edit", "reviews": "read", "user_rights": "edit"}},
		{Tenant: "acme", User: "mia", Role: "multi_account_manager", Profile: "full"},
		{Tenant: "globex", User: "gina", Role: "account_manager", Profile: "full"},
		{Tenant: "globex", User: "lou", Role: "location_manager", Locations: []string{"l2"}, Profile: "services"},
	} {
		if _, err := m.Store.PutMember(ctx, mem); err != nil {
			t.Fatal(err)
		}
	}
	users := []string{"adam", "amy", "avery", "leo", "mia", "gina", "lou", "stranger", ""}
	tokens := map[string]string{}
	for i, u := range users {
		if u == "" {
			continue
		}
		claims := m.Iss.Claims(u, "portero")
		claims["email"] = u + "@example.com"
		claims["phone"] = fmt.Sprintf("+1 555 02%02d", i)
		tokens[u] = m.Iss.Sign(t, claims)
		secrets = append(secrets, tokens[u], claims["phone"].(string), "api-key-of-"+u, "cookie-of-"+u)
	}
	type request struct{ method, path, body string }
	kinds := []request{
		{"GET", "", ""},
		{"GET", "locations/l%d", ""},
		{"PATCH", "locations/l%d/profile", `{"phone": "+1 555 0100"}`},
		{"POST", "locations", `{"name": "new"}`},
		{"DELETE", "locations/l%d", ""},
		{"GET", "reviews/r%d", ""},
		{"PATCH", "reviews/r%d", `{"reply": "thanks"}`},
		{"GET", "users?page=%d", ""},
		{"PATCH", "users/u%d", `{"role": "location_manager"}`},
		{"GET", "billing?page=%d", ""},
		{"PATCH", "billing", `{"plan": "pro"}`},
		{"GET", "settings", ""},
		{"GET", "api-key", ""},
		{"GET", "no-such-page", ""},
		{"GET", "static/app.js", ""},
		{"GET", "api/v1/reviews", ""}, // the api route: tenant from the host
	}
	n := 0
	for round := range 11 {
		for _, u := range users {
			for _, tenant := range []string{"acme", "globex"} {
				for _, k := range kinds {
					path := k.path
					if strings.Contains(path, "%d") {
						path = fmt.Sprintf(path, round%3+1)
					}
					target := "http://localhost/t/" + tenant + "/" + path
					if strings.HasPrefix(path, "api/") {
						target = "http://" + tenant + ".apps.example.com/" + path
					}
					hdr := http.Header{"X-Api-Key": {"api-key-of-" + u}, "Cookie": {"theme=dark; other=cookie-of-" + u}}
					if k.body != "" {
						hdr.Set("Content-Type", "application/json")
					}
					m.Do(t, k.method, target, tokens[u], hdr, k.body)
					n++
				}
			}
		}
	}
	// A system admin under master access, through a browser session.
	m.B.SignIn("http://localhost/t/acme/", gatewaytest.SamClaims())
	m.MustStart(t, "acme", "Ticket SUP-7: replay test", "full", "30m")
	for i := range 40 {
		if rec := m.B.Do("GET", fmt.Sprintf("http://localhost/t/acme/reviews/r%d", i), nil, nil); rec.Code != http.StatusOK {
			t.Fatalf("master access request: %d %s", rec.Code, rec.Body)
		}
	}
	for _, c := range m.B.Cookies {
		secrets = append(secrets, c.Value)
	}
	if n < 3000 {
		t.Fatalf("only %d requests", n)
	}
	logFile = filepath.Join(t.TempDir(), "decisions.jsonl")
	if err := os.WriteFile(logFile, []byte(m.Logs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return logFile, secrets
}

// decisionLines are the log's decision lines.
func decisionLines(t *testing.T, logFile string) []loggedDecision {
	t.Helper()
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []loggedDecision
	for line := range strings.Lines(string(raw)) {
		var d loggedDecision
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		if d.Msg == "decision" {
			out = append(out, d)
		}
	}
	return out
}

// copyPolicy copies the default policy to a directory, with edit applied
// to data.json.
func copyPolicy(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../../rego/*.*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if ext := filepath.Ext(f); ext != ".rego" && ext != ".json" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "data.json" {
			edited := edit(string(b))
			if edited == string(b) {
				t.Fatal("the edit changed nothing")
			}
			b = []byte(edited)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPolicyReplay records a few thousand decisions of the real gateway
// and replays them: against the policy that made them nothing changes
// (exit 0); against a copy in which account managers lose the user rights
// feature, exactly the decisions of account managers who had it change:
// their requests under users/ are denied, and every other request they
// were allowed gets another X-Portero-Features header (exit 3).
func TestPolicyReplay(t *testing.T) {
	logFile, secrets := replayTraffic(t)
	lines := decisionLines(t, logFile)

	t.Run("the log holds inputs, never a secret", func(t *testing.T) {
		raw, _ := os.ReadFile(logFile)
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Errorf("the decision log holds %q", s)
			}
		}
		master := 0
		for _, d := range lines {
			if len(d.Input) == 0 {
				t.Fatalf("decision %s without input", d.DecisionID)
			}
			var in struct {
				Identity struct{ Session string }
				Access   struct{ Master struct{ Session string } }
			}
			if err := json.Unmarshal(d.Input, &in); err != nil {
				t.Fatal(err)
			}
			if in.Identity.Session != "" && !strings.HasPrefix(in.Identity.Session, "masked:") {
				t.Fatalf("identity.session recorded as %q", in.Identity.Session)
			}
			if strings.HasPrefix(d.Reason, "master.") {
				master++
				if in.Access.Master.Session != in.Identity.Session {
					t.Fatalf("master access recorded with sessions %q and %q: the replay would not find it bound", in.Access.Master.Session, in.Identity.Session)
				}
			}
		}
		if master < 40 {
			t.Errorf("%d master-access decisions recorded, want 40", master)
		}
	})

	t.Run("the same policy: nothing changes", func(t *testing.T) {
		out, code := runCLI(t, "policy", "replay", "--log", logFile, "../../rego")
		want := fmt.Sprintf("replayed %d recorded decisions", len(lines))
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "no decision would change") {
			t.Fatalf("exit %d, want 0 and %q:\n%s", code, want, out)
		}
	})

	t.Run("account managers lose user rights", func(t *testing.T) {
		candidate := copyPolicy(t, func(data string) string {
			return strings.Replace(data, `"title": "User rights",
          "min_role": "account_manager"`, `"title": "User rights",
          "min_role": "multi_account_manager"`, 1)
		})
		// What must change: decisions of account managers whose profile
		// grants user rights (amy in acme, gina in globex), in their tenant.
		had := map[string]string{"amy": "acme", "gina": "globex"}
		wantDenied, wantHeaders := map[string]bool{}, map[string]bool{}
		for _, d := range lines {
			if had[d.Sub] != d.Tenant || !d.Allow {
				continue
			}
			if strings.HasPrefix(d.Path, "/t/"+d.Tenant+"/users") {
				wantDenied[d.DecisionID] = true
			} else {
				wantHeaders[d.DecisionID] = true
			}
		}
		if len(wantDenied) == 0 || len(wantHeaders) == 0 {
			t.Fatalf("the traffic has no decision the edit changes (%d, %d)", len(wantDenied), len(wantHeaders))
		}
		out, code := runCLI(t, "policy", "replay", "--json", "--examples", "100000", "--log", logFile, candidate)
		if code != exitDecisionsChange {
			t.Fatalf("exit %d, want %d:\n%s", code, exitDecisionsChange, out)
		}
		var rep Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if rep.Replayed != len(lines) || rep.NoInput != 0 || rep.Unreadable != 0 || rep.CandidateErrors != 0 {
			t.Fatalf("replayed %d of %d (no input %d, unreadable %d, errors %d)", rep.Replayed, len(lines), rep.NoInput, rep.Unreadable, rep.CandidateErrors)
		}
		gotDenied, gotHeaders := map[string]bool{}, map[string]bool{}
		for _, g := range rep.Groups {
			switch {
			case g.Kind == allowToDeny && g.To == (Outcome{Allow: false, Status: 403, Reason: "feature.role_too_low"}):
				for _, e := range g.Examples {
					gotDenied[e.DecisionID] = true
				}
			case g.Kind == headersChanged && slices.Equal(g.Headers, []string{"X-Portero-Features"}):
				for _, e := range g.Examples {
					gotHeaders[e.DecisionID] = true
					if c := e.HeaderChanges["X-Portero-Features"]; !strings.Contains(c[0][0], "user_rights") || strings.Contains(c[1][0], "user_rights") {
						t.Errorf("%s: X-Portero-Features %q → %q", e.DecisionID, c[0], c[1])
					}
				}
			default:
				t.Errorf("unexpected change: %s on %s, %s → %s %v (%d)", g.Kind, g.Route, g.From, g.To, g.Headers, g.Count)
			}
			if len(g.Examples) != g.Count {
				t.Errorf("%d examples of %d", len(g.Examples), g.Count)
			}
		}
		for name, c := range map[string][2]map[string]bool{"allow → deny": {gotDenied, wantDenied}, "headers": {gotHeaders, wantHeaders}} {
			if !maps2Equal(c[0], c[1]) {
				t.Errorf("%s: replay reports %d decisions, want exactly %d", name, len(c[0]), len(c[1]))
			}
		}
		if rep.Changes[allowToDeny] != len(wantDenied) || rep.Changes[headersChanged] != len(wantHeaders) ||
			rep.Changes[denyToAllow] != 0 || rep.Changes[reasonChanged] != 0 {
			t.Errorf("changes %v, want %d allow → deny and %d headers", rep.Changes, len(wantDenied), len(wantHeaders))
		}

		// The text report groups them and shows a few examples.
		out, code = runCLI(t, "policy", "replay", "--log", logFile, candidate)
		if code != exitDecisionsChange || !strings.Contains(out, "allow → deny on route app: ") ||
			!strings.Contains(out, "now: deny 403 feature.role_too_low") || !strings.Contains(out, "headers: X-Portero-Features") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if n := strings.Count(out, "    e.g. "); n > 3*len(rep.Groups) {
			t.Errorf("%d examples for %d groups", n, len(rep.Groups))
		}
		t.Logf("\n%s", out)
	})
}

func maps2Equal(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestPolicyReplayUsage(t *testing.T) {
	log := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(log, []byte(`{"msg":"decision","decision_id":"x","allow":true}`+"\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"policy"}, 2, "give a subcommand"},
		{[]string{"policy", "replay", "../../rego"}, 1, "give --log FILE and one candidate policy directory"},
		{[]string{"policy", "replay", "--log", log}, 1, "give --log FILE and one candidate policy directory"},
		{[]string{"policy", "replay", "--log", log, "no-such-dir"}, 1, "no-such-dir"},
		{[]string{"policy", "replay", "--log", log + ".missing", "../../rego"}, 1, "no such file"},
		{[]string{"policy", "replay", "../../rego", "--log", log}, 1, "holds no decision with a recorded input (1 decision lines without one)"},
	} {
		out, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
}

// BenchmarkReplay replays the recorded log of TestPolicyReplay (about 3,200
// decisions: store-backed members, master access, management calls)
// against the default policy, with GOMAXPROCS workers, and reports
// inputs/s. cold: a new engine for each replay (empty memos and decision
// cache, as a fresh portero policy replay; the compile is not timed);
// warm: the same engine again.
func BenchmarkReplay(b *testing.B) {
	logFile, _ := replayTraffic(b)
	raw, err := os.ReadFile(logFile)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	newEngine := func() *policy.Engine {
		e, err := policy.NewEngine(ctx, policy.Source{Name: "embedded", FS: defaultrego.Bundle},
			policy.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	run := func(b *testing.B, e *policy.Engine) int {
		rep, err := replay(ctx, e, bytes.NewReader(raw), replayOptions{examples: 3, workers: runtime.GOMAXPROCS(0)})
		if err != nil || rep.Replayed == 0 || rep.Changes[allowToDeny]+rep.Changes[denyToAllow] != 0 {
			b.Fatalf("%v %+v", err, rep)
		}
		return rep.Replayed
	}
	for _, mode := range []string{"cold", "warm"} {
		b.Run(mode, func(b *testing.B) {
			e := newEngine()
			inputs := 0
			var elapsed time.Duration
			b.ReportAllocs()
			for b.Loop() {
				if mode == "cold" {
					b.StopTimer()
					e = newEngine()
					b.StartTimer()
				}
				start := time.Now()
				inputs += run(b, e)
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(inputs)/elapsed.Seconds(), "inputs/s")
		})
	}
}

// A hand-written log against a small candidate: every kind of change, the
// assertion among the headers, and the lines that are not replayed.
func TestPolicyReplayKinds(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(`package portero.authz

decision := {"allow": true, "status": 200, "reason": "open", "headers": {"X-Portero-User": input.identity.sub},
	"assertion": {"sub": "owner", "act": "sam", "roles": ["administrator"]}} if input.request.path == "/open"

decision := {"allow": false, "status": 403, "reason": "closed"} if input.request.path == "/closed"

decision := {"allow": false, "status": 404, "reason": "gone"} if input.request.path == "/gone"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	line := func(id, path string, allow bool, status int, reason, extra string) string {
		return fmt.Sprintf(`{"msg":"decision","decision_id":%q,"route":"app","method":"GET","path":%q,"allow":%v,"status":%d,"reason":%q,"input":{"request":{"method":"GET","path":%q},"identity":{"sub":"u1"}}%s}`+"\n",
			id, path, allow, status, reason, path, extra)
	}
	log := filepath.Join(t.TempDir(), "d.jsonl")
	content := `{"msg":"policy loaded","revision":"x"}` + "\n" +
		line("same", "/open", true, 200, "open", `,"decision_headers":{"X-Portero-User":["u1"]},"decision_assertion":{"sub":"owner","act":"sam","roles":["administrator"]}`) +
		line("headers", "/open", true, 200, "open", `,"decision_headers":{"X-Portero-User":["u2"]},"decision_assertion":{"sub":"owner","act":"sam","roles":["administrator"]}`) +
		line("assertion", "/open", true, 200, "open", `,"decision_headers":{"X-Portero-User":["u1"]},"decision_assertion":{"sub":"owner","act":"ann","roles":["administrator"]}`) +
		line("to-deny", "/closed", true, 200, "open", "") +
		line("to-allow", "/open", false, 403, "closed", "") +
		line("reason", "/gone", false, 403, "closed", "") +
		line("denied-same", "/closed", false, 403, "closed", "") +
		`{"msg":"decision","decision_id":"no-input","allow":true}` + "\n" +
		`{"msg":"decision","decision_id":"bad-input","allow":true,"input":[1]}` + "\n" +
		"not json\n\n"
	if err := os.WriteFile(log, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "policy", "replay", "--json", "--log", log, dir)
	if code != exitDecisionsChange {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != 7 || rep.NoInput != 1 || rep.Unreadable != 2 {
		t.Errorf("replayed %d, no input %d, unreadable %d", rep.Replayed, rep.NoInput, rep.Unreadable)
	}
	got := map[string]string{}
	for _, g := range rep.Groups {
		for _, e := range g.Examples {
			got[e.DecisionID] = g.Kind + " " + strings.Join(g.Headers, ",")
		}
	}
	want := map[string]string{
		"headers": "headers_changed X-Portero-User", "assertion": "headers_changed (assertion)",
		"to-deny": "allow_to_deny ", "to-allow": "deny_to_allow ", "reason": "reason_changed ",
	}
	if len(got) != len(want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	// Without a flip, only reasons or headers: exit 0.
	calm := filepath.Join(t.TempDir(), "calm.jsonl")
	if err := os.WriteFile(calm, []byte(line("reason", "/gone", false, 403, "closed", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "policy", "replay", "--log", calm, dir); code != 0 || !strings.Contains(out, "1 reason changed") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
