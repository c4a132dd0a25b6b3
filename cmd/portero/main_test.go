package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/internal/testport"
	"github.com/portero-gateway/portero/proxy"
)

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out, &out)
	return out.String(), code
}

func TestCheck(t *testing.T) {
	out, code := runCLI(t, "check", "-c", "../../gateway.yaml")
	if code != 0 || !strings.Contains(out, "ok (2 routes, policy embedded revision") {
		t.Fatalf("%d %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("routes:\n  - name: x\n    upstream: 3000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, "check", "-c", bad)
	if code != 1 || !strings.Contains(out, "bad.yaml:3:15: routes[0].upstream") {
		t.Fatalf("%d %s", code, out)
	}
}

func TestCheckRefusesBrokenPolicyDir(t *testing.T) {
	dir := t.TempDir()
	_ = os.Mkdir(filepath.Join(dir, "policy"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "policy", "authz.rego"), []byte("package portero.authz\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gateway.yaml")
	src, _ := os.ReadFile("../../gateway.yaml")
	if err := os.WriteFile(cfg, append(src, []byte("policy:\n  dir: policy\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, "authz.rego:4: rego_parse_error") {
		t.Fatalf("%d %s", code, out)
	}
}

func TestTestCommand(t *testing.T) {
	out, code := runCLI(t, "test", "--coverage", "../../rego")
	if code != 0 || !strings.Contains(out, "passed, 0 failed") || !strings.Contains(out, "coverage total:") {
		t.Fatalf("%d %s", code, out)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package p\nx := 1\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte("package p_test\nimport data.p\ntest_x if p.x == 2\n"), 0o644)
	out, code = runCLI(t, "test", dir)
	if code != 1 || !strings.Contains(out, "0 passed, 1 failed") {
		t.Fatalf("%d %s", code, out)
	}
}

func TestEval(t *testing.T) {
	in := filepath.Join(t.TempDir(), "req.json")
	_ = os.WriteFile(in, []byte(`{"tenant":{"id":"acme"},"identity":{"sub":"u1","memberships":{"acme":["administrator"]}}}`), 0o644)
	out, code := runCLI(t, "eval", "-c", "../../gateway.yaml", "--input", in)
	if code != 0 || !strings.Contains(out, `"allow": true`) || !strings.Contains(out, `"X-Portero-Roles"`) {
		t.Fatalf("%d %s", code, out)
	}
	out, code = runCLI(t, "eval", "-c", "../../gateway.yaml", "--input", in, "--explain")
	if code != 0 || !strings.Contains(out, "Enter data.portero.authz.decision") {
		t.Fatalf("%d %s", code, out)
	}
}

func TestExplain(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"GET", "/t/acme/reviews/r1"}, 0, []string{"tenant:    acme", "app path:  /reviews/r1", "operation: read reviews/**", `feature:  "reviews"`}},
		{[]string{"PUT", "http://acme.apps.localhost/Locations/l9/profile"}, 0, []string{"route:     tenant-app", "operation: edit locations/*/**", `"location":[1]`}},
		{[]string{"POST", "/t/acme/locations"}, 0, []string{"operation: POST locations", `action:   "create"`}},
		{[]string{"GET", "/t/acme/"}, 0, []string{"operation: read ", "open:     true"}},
		{[]string{"PATCH", "/t/acme/orders/1"}, 0, []string{"operation: none", "operation.unmapped"}},
		{[]string{"GET", "/docs"}, 0, []string{"tenant:    none", "deny.no_tenant"}},
		{[]string{"delete", "/t/acme/x"}, 1, []string{"upper case"}},
		{[]string{"GET", "/t/acme/reviews;x=1"}, 1, []string{"request.bad_path"}},
		{[]string{"GET", "http://acme.apps.localhost/t/globex/reviews"}, 1, []string{"request.tenant_conflict"}},
		{[]string{"GET"}, 1, []string{"give a method and a URL"}},
	}
	for _, tc := range cases {
		out, code := runCLI(t, append([]string{"explain", "-c", "../../gateway.yaml"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("explain %q: exit %d, want %d: %s", tc.args, code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

func TestKeygenAndVersion(t *testing.T) {
	out, code := runCLI(t, "keygen")
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("%d %s", code, out)
	}
	if out, code := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "portero ") {
		t.Fatalf("%d %s", code, out)
	}
	if _, code := runCLI(t, "frobnicate"); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
}

// serveBinary builds the real binary and starts it as an operator would,
// with the example gateway.yaml, in front of upstream; it returns the
// public address and the issuer whose tokens it accepts.
func serveBinary(t *testing.T, upstream http.Handler) (string, *testissuer.Issuer) {
	t.Helper()
	public, _, iss := serveBinaryConfig(t, upstream, "../../gateway.yaml")
	return public, iss
}

// serveBinaryConfig is serveBinary with the configuration file config; it
// returns the ops address too.
func serveBinaryConfig(t *testing.T, upstream http.Handler, config string) (public, ops string, iss *testissuer.Issuer) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "portero")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	iss = testissuer.New(t)
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	key := filepath.Join(dir, "assertion.pem")
	pem, _ := runCLI(t, "keygen")
	_ = os.WriteFile(key, []byte(pem), 0o600)
	addrs := testport.Addrs(t, 2)
	public, ops = addrs[0], addrs[1]
	cmd := exec.Command(bin, "serve", "-c", config)
	cmd.Env = append(os.Environ(),
		"PORTERO_PUBLIC_ADDR="+public, "PORTERO_OPS_ADDR="+ops,
		"PORTERO_OIDC_ISSUER="+iss.URL, "PORTERO_UPSTREAM="+up.URL)
	logs := &bytes.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never ready; logs:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return public, ops, iss
}

// The real binary, started as an operator would, in front of an upstream.
func TestServeBinary(t *testing.T) {
	public, iss := serveBinary(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s tenant=%s", r.Header.Get("X-Portero-User"), r.Header.Get("X-Portero-Tenant"))
	}))
	claims := iss.Claims("alice", "portero")
	claims["roles"] = []string{"acme:administrator"}
	req, _ := http.NewRequest("GET", "http://"+public+"/api/orders", nil)
	req.Host = "acme.apps.localhost"
	req.Header.Set("Authorization", "Bearer "+iss.Sign(t, claims))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "user=alice tenant=acme" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// The header and body classes of the hostile cases, against the real
// binary over raw connections: what the app receives is what the policy
// decided, whatever the client sends in Connection, in trailers, in copies
// of Portero's headers, or as a body Portero cannot read.
func TestServeBinaryHostileHeadersAndBodies(t *testing.T) {
	type seen struct {
		header, trailer http.Header
		method, body    string
	}
	got := make(chan seen, 16)
	public, iss := serveBinary(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Clone(), r.Trailer.Clone(), r.Method, string(b)}
	}))
	claims := iss.Claims("alice", "portero")
	claims["roles"] = []string{"acme:administrator"}
	tok := iss.Sign(t, claims)
	send := func(raw string) (int, *seen) {
		t.Helper()
		conn, err := net.Dial("tcp", public)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, raw)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			rest, _ := io.ReadAll(br)
			t.Fatalf("%v: %q after %.60q", err, rest, raw)
		}
		resp.Body.Close()
		wait := time.After(time.Millisecond)
		if resp.StatusCode == 200 {
			wait = time.After(5 * time.Second)
		}
		select {
		case s := <-got:
			return resp.StatusCode, &s
		case <-wait:
			return resp.StatusCode, nil
		}
	}
	head := "Host: acme.apps.localhost\r\nAuthorization: Bearer " + tok + "\r\n"
	headerCases := map[string]string{
		"connection deletes": "Connection: close, X-Portero-User, X-Portero-Assertion, X-Portero-Tenant\r\n",
		"forged copies":      "X-Portero-User: root\r\nX_Portero_Tenant: globex\r\nImpersonate-User: root\r\nX-Portero-Assertion: forged\r\n",
		"both":               "X-Portero-User: root\r\nConnection: X-Portero-User\r\n",
		"overrides":          "X-Original-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nX-Forwarded-Prefix: /x\r\n",
	}
	for name, extra := range headerCases {
		status, s := send("GET /api/orders HTTP/1.1\r\n" + head + extra + "\r\n")
		if status != 200 || s == nil {
			t.Fatalf("%s: %d", name, status)
		}
		if u := s.header.Values("X-Portero-User"); len(u) != 1 || u[0] != "alice" {
			t.Errorf("%s: X-Portero-User %q", name, u)
		}
		if v := s.header.Values("X-Portero-Tenant"); len(v) != 1 || v[0] != "acme" {
			t.Errorf("%s: X-Portero-Tenant %q", name, v)
		}
		if a := s.header.Values("X-Portero-Assertion"); len(a) != 1 || strings.Count(a[0], ".") != 2 {
			t.Errorf("%s: assertion %q", name, a)
		}
		for _, h := range []string{"Impersonate-User", "X-Original-Url", "X-Http-Method-Override", "X-Forwarded-Prefix"} {
			if s.header.Get(h) != "" {
				t.Errorf("%s: %s reached the app", name, h)
			}
		}
	}
	// A reserved trailer on a chunked body.
	status, s := send("POST /api/orders HTTP/1.1\r\n" + head + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Portero-User\r\n\r\n" +
		"7\r\n{\"a\":1}\r\n0\r\nX-Portero-User: root\r\n\r\n")
	if status != 200 || s == nil || len(s.trailer) != 0 || s.header.Get("X-Portero-User") != "alice" || s.body != `{"a":1}` {
		t.Fatalf("trailer: %d %+v", status, s)
	}
	// Bodies the policy cannot see are refused, and the app receives nothing.
	for name, ct := range map[string]string{"text/plain": "Content-Type: text/plain\r\n", "none": "", "text/json": "Content-Type: text/json\r\n",
		"two types": "Content-Type: application/json\r\nContent-Type: text/plain\r\n", "gzip": "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"} {
		status, s := send("PATCH /api/orders HTTP/1.1\r\n" + head + ct + "Content-Length: 12\r\n\r\n{\"name\":\"x\"}")
		if status != http.StatusUnsupportedMediaType || s != nil {
			t.Errorf("body %s: %d, app saw %+v", name, status, s)
		}
	}
	status, s = send("PATCH /api/orders HTTP/1.1\r\n" + head + "Content-Type: application/json\r\nContent-Length: 23\r\n\r\n{\"name\":\"x\",\"name\":\"y\"}")
	if status != http.StatusBadRequest || s != nil {
		t.Errorf("duplicate keys: %d, app saw %+v", status, s)
	}
	// Methods: lower case is refused, never forwarded as another method.
	status, s = send("delete /api/orders HTTP/1.1\r\n" + head + "\r\n")
	if status != http.StatusBadRequest || s != nil {
		t.Errorf("lower-case method: %d, app saw %+v", status, s)
	}
}

func TestAdminCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "portero.db")
	good, bad := filepath.Join(t.TempDir(), "good.jsonl"), filepath.Join(t.TempDir(), "bad.jsonl")
	_ = os.WriteFile(good, []byte(`{"tenant": {"id": "globex", "name": "Globex"}}
{"member": {"tenant": "globex", "user": "gina", "role": "administrator"}}
`), 0o644)
	typo := filepath.Join(t.TempDir(), "typo.jsonl")
	_ = os.WriteFile(typo, []byte(`{"member": {"tenant": "acme", "user": "tia", "role": "location_manager", "features": {"reveiws": "edit"}}}
`), 0o644)
	_ = os.WriteFile(bad, []byte(`{"tenant": {"id": "initech", "name": "Initech"}}
{"member": {"tenant": "initech", "user": "ian", "role": "boss"}}
`), 0o644)
	steps := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"tenant", "create", "acme", "--name", "Acme", "--owner", "olivia", "--host", "acme.apps.example.com"}, `"id": "acme"`, 0},
		{[]string{"tenant", "create", "acme", "--name", "Again"}, "conflict", 1},
		{[]string{"member", "put", "acme", "leo", "--role", "location_manager", "--location", "l1", "--feature", "profile_listings=edit", "--field", "profile_listings=phone,hours"}, `"hours"`, 0},
		{[]string{"member", "put", "acme", "bad", "--role", "boss"}, `role: unknown role "boss"`, 1},
		{[]string{"member", "put", "acme", "bad", "--role", "location_manager", "--feature", "reveiws=edit"}, "features", 1},
		{[]string{"member", "put", "acme", "bad", "--role", "location_manager", "--profile", "everything"}, "profile", 1},
		{[]string{"member", "put", "acme", "bad", "--role", "location_manager", "--right", "root"}, "rights", 1},
		{[]string{"member", "deactivate", "acme", "leo"}, `"status": "deactivated"`, 0},
		{[]string{"member", "list", "acme"}, `"user": "leo"`, 0},
		{[]string{"partner", "create", "partnerco", "--name", "Partner Co"}, `"partnerco"`, 0},
		{[]string{"partner", "user", "partnerco", "pat"}, `"pat"`, 0},
		{[]string{"delegation", "invite", "acme", "partnerco", "--scope", "limited", "--product", "reviews", "--by", "olivia"}, `"invited"`, 0},
		{[]string{"delegation", "invite", "acme", "partnerco", "--scope", "limited", "--product", "revews", "--by", "olivia"}, "products", 1},
		{[]string{"delegation", "list", "acme"}, `"limited"`, 0},
		{[]string{"tenant", "suspend", "acme"}, `"suspended"`, 0},
		{[]string{"tenant", "list"}, `"total": 1`, 0},
		{[]string{"import", good}, `"members": 1`, 0},
		{[]string{"member", "list", "globex"}, `"user": "gina"`, 0},
		{[]string{"tenant", "list"}, `"total": 2`, 0},
		{[]string{"import", bad}, "line 2: member.role", 1},
		{[]string{"import", typo}, "line 1: member.features", 1},
		{[]string{"tenant", "list", "--q", "initech"}, `"total": 0`, 0},
		{[]string{"import", filepath.Join(t.TempDir(), "missing.jsonl")}, "no such file", 1},
		{[]string{"frob", "nicate"}, "unknown command", 1},
	}
	for _, st := range steps {
		out, code := runCLI(t, append([]string{"admin", "--store", db}, st.args...)...)
		if code != st.code || !strings.Contains(out, st.want) {
			t.Fatalf("admin %v: exit %d\n%s", st.args, code, out)
		}
	}
	out, _ := runCLI(t, "admin", "--store", db, "delegation", "list", "acme")
	id := out[strings.Index(out, "dlg_") : strings.Index(out, "dlg_")+20]
	if out, code := runCLI(t, "admin", "--store", db, "delegation", "accept", id); code != 0 || !strings.Contains(out, `"accepted"`) {
		t.Fatalf("accept %s: %d %s", id, code, out)
	}
	if out, code := runCLI(t, "admin", "--store", db, "delegation", "accept", id); code != 1 || !strings.Contains(out, "cannot accept") {
		t.Fatalf("accept twice: %d %s", code, out)
	}
}

func TestAuditVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{audit.EventStart, audit.EventEnd, audit.EventStart} {
		if _, err := l.Append(audit.Record{Event: ev, ID: "ma_1", Admin: "sam", Tenant: "acme", Reason: "ticket 42"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if out, code := runCLI(t, "audit", "verify", path); code != 0 || !strings.Contains(out, "3 records, hash chain intact") {
		t.Fatalf("verify: %d %s", code, out)
	}
	raw, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(raw), "\n")
	lines[1] = strings.Replace(lines[1], `"event":"end"`, `"event":"expire"`, 1)
	_ = os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600)
	if out, code := runCLI(t, "audit", "verify", path); code == 0 || !strings.Contains(out, "line 2 (record seq 2)") {
		t.Fatalf("tampered: %d %s", code, out)
	}
}

// The trail in the store: verify checks the chain and the signed
// checkpoints and names the first broken record; export writes JSON lines
// that verify on their own.
func TestAuditVerifyStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "portero.db")
	for _, args := range [][]string{
		{"tenant", "create", "acme", "--name", "Acme", "--owner", "olivia"},
		{"member", "put", "acme", "leo", "--role", "location_manager", "--location", "l1"},
		{"member", "deactivate", "acme", "leo"},
	} {
		if out, code := runCLI(t, append([]string{"admin", "--store", db}, args...)...); code != 0 {
			t.Fatalf("admin %v: %d %s", args, code, out)
		}
	}
	keyPEM, _ := runCLI(t, "keygen")
	keyFile := filepath.Join(dir, "assertion.pem")
	_ = os.WriteFile(keyFile, []byte(keyPEM), 0o600)
	key, err := proxy.LoadAssertionKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := access.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Checkpoint(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if out, code := runCLI(t, "audit", "verify", "--store", db, "--key", keyFile); code != 0 || !strings.Contains(out, "3 records, hash chain intact; 1 checkpoints intact") || !strings.Contains(out, "covers record 3 of 3 signed with the gateway's key") {
		t.Fatalf("verify: %d %s", code, out)
	}
	if out, code := runCLI(t, "audit", "verify", db); code != 0 || !strings.Contains(out, "3 records") {
		t.Fatalf("verify by content: %d %s", code, out)
	}
	export := filepath.Join(dir, "export.jsonl")
	if out, code := runCLI(t, "audit", "export", "--store", db, export); code != 0 || !strings.Contains(out, "3 records exported") {
		t.Fatalf("export: %d %s", code, out)
	}
	if out, code := runCLI(t, "audit", "verify", export); code != 0 || !strings.Contains(out, "3 records, hash chain intact") {
		t.Fatalf("verify the export: %d %s", code, out)
	}
	raw, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "audit", "verify", "--store", db, "--key", keyFile); code != 1 || !strings.Contains(out, "record seq 3: missing") {
		t.Fatalf("cut tail: %d %s", code, out)
	}
	if _, err := raw.Exec(`DROP TRIGGER audit_log_no_update; UPDATE audit_log SET record = replace(record, 'olivia', 'oliver') WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "audit", "verify", "--store", db); code != 1 || !strings.Contains(out, "record seq 1: its content does not match") {
		t.Fatalf("edited: %d %s", code, out)
	}
}

func TestFmt(t *testing.T) {
	dir := t.TempDir()
	messy := filepath.Join(dir, "p.rego")
	if err := os.WriteFile(messy, []byte("package p\nallow if {   input.a == 1 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"fmt", "-l", dir}, &out, &errb); code != 1 || !strings.Contains(out.String(), "p.rego") {
		t.Fatalf("fmt -l: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"fmt", "-w", dir}, &out, &errb); code != 0 {
		t.Fatalf("fmt -w: %d %q", code, errb.String())
	}
	if code := run([]string{"fmt", "-l", dir}, &out, &errb); code != 0 {
		t.Fatalf("fmt -l after -w: %d", code)
	}
	if err := os.WriteFile(messy, []byte("package p\nallow if {"), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"fmt", "-l", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "p.rego") {
		t.Fatalf("unparsable file: %d %q", code, errb.String())
	}
}
