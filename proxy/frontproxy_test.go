package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/internal/testport"
	"github.com/portero-gateway/portero/proxy"
)

// The tests in this file put a real nginx and a real Caddy, configured as
// docs/forward-auth.md says (testdata/frontproxy/), in front of the
// harness's upstream, asking the gateway's forward-auth endpoint about every
// request, and check what the app received, not only the status.

// frontProxyRequired, when set, turns a missing nginx or caddy into a
// failure (CI installs them).
const frontProxyRequired = "PORTERO_FRONTPROXY_REQUIRED"

// Addresses in the testdata configurations, replaced by the test's own.
const (
	docForwardAuth = "127.0.0.1:9091" // Portero's forward_auth.listen
	docPublic      = "127.0.0.1:8080" // Portero's public listener
	docApp         = "127.0.0.1:3000" // the app
)

// frontProxy is one kind of front proxy: how to start it for a harness and
// what its client sees of Portero's answers.
type frontProxy struct {
	name string
	// start runs the proxy for h, asking the forward-auth endpoint at
	// authAddr, and returns the address it listens on.
	start func(t *testing.T, h *harness, authAddr string) string
	// clientStatus is the status the client gets when Portero answers a
	// check with status.
	clientStatus func(status int) int
	// dropsUnderscoreHeaders: the proxy drops request headers whose names
	// hold '_' (nginx's ignore_invalid_headers); others pass them on, and
	// Portero refuses X_Portero_User as it does X-Portero-User.
	dropsUnderscoreHeaders bool
}

// frontProxies are the proxies the tests run, each named as its binary.
var frontProxies = []frontProxy{
	// nginx's auth_request passes on only 2xx, 401 and 403; the tested
	// configuration turns its 500 for any other back into Portero's status.
	{name: "nginx", start: startNginx, clientStatus: func(status int) int { return status }, dropsUnderscoreHeaders: true},
	{name: "caddy", start: startCaddy, clientStatus: func(status int) int { return status }},
}

// forwardAuthHarness is a gateway with forward-auth on, trusting trusted,
// and its forward-auth endpoint on a listener of its own.
func forwardAuthHarness(t *testing.T, opts harnessOpts, trusted string) (*harness, string) {
	t.Helper()
	opts.Extra += "forward_auth:\n  listen: " + docForwardAuth + "\n  trusted_proxies: [" + trusted + "]\n"
	h := newHarnessWith(t, nil, opts)
	auth := httptest.NewServer(h.Gateway.ForwardAuth())
	t.Cleanup(auth.Close)
	return h, auth.Listener.Addr().String()
}

// frontProxyBinary is the path of name, or skips the test (fails it with
// PORTERO_FRONTPROXY_REQUIRED set) when it is not installed.
func frontProxyBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(frontProxyRequired) != "" {
			t.Fatalf("%s is not installed and %s is set (apt-get install -y nginx caddy)", name, frontProxyRequired)
		}
		t.Skipf("%s is not installed: skipping the real front-proxy test (set %s to make this a failure)", name, frontProxyRequired)
	}
	return path
}

// frontProxyConfig is a testdata configuration with the documented
// addresses replaced by the harness's and listen's.
func frontProxyConfig(t *testing.T, file, listenToken, listen string, h *harness, authAddr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "frontproxy", file))
	must(t, err)
	text := string(b)
	pairs := []string{
		docForwardAuth, authAddr,
		docPublic, strings.TrimPrefix(h.Server.URL, "http://"),
		docApp, strings.TrimPrefix(h.Upstream.URL, "http://"),
		listenToken, listen,
	}
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("%s does not contain %q: the test would not use its own addresses", file, pairs[i])
		}
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

// startNginx runs nginx with testdata/frontproxy/nginx.conf in a directory
// of its own (pid file, logs, temp paths) and returns its address.
func startNginx(t *testing.T, h *harness, authAddr string) string {
	bin := frontProxyBinary(t, "nginx")
	dir := t.TempDir()
	addr := testport.Addr(t)
	site := frontProxyConfig(t, "nginx.conf", "listen 8000;", "listen "+addr+";", h, authAddr)
	must(t, os.WriteFile(filepath.Join(dir, "portero.conf"), []byte(site), 0o600))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the test's temp dir
	}
	main := fmt.Sprintf(`%[2]s
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/portero.conf;
}
`, dir, user)
	must(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600))
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	runFrontProxy(t, cmd, addr, filepath.Join(dir, "error.log"))
	return addr
}

// startCaddy runs caddy with testdata/frontproxy/Caddyfile (admin endpoint
// off, storage in its own directory) and returns its address.
func startCaddy(t *testing.T, h *harness, authAddr string) string {
	bin := frontProxyBinary(t, "caddy")
	dir := t.TempDir()
	addr := testport.Addr(t)
	_, port, _ := net.SplitHostPort(addr)
	site := frontProxyConfig(t, "Caddyfile", ":8000 {", ":"+port+" {", h, authAddr)
	global := "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n\tstorage file_system " + dir + "\n}\n\n"
	file := filepath.Join(dir, "Caddyfile")
	must(t, os.WriteFile(file, []byte(global+site), 0o600))
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	runFrontProxy(t, cmd, addr, "")
	return addr
}

// runFrontProxy starts cmd, waits until it accepts connections on addr and
// stops it (this process only, by its pid) when the test ends. logFile is
// shown with its output when it fails.
func runFrontProxy(t *testing.T, cmd *exec.Cmd, addr, logFile string) {
	t.Helper()
	var out syncBytes
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	logs := func() string {
		s := out.String()
		if logFile != "" {
			b, _ := os.ReadFile(logFile)
			s += string(b)
		}
		return s
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), logs())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s:\n%s", filepath.Base(cmd.Path), addr, logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v\n%s", filepath.Base(cmd.Path), addr, err, logs())
		}
	}
}

// syncBytes is a process's output, written by exec's copying goroutine.
type syncBytes struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBytes) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBytes) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// frontClient sends every request to addr whatever its URL's host, which
// becomes the Host header; it does not follow redirects.
func frontClient(addr string) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// frontRequest is one request a client sends to the front proxy.
type frontRequest struct {
	method, url string
	token       string
	header      http.Header
	body        string
}

func (fr frontRequest) send(t *testing.T, c *http.Client) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if fr.body != "" {
		body = strings.NewReader(fr.body)
	}
	req, err := http.NewRequest(fr.method, fr.url, body)
	must(t, err)
	for k, v := range fr.header {
		req.Header[k] = v // as spelled: X_Portero_User stays X_Portero_User
	}
	if fr.token != "" {
		req.Header.Set("Authorization", "Bearer "+fr.token)
	}
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp, string(b)
}

// frontProxyOwn are the headers the documented configurations set on the
// request to the app from the connection, besides those Portero's own
// forwarder sets (X-Forwarded-For, -Host, -Proto).
var frontProxyOwn = []string{"X-Forwarded-Port", "X-Real-Ip", "X-Request-Id"}

// checkSameAsPortero fails unless the app received behind the front proxy
// exactly the controlled headers (Portero's, impersonation, overrides) it
// receives behind Portero itself for the same request (viaPortero), with
// one assertion, and the true client address and host.
func checkSameAsPortero(t *testing.T, got, viaPortero received, host string) {
	t.Helper()
	want := withoutAssertion(t, upstreamControlled(viaPortero.Header))
	if want.Get("X-Portero-User") == "" {
		t.Fatalf("the request through Portero carried no X-Portero-User: %v", viaPortero.Header)
	}
	behind := got.Header.Clone()
	for _, name := range frontProxyOwn {
		behind.Del(name)
	}
	if diff := headerDiff(want, withoutAssertion(t, upstreamControlled(behind))); diff != "" {
		t.Errorf("the app's controlled headers differ from those behind Portero: %s", diff)
	}
	if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the front proxy's client 127.0.0.1", xff)
	}
	if xfh := got.Header.Values("X-Forwarded-Host"); len(xfh) != 1 || xfh[0] != host {
		t.Errorf("X-Forwarded-Host %q, want %s", xfh, host)
	}
	if got.Host != host {
		t.Errorf("Host %q, want %s", got.Host, host)
	}
}

// TestFrontProxyForwardAuth sends allowed, refused and hostile requests
// through a real nginx and a real Caddy asking Portero, and checks what the
// app received: the decision's headers and the assertion when allowed,
// nothing at all when refused, and never a request decided on a lie.
func TestFrontProxyForwardAuth(t *testing.T) {
	for _, fp := range frontProxies {
		t.Run(fp.name, func(t *testing.T) {
			frontProxyBinary(t, fp.name) // skip before building the gateway
			h, authAddr := forwardAuthHarness(t, harnessOpts{}, "127.0.0.1/32")
			c := frontClient(fp.start(t, h, authAddr))
			tok := h.Member(t)
			const api = "http://acme.apps.example.com/api/orders"

			// The same request through Portero itself: what the app must
			// receive behind the front proxy too.
			if rec := h.Do(t, "GET", api, tok, nil, ""); rec.Code != 200 {
				t.Fatalf("through Portero: %d %s", rec.Code, rec.Body)
			}
			viaPortero := h.UpstreamSaw(t)

			allowed := []struct {
				name string
				req  frontRequest
				// check is what else the app must have received.
				check func(t *testing.T, got received)
			}{
				{"member", frontRequest{method: "GET", url: api + "?page=2", token: tok}, func(t *testing.T, got received) {
					if got.Method != "GET" || got.Path != "/api/orders" || got.Query != "page=2" {
						t.Errorf("app received %s %s?%s", got.Method, got.Path, got.Query)
					}
					if got.Header.Get("Authorization") != "Bearer "+tok {
						t.Errorf("Authorization %q", got.Header.Get("Authorization"))
					}
					if c, ok := got.Header["Cookie"]; ok {
						t.Errorf("the client sent no Cookie, the app received %q", c)
					}
				}},
				{"other cookies pass intact", frontRequest{method: "GET", url: api, token: tok,
					header: http.Header{"Cookie": {"theme=dark; lang=en"}}}, func(t *testing.T, got received) {
					if c := got.Header.Values("Cookie"); len(c) != 1 || c[0] != "theme=dark; lang=en" {
						t.Errorf("Cookie %q, want theme=dark; lang=en", c)
					}
				}},
				{"forwarded headers describing another request are replaced", frontRequest{method: "GET", url: api, token: tok,
					header: http.Header{"X-Forwarded-For": {"10.0.0.1"}, "X-Forwarded-Host": {"globex.apps.example.com"}}}, nil},
			}
			underscore := frontRequest{method: "GET", url: api, token: tok,
				header: http.Header{"X_Portero_User": {"root"}, "X_Portero_Assertion": {"forged"}}}
			if fp.dropsUnderscoreHeaders {
				allowed = append(allowed, struct {
					name  string
					req   frontRequest
					check func(t *testing.T, got received)
				}{"underscore spellings of Portero's headers are dropped", underscore, nil})
			}
			for _, tc := range allowed {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := tc.req.send(t, c)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
					}
					got := h.UpstreamSaw(t)
					checkSameAsPortero(t, got, viaPortero, "acme.apps.example.com")
					for name := range got.Header {
						if n := proxy.NormalizeHeaderName(name); n == "x-forwarded-uri" || n == "x-forwarded-method" || n == "x-original-uri" || n == "x-original-method" {
							t.Errorf("the app received %s: %q", name, got.Header[name])
						}
					}
					if tc.check != nil {
						tc.check(t, got)
					}
				})
			}

			refused := []struct {
				name string
				req  frontRequest
				// status is Portero's answer to the check.
				status int
			}{
				{"no token on the API", frontRequest{method: "GET", url: api}, 401},
				{"other tenant", frontRequest{method: "GET", url: "http://initech.apps.example.com/api/orders", token: tok}, 403},
				{"client sends X-Portero-User", frontRequest{method: "GET", url: api, token: tok, header: http.Header{"X-Portero-User": {"root"}}}, 400},
				{"client sends X-Portero-Assertion", frontRequest{method: "GET", url: api, token: tok, header: http.Header{"X-Portero-Assertion": {"forged.jwt.value"}}}, 400},
				{"client sends Impersonate-User", frontRequest{method: "GET", url: api, token: tok, header: http.Header{"Impersonate-User": {"root"}}}, 400},
				{"client sends X-Remote-User", frontRequest{method: "GET", url: api, token: tok, header: http.Header{"X-Remote-User": {"root"}}}, 400},
				{"client sends X-HTTP-Method-Override", frontRequest{method: "POST", url: api, token: tok, header: http.Header{"X-Http-Method-Override": {"GET"}}}, 400},
				{"_method in the query", frontRequest{method: "GET", url: api + "?_method=DELETE", token: tok}, 400},
				{"double slash", frontRequest{method: "GET", url: "http://acme.apps.example.com/api/a//b", token: tok}, 400},
				{"dot segment", frontRequest{method: "GET", url: "http://acme.apps.example.com/api/a/./b", token: tok}, 400},
				{"a lying X-Forwarded-Host for another tenant", frontRequest{method: "GET", url: "http://initech.apps.example.com/api/orders", token: tok,
					header: http.Header{"X-Forwarded-Host": {"acme.apps.example.com"}}}, 403},
				{"a lying URI for a refused path", frontRequest{method: "GET", url: "http://acme.apps.example.com/api/a//b", token: tok,
					header: http.Header{"X-Original-Uri": {"/api/orders"}, "X-Forwarded-Uri": {"/api/orders"}}}, 400},
				// Neither nginx nor Caddy sends the body with the check: on a
				// route whose policy reads bodies no edit is decided without
				// it, with a body or (for all Portero can tell) without.
				{"an edit without a body on a route whose policy reads bodies", frontRequest{method: "DELETE", url: api + "/7", token: tok}, 403},
				{"a PATCH whose body is not in the check", frontRequest{method: "PATCH", url: api + "/7", token: tok, body: `{"role":"viewer"}`,
					header: http.Header{"Content-Type": {"application/json"}}}, 403},
				{"an edit with a body on a route whose policy reads bodies", frontRequest{method: "POST", url: api, token: tok, body: `{"role":"viewer"}`,
					header: http.Header{"Content-Type": {"application/json"}}}, 403},
				{"a lying method for an edit whose body is not in the check", frontRequest{method: "POST", url: api, token: tok, body: `{"role":"admin"}`,
					header: http.Header{"Content-Type": {"application/json"}, "X-Original-Method": {"GET"}, "X-Forwarded-Method": {"GET"}}}, 403},
			}
			if !fp.dropsUnderscoreHeaders {
				refused = append(refused, struct {
					name   string
					req    frontRequest
					status int
				}{"underscore spellings of Portero's headers", underscore, 400})
			}
			for _, tc := range refused {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := tc.req.send(t, c)
					if want := fp.clientStatus(tc.status); resp.StatusCode != want {
						t.Fatalf("status %d, want %d (Portero's %d): %s", resp.StatusCode, want, tc.status, body)
					}
					h.UpstreamSawNothing(t)
				})
			}
		})
	}
}

// TestFrontProxyUntrustedSource: a gateway that does not trust the front
// proxy's address refuses every check, so nothing reaches the app.
func TestFrontProxyUntrustedSource(t *testing.T) {
	for _, fp := range frontProxies {
		t.Run(fp.name, func(t *testing.T) {
			frontProxyBinary(t, fp.name) // skip before building the gateway
			h, authAddr := forwardAuthHarness(t, harnessOpts{}, "10.0.0.0/8")
			c := frontClient(fp.start(t, h, authAddr))
			resp, body := frontRequest{method: "GET", url: "http://acme.apps.example.com/api/orders", token: h.Member(t)}.send(t, c)
			if resp.StatusCode != 403 {
				t.Fatalf("status %d, want 403: %s", resp.StatusCode, body)
			}
			h.UpstreamSawNothing(t)
			if !strings.Contains(h.Logs.String(), "forward-auth check from an untrusted source refused") {
				t.Errorf("the refusal is not logged")
			}
		})
	}
}

// TestFrontProxySignIn: a browser without a session is sent to Portero's
// sign-in page (nginx: a 302 from error_page 401 with Portero's Location;
// Caddy: Portero's 401 with Location and a page that refreshes to it), and
// once signed in, its session cookie never reaches the app while its other
// cookies do.
func TestFrontProxySignIn(t *testing.T) {
	for _, fp := range frontProxies {
		t.Run(fp.name, func(t *testing.T) {
			frontProxyBinary(t, fp.name) // skip before building the gateway
			h, authAddr := forwardAuthHarness(t, harnessOpts{Login: true}, "127.0.0.1/32")
			c := frontClient(fp.start(t, h, authAddr))
			html := http.Header{"Accept": {"text/html"}}

			resp, body := frontRequest{method: "GET", url: "http://acme.apps.example.com/reviews?x=1", header: html}.send(t, c)
			signIn := "http://localhost/.portero/login?rd=" + "http%3A%2F%2Facme.apps.example.com%2Freviews%3Fx%3D1"
			if got := resp.Header.Get("Location"); got != signIn {
				t.Fatalf("got %d Location %q, want the sign-in URL %s: %s", resp.StatusCode, got, signIn, body)
			}
			switch {
			case fp.name == "nginx" && resp.StatusCode != http.StatusFound,
				fp.name != "nginx" && (resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `http-equiv="refresh"`)):
				t.Fatalf("sign-in answer %d: %s", resp.StatusCode, body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q on the sign-in answer", resp.Header.Get("Cache-Control"))
			}
			h.UpstreamSawNothing(t)

			// An API client gets the 401 itself, not a redirect.
			resp, body = frontRequest{method: "GET", url: "http://acme.apps.example.com/api/orders"}.send(t, c)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("API without a token: %d Location %q WWW-Authenticate %q: %s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("WWW-Authenticate"), body)
			}
			h.UpstreamSawNothing(t)

			// Sign in (in-process: the code flow's pages are Portero's own),
			// then browse through the front proxy with the session.
			b := gatewaytest.NewBrowser(t, h)
			if rec := b.SignIn("http://localhost/t/acme/", gatewaytest.AliceClaims()); rec.Code != http.StatusFound {
				t.Fatalf("sign-in ended with %d: %s", rec.Code, rec.Body)
			}
			h.UpstreamSawNothing(t)
			var session []string
			for _, ck := range b.Cookies {
				session = append(session, ck.Name+"="+ck.Value)
			}
			if len(session) == 0 {
				t.Fatal("signed in without a session cookie")
			}
			cases := []struct {
				name, cookie, want string
			}{
				{"session and other cookies", "theme=dark; " + strings.Join(session, "; ") + "; lang=en", "theme=dark; lang=en"},
				{"session only", strings.Join(session, "; "), ""},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					hdr := http.Header{"Accept": {"text/html"}, "Cookie": {tc.cookie}}
					resp, body := frontRequest{method: "GET", url: "http://acme.apps.example.com/reviews", header: hdr}.send(t, c)
					if resp.StatusCode != 200 {
						t.Fatalf("signed-in page: %d %s", resp.StatusCode, body)
					}
					got := h.UpstreamSaw(t)
					if c := strings.Join(got.Header.Values("Cookie"), " | "); c != tc.want {
						t.Errorf("app received Cookie %q, want %q", c, tc.want)
					}
					if got.Header.Get("X-Portero-User") != "alice" || got.Header.Get("X-Portero-Assertion") == "" {
						t.Errorf("app received X-Portero-User %q, assertion %q", got.Header.Get("X-Portero-User"), got.Header.Get("X-Portero-Assertion"))
					}
				})
			}
		})
	}
}

// traefikCheck asks the gateway's forward-auth endpoint about a request as
// Traefik's forwardAuth middleware does (trustForwardHeader: false): a GET
// to the address from the front proxy's own address, carrying the client's
// headers, the entrypoint's X-Forwarded-Port, -Server and X-Real-Ip, and
// X-Forwarded-For, -Method, -Proto, -Host and -Uri describing the request;
// with forwardBody, its body too. Traefik is not installed here: this is
// its request shape (pkg/middlewares/auth/forward.go, writeHeader).
func traefikCheck(h *harness, method, target string, client http.Header, body string) *httptest.ResponseRecorder {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body) // forwardBody: true
	}
	req := httptest.NewRequest("GET", "http://127.0.0.1:9091/", rb)
	req.RemoteAddr = "127.0.0.1:41000"
	for k, v := range client {
		req.Header[k] = v
	}
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Port", "80")
	req.Header.Set("X-Forwarded-Server", "traefik-1")
	req.Header.Set("X-Real-Ip", "203.0.113.7")
	req.Header.Set("X-Forwarded-Method", method)
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("X-Forwarded-Host", u.Host)
	req.Header.Set("X-Forwarded-Uri", u.RequestURI())
	rec := httptest.NewRecorder()
	h.Gateway.ForwardAuth().ServeHTTP(rec, req)
	return rec
}

// TestTraefikForwardAuthRequests sends Traefik's forwardAuth requests to
// the endpoint in-process: the answer carries the headers
// authResponseHeaders names, refusals carry Portero's status and reason,
// and with forwardBody an edit is decided on its body.
func TestTraefikForwardAuthRequests(t *testing.T) {
	bodyPolicy := fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": false, "status": 403, "reason": "deny.not_a_member"} if input.tenant.id != "acme"
else := {"allow": false, "status": 403, "reason": "body.role"} if input.request.body.role == "admin"
else := {"allow": true, "headers": {"X-Portero-User": input.identity.sub, "X-Portero-Tenant": input.tenant.id}}`)}}
	h := newHarnessWith(t, bodyPolicy, harnessOpts{Extra: "forward_auth:\n  listen: 127.0.0.1:9091\n  trusted_proxies: [127.0.0.1/32]\n"})
	tok := h.Member(t)
	bearer := http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"application/json"}}
	with := func(extra http.Header) http.Header {
		out := bearer.Clone()
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	json := with(http.Header{"Content-Type": {"application/json"}})
	const api = "http://acme.apps.example.com/api/orders"
	cases := []struct {
		name, method, target string
		client               http.Header
		body                 string
		status               int
		reason               string
		// answer are headers the 200 answer must carry; "" must be absent.
		answer map[string]string
	}{
		{"member", "GET", api + "?page=2", bearer, "", 200, "", map[string]string{"X-Portero-User": "alice", "X-Portero-Tenant": "acme", "Cookie": ""}},
		{"other cookies, without Portero's", "GET", api, with(http.Header{"Cookie": {"theme=dark"}}), "", 200, "", map[string]string{"Cookie": "theme=dark"}},
		{"forwardBody: an allowed edit", "POST", api, json, `{"role":"viewer"}`, 200, "", map[string]string{"X-Portero-User": "alice"}},
		{"forwardBody: an edit the policy refuses on its body", "POST", api, json, `{"role":"admin"}`, 403, "body.role", nil},
		{"a POST without forwardBody", "POST", api, json, "", 403, "forward_auth.body_required", nil},
		{"a PATCH without forwardBody", "PATCH", api, json, "", 403, "forward_auth.body_required", nil},
		{"a DELETE without forwardBody", "DELETE", api, bearer, "", 403, "forward_auth.body_required", nil},
		{"a GET needs no body", "GET", api, bearer, "", 200, "", map[string]string{"X-Portero-User": "alice"}},
		{"no token", "GET", api, http.Header{"Accept": {"application/json"}}, "", 401, "auth.required", nil},
		{"other tenant", "GET", "http://initech.apps.example.com/api/orders", bearer, "", 403, "deny.not_a_member", nil},
		{"client sends X-Portero-User", "GET", api, with(http.Header{"X-Portero-User": {"root"}}), "", 400, "request.reserved_header", nil},
		{"client sends X_Portero_User", "GET", api, with(http.Header{"X_portero_user": {"root"}}), "", 400, "request.reserved_header", nil},
		{"client sends Impersonate-User", "GET", api, with(http.Header{"Impersonate-User": {"root"}}), "", 400, "request.reserved_header", nil},
		{"client sends X-Remote-User", "GET", api, with(http.Header{"X-Remote-User": {"root"}}), "", 400, "request.reserved_header", nil},
		{"client sends X-HTTP-Method-Override", "POST", api, with(http.Header{"X-Http-Method-Override": {"GET"}}), "", 400, "request.reserved_header", nil},
		{"client's X-Original-Uri names another request", "GET", "http://acme.apps.example.com/api/a//b", with(http.Header{"X-Original-Uri": {"/api/orders"}}), "", 400, "forward_auth.ambiguous", nil},
		{"client's X-Original-Method names another method", "POST", api, with(http.Header{"X-Original-Method": {"GET"}}), "", 400, "forward_auth.ambiguous", nil},
		{"double slash", "GET", "http://acme.apps.example.com/api/a//b", bearer, "", 400, "request.non_canonical_path", nil},
		{"_method in the query", "GET", api + "?_method=DELETE", bearer, "", 400, "request.method_override", nil},
		{"Portero's own path", "GET", "http://acme.apps.example.com/.portero/login", bearer, "", 403, "forward_auth.portero_path", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := traefikCheck(h, tc.method, tc.target, tc.client, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				if !strings.Contains(rec.Body.String(), tc.reason) {
					t.Errorf("answer does not name %s: %s", tc.reason, rec.Body)
				}
				for name := range rec.Header() {
					if strings.HasPrefix(name, "X-Portero-") {
						t.Errorf("a refusal carries %s", name)
					}
				}
				return
			}
			if v := rec.Header().Values("X-Portero-Assertion"); len(v) != 1 || strings.Count(v[0], ".") != 2 {
				t.Errorf("assertion %q, want one JWT", v)
			}
			for name, want := range tc.answer {
				if got := strings.Join(rec.Header().Values(name), " | "); got != want {
					t.Errorf("answer %s %q, want %q", name, got, want)
				}
			}
		})
	}
	t.Run("untrusted source", func(t *testing.T) {
		req := httptest.NewRequest("GET", "http://127.0.0.1:9091/", nil)
		req.RemoteAddr = "192.0.2.1:41000"
		req.Header = with(http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Host": {"acme.apps.example.com"}, "X-Forwarded-Uri": {"/api/orders"}})
		rec := httptest.NewRecorder()
		h.Gateway.ForwardAuth().ServeHTTP(rec, req)
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), "forward_auth.untrusted_source") {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("browser sign-in", func(t *testing.T) {
		h, _ := forwardAuthHarness(t, harnessOpts{Login: true}, "127.0.0.1/32")
		rec := traefikCheck(h, "GET", "http://acme.apps.example.com/reviews", http.Header{"Accept": {"text/html"}}, "")
		loc := rec.Header().Get("Location")
		if rec.Code != 401 || !strings.HasPrefix(loc, "http://localhost/.portero/login?rd=") || !strings.Contains(rec.Body.String(), `http-equiv="refresh"`) {
			t.Fatalf("got %d Location %q: %s", rec.Code, loc, rec.Body)
		}
	})
	h.UpstreamSawNothing(t)
}

// TestFrontProxyEditDecidedWithoutItsBody: behind nginx, which cannot send
// the body with the check, a PATCH whose body a policy refuses on the proxy
// path (deny if body.role is "admin") is refused: on a route whose policy
// reads bodies no edit is decided without its body (set body.inspect: false
// on a route to decide its edits with no body, as the proxy path then
// does).
func TestFrontProxyEditDecidedWithoutItsBody(t *testing.T) {
	policyFS := fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz
decision := {"allow": false, "status": 403, "reason": "body.role"} if input.request.body.role == "admin"
else := {"allow": true, "headers": {"X-Portero-User": input.identity.sub}}`)}}
	h := newHarnessWith(t, policyFS, harnessOpts{Extra: "forward_auth:\n  listen: " + docForwardAuth + "\n  trusted_proxies: [127.0.0.1/32]\n"})
	auth := httptest.NewServer(h.Gateway.ForwardAuth())
	t.Cleanup(auth.Close)
	c := frontClient(startNginx(t, h, auth.Listener.Addr().String()))
	resp, body := frontRequest{method: "PATCH", url: "http://acme.apps.example.com/api/orders/7", token: h.Member(t),
		body: `{"role":"admin"}`, header: http.Header{"Content-Type": {"application/json"}}}.send(t, c)
	if resp.StatusCode == 200 {
		got := h.UpstreamSaw(t)
		t.Fatalf("the app received %s %s with body %q, which the policy refuses on the proxy path", got.Method, got.Path, got.Body)
	}
	t.Logf("refused: %d %s", resp.StatusCode, body)
	h.UpstreamSawNothing(t)
}

// TestFrontProxyCheckPathNotPublic: with forward_auth.path the check is a
// path of the public listener, and the documented front-proxy
// configuration sends all of /.portero/ to that listener, from the trusted
// proxy's address. A client asking the check that way, describing any
// request it likes with X-Original-* headers, is refused: forward_auth.path
// requires forward_auth.secret, which only the proxy's check location sends.
func TestFrontProxyCheckPathNotPublic(t *testing.T) {
	h := newHarnessWith(t, nil, harnessOpts{Extra: "forward_auth:\n  listen: " + docForwardAuth + "\n  path: /.portero/auth\n  secret: " + strings.Repeat("s", 32) + "\n  trusted_proxies: [127.0.0.1/32]\n"})
	auth := httptest.NewServer(h.Gateway.ForwardAuth())
	t.Cleanup(auth.Close)
	c := frontClient(startNginx(t, h, auth.Listener.Addr().String()))
	hdr := http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/api/orders"}, "X-Forwarded-Host": {"acme.apps.example.com"}}
	resp, body := frontRequest{method: "GET", url: "http://acme.apps.example.com/.portero/auth", token: h.Member(t), header: hdr}.send(t, c)
	if resp.StatusCode == 200 || resp.Header.Get("X-Portero-Assertion") != "" {
		t.Fatalf("a client asked the check through the front proxy: %d, assertion %q %s", resp.StatusCode, resp.Header.Get("X-Portero-Assertion"), body)
	}
	if !strings.Contains(body, "forward_auth.untrusted_source") {
		t.Fatalf("refused for another reason: %d %s", resp.StatusCode, body)
	}
}

// TestFrontProxyDocsMatchTestdata: the nginx and Caddy configurations in
// docs/forward-auth.md and README.md are, verbatim, the files the tests
// above run.
func TestFrontProxyDocsMatchTestdata(t *testing.T) {
	for _, docFile := range []string{filepath.Join("..", "docs", "forward-auth.md"), filepath.Join("..", "README.md")} {
		doc, err := os.ReadFile(docFile)
		must(t, err)
		for file, lang := range map[string]string{"nginx.conf": "nginx", "Caddyfile": "caddy"} {
			b, err := os.ReadFile(filepath.Join("testdata", "frontproxy", file))
			must(t, err)
			if block := "```" + lang + "\n" + string(b) + "```\n"; !strings.Contains(string(doc), block) {
				t.Errorf("%s has no ```%s block equal to testdata/frontproxy/%s: copy the file into it", docFile, lang, file)
			}
		}
	}
}
