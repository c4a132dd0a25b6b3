package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// checkSecret is forward_auth.secret: nginx's check location sends it, so
// Portero tells its checks from clients' requests to /.portero/.
const checkSecret = "e2e-forward-auth-secret-0123456789abcdef"

// forwardAuthConfig is the demo's gateway.yaml with the forward-auth
// endpoint on the public listener's /.portero/auth, for nginx on loopback.
func forwardAuthConfig(t *testing.T) string {
	t.Helper()
	demo, err := os.ReadFile("../demo/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(demo) + "\nforward_auth:\n  path: /.portero/auth\n  secret: " + checkSecret + "\n  trusted_proxies: [127.0.0.1]\n"
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// startNginx runs Debian's nginx with e2e/nginx.conf on port listen, in
// front of the demo app on port app, asking Portero on port portero. It is
// stopped by its pid when the test ends.
func startNginx(t *testing.T, listen, portero, app int) *proc {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nginx"); err != nil {
			if os.Getenv("PORTERO_E2E") == "1" {
				t.Fatal("nginx is not installed (apt-get install nginx)")
			}
			t.Skip("nginx is not installed (apt-get install nginx)")
		}
		nginx = "/usr/sbin/nginx"
	}
	tmpl, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := strings.NewReplacer("{{dir}}", dir, "{{secret}}", checkSecret, "{{listen}}", fmt.Sprintf("127.0.0.1:%d", listen),
		"{{portero}}", fmt.Sprintf("127.0.0.1:%d", portero), "{{app}}", fmt.Sprintf("127.0.0.1:%d", app)).Replace(string(tmpl))
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, nginx, "-p", dir, "-c", file, "-e", filepath.Join(dir, "error.log"))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("--- nginx error.log:\n%s", b)
		}
	})
	return p
}

// A person signs in through nginx: nginx asks Portero about every request
// (auth_request), sends the browser to sign in on Portero's 401, and
// forwards allowed requests to the app with the decision's headers and the
// assertion; Portero's session cookie stays with Portero, and another
// tenant's app is refused before it is reached.
func TestBrowserSignInThroughNginx(t *testing.T) {
	chromium := prerequisites(t)
	s := startStackWith(t, true)
	ctx := newBrowser(t, chromium)

	if err := chromedp.Run(ctx, chromedp.Navigate(s.gateway+"/t/acme/reviews?view=open"), chromedp.WaitVisible("#username", chromedp.ByID)); err != nil {
		t.Fatalf("no sign-in form through nginx: %v", err)
	}
	var loc string
	_ = chromedp.Run(ctx, chromedp.Location(&loc))
	if !strings.HasPrefix(loc, s.idp+"/interaction/") {
		t.Fatalf("sign-in form at %s, want the IdP", loc)
	}
	step(t, ctx, "sign in as the owner",
		chromedp.SendKeys("#username", "owner", chromedp.ByID),
		chromedp.SendKeys("#password", "portero", chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#user", chromedp.ByID),
		chromedp.Location(&loc))
	if loc != s.gateway+"/t/acme/reviews?view=open" {
		t.Errorf("landed on %s, want the page first asked for, through nginx", loc)
	}
	if u, _ := text(ctx, "#user"); u != "owner" {
		t.Errorf("the app thinks the user is %q", u)
	}
	if st, _ := text(ctx, "#assertion-status"); !strings.Contains(st, "verified with the gateway's JWKS") {
		t.Errorf("assertion: %q", st)
	}
	if c, _ := text(ctx, "#cookies"); strings.Contains(c, "portero") {
		t.Errorf("the app received Portero's cookies: %q", c)
	}
	screenshot(t, ctx, "nginx-signed-in")
	before := userinfo(t, ctx, s.gateway)

	// After the tokens expire, the session refreshes them: the new session
	// cookie reaches the browser through nginx (add_header Set-Cookie).
	time.Sleep(tokenTTL + 2*time.Second)
	step(t, ctx, "after token expiry", chromedp.Navigate(s.gateway+"/t/acme/"), chromedp.WaitVisible("#user", chromedp.ByID))
	if u, _ := text(ctx, "#user"); u != "owner" {
		t.Errorf("after refresh the user is %q", u)
	}
	if after := userinfo(t, ctx, s.gateway); after["tokens_expire"] == before["tokens_expire"] {
		t.Errorf("tokens were not refreshed through nginx: %v", after["tokens_expire"])
	}
	step(t, ctx, "again after the refresh", chromedp.Navigate(s.gateway+"/t/acme/reviews"), chromedp.WaitVisible("#user", chromedp.ByID))

	// Another tenant's app: refused by the policy, through nginx.
	var body string
	step(t, ctx, "globex as acme's owner", chromedp.Navigate(s.gateway+"/t/globex/"), chromedp.Text("body", &body, chromedp.ByQuery))
	if !strings.Contains(body, "403") || strings.Contains(body, "Demo tenant app") {
		t.Errorf("globex through nginx: %q", body)
	}

	// Sign out through nginx: Portero's confirmation, then the IdP's, then
	// asked to sign in again.
	step(t, ctx, "sign out",
		chromedp.Navigate(s.gateway+"/t/acme/"),
		chromedp.Click("#signout", chromedp.ByID),
		chromedp.WaitVisible("#portero-signout", chromedp.ByID),
		chromedp.Click("#portero-signout", chromedp.ByID),
		chromedp.WaitVisible("#idp-signout", chromedp.ByID),
		chromedp.Click("#idp-signout", chromedp.ByID),
		chromedp.WaitVisible("#username", chromedp.ByID))
	step(t, ctx, "signed out", chromedp.Navigate(s.gateway+"/t/acme/"), chromedp.WaitVisible("#username", chromedp.ByID))

	// A client with a bad token gets the bearer challenge, not a redirect;
	// a forged header and a path the app could read differently are
	// refused before the app, with Portero's status.
	for _, tc := range []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"invalid token", http.Header{"Authorization": {"Bearer not-a-token"}}, 401},
		{"forged user header", http.Header{"X-Portero-User": {"owner"}}, 400},
		{"non-canonical path", nil, 400}, // below: /t/acme//reviews
	} {
		target := s.gateway + "/t/acme/reviews"
		if tc.hdr == nil {
			target = s.gateway + "/t/acme//reviews"
		}
		req, _ := http.NewRequest("GET", target, nil)
		for k, v := range tc.hdr {
			req.Header[k] = v
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || strings.Contains(string(b), "Demo tenant app") {
			t.Errorf("%s: %d %q", tc.name, resp.StatusCode, b)
		}
		if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
}
