package policy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	defaultrego "github.com/portero-gateway/portero/rego"
)

func quietLog() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func newTestEngine(t testing.TB, src Source) (*Engine, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	e, err := NewEngine(context.Background(), src, m, quietLog())
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e, m
}

func embedded() Source { return Source{Name: "embedded", FS: defaultrego.Bundle} }

func memberInput() *Input {
	return &Input{
		Request: Request{Method: "GET", Host: "acme.apps.example.com", Path: "/api/orders",
			Segments: []string{"api", "orders"}, Headers: map[string]string{"accept": "application/json"}},
		Route:  Route{Name: "api", API: true},
		Tenant: &Tenant{ID: "acme", Status: "active"},
		Identity: NewIdentity(Identity{Subject: "u1", Email: "u1@example.com",
			Roles:       []string{"acme:administrator", "globex:account_manager"},
			Memberships: map[string][]string{"acme": {"administrator"}, "globex": {"account_manager"}}, Auth: "bearer",
			Claims: map[string]any{"sub": "u1", "scope": "openid"}}),
		Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestDefaultPolicyRegoTests(t *testing.T) {
	var out bytes.Buffer
	sum, err := RunTests(context.Background(), embedded(), TestOptions{Coverage: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed+sum.Errored > 0 || sum.Passed == 0 {
		t.Fatalf("rego tests: %+v\n%s", sum, out.String())
	}
}

func TestDecideDefaultPolicy(t *testing.T) {
	e, _ := newTestEngine(t, embedded())
	ev := e.Decide(context.Background(), memberInput())
	if ev.Err != nil || !ev.Decision.Allow || ev.Decision.Reason != "member" {
		t.Fatalf("got %+v", ev)
	}
	if got := ev.Decision.Headers["X-Portero-Roles"]; len(got) != 1 || got[0] != "administrator" {
		t.Fatalf("roles header %q", got)
	}
	if ev.Revision == "" || len(ev.Revision) != 12 {
		t.Fatalf("revision %q", ev.Revision)
	}
	in := memberInput()
	in.Tenant.ID = "initech"
	if ev := e.Decide(context.Background(), in); ev.Decision.Allow || ev.Decision.Status != 403 {
		t.Fatalf("other tenant: %+v", ev)
	}
}

// Every way a policy can fail to give a proper decision must deny.
func TestMalformedDecisionsDeny(t *testing.T) {
	cases := []struct {
		name, rego string
		status     int
		reason     string
	}{
		{"undefined", `package portero.authz
decision := {"allow": true} if { input.nothing }`, 403, ReasonUndefined},
		{"not an object", `package portero.authz
decision := true`, 500, ReasonError},
		{"allow not boolean", `package portero.authz
decision := {"allow": "yes"}`, 500, ReasonError},
		{"allow missing", `package portero.authz
decision := {"status": 200}`, 500, ReasonError},
		{"status not a number", `package portero.authz
decision := {"allow": false, "status": "403"}`, 500, ReasonError},
		{"status out of range", `package portero.authz
decision := {"allow": false, "status": 99999}`, 500, ReasonError},
		{"headers not an object", `package portero.authz
decision := {"allow": true, "headers": ["X-Portero-User"]}`, 500, ReasonError},
		{"header value a number", `package portero.authz
decision := {"allow": true, "headers": {"X-Portero-User": 1}}`, 500, ReasonError},
		{"conflicting values", `package portero.authz
decision := {"allow": true} if input.a
decision := {"allow": false} if input.a`, 500, ReasonError},
		{"builtin error", `package portero.authz
decision := {"allow": to_number("x") > 1}`, 403, ReasonUndefined},
		{"deny with success status", `package portero.authz
decision := {"allow": false, "status": 200, "reason": "x"}`, 403, "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := Source{Name: "test", FS: fstest.MapFS{"p.rego": {Data: []byte(tc.rego)}}}
			e, _ := newTestEngine(t, src)
			in := &Input{Request: Request{Method: "GET", Path: "/"}}
			in.Identity = NewIdentity(Identity{Subject: "u"})
			raw := e.Current()
			d, _, _ := raw.EvalRaw(context.Background(), map[string]any{"a": true}, false)
			if d.Allow || d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("EvalRaw: got %+v, want deny %d %s", d, tc.status, tc.reason)
			}
		})
	}
}

func TestCompileErrorsAreRefused(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"syntax error":   {"p.rego": {Data: []byte("package portero.authz\ndecision := {")}},
		"no entry point": {"p.rego": {Data: []byte("package portero.other\nx := 1")}},
		"no files":       {},
		"unsafe var":     {"p.rego": {Data: []byte("package portero.authz\ndecision := {\"allow\": x} if { x > 1 }")}},
		"bad data":       {"p.rego": {Data: []byte("package portero.authz\ndecision := {\"allow\": true}")}, "data.json": {Data: []byte("{")}},
	}
	for name, fsys := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(context.Background(), Source{Name: "dir/", FS: fsys})
			if err == nil {
				t.Fatal("compiled a broken policy")
			}
			if !strings.Contains(err.Error(), "load policy dir/") {
				t.Fatalf("error does not name the source: %v", err)
			}
		})
	}
}

const goodPolicy = `package portero.authz
decision := {"allow": true, "reason": "v%d"}
`

// A broken policy written while requests flow must leave every request
// answered by the last good policy, and be counted.
func TestHotReloadKeepsLastGoodPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) {
		t.Helper()
		// Write then rename, as editors and config management do.
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "authz.rego")); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(goodPolicy, "%d", "1", 1))
	e, m := newTestEngine(t, DirSource(dir))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watching, err := e.Watch(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	bad := make(chan string, 1)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := &Input{Request: Request{Method: "GET", Path: "/"}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				ev := e.Decide(ctx, in)
				if !ev.Decision.Allow || ev.Err != nil {
					select {
					case bad <- ev.Decision.Reason:
					default:
					}
				}
			}
		}()
	}

	waitFor(t, func() bool { return testutil.ToFloat64(m.reloads.WithLabelValues("success")) >= 1 })
	write("package portero.authz\ndecision := {\"allow\": tru") // broken
	waitFor(t, func() bool { return testutil.ToFloat64(m.reloads.WithLabelValues("failure")) >= 1 })
	if e.LastReloadError() == nil {
		t.Fatal("LastReloadError not recorded")
	}
	if got := e.Current(); got == nil {
		t.Fatal("no policy after failed reload")
	}
	write(strings.Replace(goodPolicy, "%d", "2", 1))
	waitFor(t, func() bool {
		ev := e.Decide(ctx, &Input{})
		return ev.Decision.Reason == "v2"
	})
	close(stop)
	wg.Wait()
	select {
	case r := <-bad:
		t.Fatalf("a request was not answered by a good policy: %s", r)
	default:
	}
	if e.LastReloadError() != nil {
		t.Fatal("LastReloadError not cleared by a good reload")
	}
	cancel()
	<-watching
}

// waitFor polls a condition that another goroutine makes true; the deadline
// only bounds a failing test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			_, file, line, _ := runtime.Caller(1)
			t.Fatalf("condition at %s:%d not reached within 10s", file, line)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkDecideDefaultPolicy measures a full evaluation (the decision
// cache is switched off); BenchmarkDecideCached the cached answer.
func BenchmarkDecideDefaultPolicy(b *testing.B) {
	e, _ := newTestEngine(b, embedded())
	e.Current().cache = nil
	in := memberInput()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if ev := e.Decide(ctx, in); !ev.Decision.Allow {
			b.Fatal(ev)
		}
	}
}

func BenchmarkDecideCached(b *testing.B) {
	e, _ := newTestEngine(b, embedded())
	in := memberInput()
	ctx := context.Background()
	e.Decide(ctx, in)
	b.ReportAllocs()
	for b.Loop() {
		if ev := e.Decide(ctx, in); !ev.Cached {
			b.Fatal("not cached")
		}
	}
}
