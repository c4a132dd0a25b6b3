package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// OpenID Connect Back-Channel Logout with the real IdP: the user signs in
// through the gateway, then signs out at the IdP itself (its end_session
// endpoint, not Portero's sign-out). The IdP posts a logout token to
// /.portero/backchannel-logout, and the gateway's session ends: the next
// request to the app is sent to sign in again, and a copy of the session
// cookie is refused too.
func TestBrowserBackchannelLogout(t *testing.T) {
	chromium := prerequisites(t)
	s := startStack(t)
	ctx := newBrowser(t, chromium)

	signIn(t, ctx, s.gateway+"/t/acme/", "owner", "#user")
	if u, _ := text(ctx, "#user"); u != "owner" {
		t.Fatalf("the app thinks the user is %q", u)
	}
	if info := userinfo(t, ctx, s.gateway); info["sub"] != "owner" {
		t.Fatalf("userinfo before the logout: %v", info)
	}
	// The session cookie as the browser holds it, replayed from outside
	// the browser before and after the logout.
	jar := sessionCookies(t, ctx, s.gateway)
	if code := userinfoStatus(t, s.gateway, jar); code != http.StatusOK {
		t.Fatalf("the copied session cookie does not work before the logout: %d", code)
	}

	// Sign out at the IdP, not at Portero.
	step(t, ctx, "the IdP's sign-out page",
		chromedp.Navigate(s.idp+"/session/end"),
		chromedp.WaitVisible("#idp-signout", chromedp.ByID))
	screenshot(t, ctx, "idp-sign-out")
	step(t, ctx, "confirm at the IdP",
		chromedp.Click("#idp-signout", chromedp.ByID),
		chromedp.WaitNotPresent("#idp-signout", chromedp.ByID))

	// The gateway's session has ended: the app sends the browser to sign
	// in (at the IdP, whose own session ended too).
	step(t, ctx, "the app after the IdP's logout",
		chromedp.Navigate(s.gateway+"/t/acme/"),
		chromedp.WaitVisible("#username", chromedp.ByID))
	var loc string
	_ = chromedp.Run(ctx, chromedp.Location(&loc))
	if !strings.HasPrefix(loc, s.idp+"/interaction/") {
		t.Fatalf("after the IdP's logout the app page went to %s, want the IdP's sign-in form", loc)
	}
	if code := userinfoStatus(t, s.gateway, jar); code != http.StatusUnauthorized {
		t.Fatalf("a copy of the session cookie after the IdP's logout: %d, want 401", code)
	}
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `portero_backchannel_logouts_total{result="ok"} 1`) {
		t.Errorf("the logout is not counted: %s", grepLines(string(metrics), "portero_backchannel_logouts_total"))
	}
}

// sessionCookies returns the gateway's cookies as the browser holds them
// (HttpOnly included), as a Cookie header.
func sessionCookies(t *testing.T, ctx context.Context, gateway string) string {
	t.Helper()
	var cookies []string
	step(t, ctx, "read the cookies", chromedp.ActionFunc(func(c context.Context) error {
		got, err := network.GetCookies().WithURLs([]string{gateway + "/"}).Do(c)
		for _, ck := range got {
			cookies = append(cookies, ck.Name+"="+ck.Value)
		}
		return err
	}))
	if len(cookies) == 0 {
		t.Fatal("the browser holds no gateway cookie")
	}
	return strings.Join(cookies, "; ")
}

// userinfoStatus asks /.portero/userinfo with the cookie header, outside
// the browser.
func userinfoStatus(t *testing.T, gateway, cookie string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", gateway+"/.portero/userinfo", nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
