package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// People and partners as #15 shows them, through the demo stack with a real
// Mailpit, once in English and once in Spanish (every browser asks for the
// language with Accept-Language; the console sends the invitations in it):
//
//   - partner: acme's owner finds the agency Partner Co by name in the
//     console and invites it to reviews; the invitation mail reaches
//     partnerco's contact address in Mailpit; partnerco's admin ("partner")
//     follows its accept link, signs in, accepts, and reaches acme's reviews
//     through the gateway (the app receives the request) and nothing else;
//   - member: acme's owner invites nora@acme.example with the accounting
//     profile; Nora follows the mail's link, signs in at the IdP (which
//     verified that address), accepts, lands in acme's app as herself,
//     reaches billing and is refused reviews;
//   - master access: the system admin enters acme; the owner is e-mailed,
//     sees the session on acme's history page, ends it, and the admin is
//     refused in acme's app from then on.
//
// Mail is read through Mailpit's API (GET /api/v1/messages,
// /api/v1/message/{ID}); screenshots go to e2e/artifacts/ (the README shows
// some from docs/screenshots/).
func TestBrowserPeople(t *testing.T) {
	chromium := prerequisites(t)
	for _, w := range []peopleWords{english, spanish} {
		t.Run(w.lang, func(t *testing.T) {
			s := startStackOpts(t, stackOptions{mail: true})
			t.Run("partner", func(t *testing.T) { partnerInvitationFlow(t, chromium, s, w) })
			t.Run("member", func(t *testing.T) { memberInvitationFlow(t, chromium, s, w) })
			t.Run("master", func(t *testing.T) { masterSessionFlow(t, chromium, s, w) })
		})
	}
}

// peopleWords is what the pages and the mail say in one language.
type peopleWords struct {
	lang, acceptLanguage                 string
	partnerSubject, memberSubject        string
	partnerTitle, memberTitle, accepted  string
	invitedFlash, revokedPast, revokedBy string
	reviews, accounting                  string // the names the invitation pages show
}

var english = peopleWords{
	lang: "en", acceptLanguage: "en-GB,en;q=0.9",
	partnerSubject: "Acme Dental invites Partner Co to manage its account",
	memberSubject:  "invites you to Acme Dental",
	partnerTitle:   "Partner invitation", memberTitle: "You are invited",
	accepted:     "Invitation accepted",
	invitedFlash: "Invitation sent to nora@acme.example.",
	revokedPast:  "revoked", revokedBy: "by owner",
	reviews: "Reviews", accounting: "Accounting (billing only)",
}

var spanish = peopleWords{
	lang: "es", acceptLanguage: "es-ES,es;q=0.9,en;q=0.5",
	partnerSubject: "Acme Dental invita a Partner Co a gestionar su cuenta",
	memberSubject:  "le invita a Acme Dental",
	partnerTitle:   "Invitación de socio", memberTitle: "Te han invitado",
	accepted:     "Invitación aceptada",
	invitedFlash: "Invitación enviada a nora@acme.example.",
	revokedPast:  "revocada", revokedBy: "por owner",
	reviews: "Reseñas", accounting: "Contabilidad (solo facturación)",
}

// langBrowser is a new browser that asks for w's language.
func langBrowser(t *testing.T, chromium string, w peopleWords) context.Context {
	t.Helper()
	ctx := newBrowser(t, chromium)
	if err := chromedp.Run(ctx, network.Enable(), network.SetExtraHTTPHeaders(network.Headers{"Accept-Language": w.acceptLanguage})); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// mailMessage is what Mailpit's API says about one message.
type mailMessage struct {
	ID      string
	Subject string
	To      []struct{ Name, Address string }
	Text    string
	HTML    string
}

// waitMail polls Mailpit until a message to addr whose subject contains
// subject arrives, and returns it with its bodies. The gateway's sender
// works in the background (with retries), so the limit is generous.
func waitMail(t *testing.T, s stack, addr, subject string) mailMessage {
	t.Helper()
	getJSON := func(path string, v any) error {
		resp, err := http.Get(s.mailpit + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	begin := time.Now()
	var seen []string
	for {
		var list struct{ Messages []mailMessage }
		err := getJSON("/api/v1/messages?limit=200", &list)
		if err == nil {
			seen = seen[:0]
			for _, m := range list.Messages {
				for _, to := range m.To {
					seen = append(seen, to.Address+": "+m.Subject)
					if strings.EqualFold(to.Address, addr) && strings.Contains(m.Subject, subject) {
						var full mailMessage
						if err := getJSON("/api/v1/message/"+m.ID, &full); err != nil {
							t.Fatal(err)
						}
						return full
					}
				}
			}
		}
		if time.Since(begin) > 60*time.Second {
			t.Fatalf("no mail to %s about %q within 60s (last error %v; Mailpit has: %q)", addr, subject, err, seen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// mailLink is the link of the gateway's page path in the message's plain
// text; it must lead to the gateway the test started.
func mailLink(t *testing.T, s stack, m mailMessage, path *regexp.Regexp) string {
	t.Helper()
	link := path.FindString(m.Text)
	if link == "" {
		t.Fatalf("no link matching %s in the mail %q:\n%s", path, m.Subject, m.Text)
	}
	if !strings.HasPrefix(link, s.gateway+"/") {
		t.Fatalf("the mail's link %s does not lead to the gateway %s", link, s.gateway)
	}
	if !strings.Contains(m.HTML, link) {
		t.Errorf("the HTML body does not carry the link %s", link)
	}
	return link
}

var (
	partnerAcceptLink = regexp.MustCompile(`https?://[^\s"<>]+/\.portero/partner-invitations/[^/\s"<>]+/accept`)
	memberLink        = regexp.MustCompile(`https?://[^\s"<>]+/\.portero/invitations/[^\s"<>]+`)
)

// showMail opens the message's HTML body as Mailpit serves it
// (/view/{ID}.html) and takes a screenshot once it shows want. (Mailpit
// built by go install serves no web UI: its JavaScript and CSS are built
// by npm for the release binaries, so /view/{ID} is a blank page there.)
func showMail(t *testing.T, ctx context.Context, s stack, m mailMessage, want, name string) {
	t.Helper()
	var body string
	step(t, ctx, "the mail's HTML in Mailpit",
		chromedp.Navigate(s.mailpit+"/view/"+m.ID+".html"),
		chromedp.WaitVisible("a", chromedp.ByQuery),
		chromedp.Text("body", &body, chromedp.ByQuery))
	if !strings.Contains(body, want) {
		t.Errorf("the mail's HTML does not show %q: %.300q", want, body)
	}
	screenshot(t, ctx, name)
}

// hasAppUser says whether the page is the demo app's (it shows #user).
func hasAppUser(ctx context.Context) bool {
	var ok bool
	_ = chromedp.Run(ctx, chromedp.Evaluate(`document.getElementById('user') !== null`, &ok))
	return ok
}

func partnerInvitationFlow(t *testing.T, chromium string, s stack, w peopleWords) {
	octx := langBrowser(t, chromium, w)
	signIn(t, octx, s.gateway+"/.portero/admin/t/acme/partners", "owner", "#invite-form")
	var lang string
	step(t, octx, "find Partner Co by name and invite it to reviews",
		chromedp.Evaluate(`document.documentElement.lang`, &lang),
		chromedp.SendKeys("#partner-q", "Partner", chromedp.ByID),
		chromedp.Click("#partner-search-button", chromedp.ByID),
		chromedp.WaitVisible("#pick-partnerco", chromedp.ByID),
		chromedp.Click("#pick-partnerco", chromedp.ByID),
		chromedp.Click("#product-reviews", chromedp.ByID),
		chromedp.Click("#send-invite", chromedp.ByID),
		chromedp.WaitVisible(`#delegations tr[data-partner="partnerco"]`, chromedp.ByQuery))
	if lang != w.lang {
		t.Errorf("the console is in %q, want %q", lang, w.lang)
	}

	// The invitation goes to partnerco's contact address, in the
	// console's language, with accept and reject links.
	m := waitMail(t, s, "team@partnerco.example", w.partnerSubject)
	link := mailLink(t, s, m, partnerAcceptLink)
	if !strings.Contains(m.Text, "/reject") {
		t.Errorf("the mail has no reject link:\n%s", m.Text)
	}
	pctx := langBrowser(t, chromium, w)
	showMail(t, pctx, s, m, "Partner Co", "people-"+w.lang+"-partner-mail")

	// Partnerco's admin follows the link: signed in at the IdP, back on
	// the invitation, in the same language.
	signIn(t, pctx, link, "partner", "#invitation-answer")
	if h, _ := text(pctx, "h1"); h != w.partnerTitle {
		t.Errorf("invitation page heading %q, want %q", h, w.partnerTitle)
	}
	if rows, _ := text(pctx, "#invitation"); !strings.Contains(rows, "Acme Dental") || !strings.Contains(rows, w.reviews) {
		t.Errorf("the invitation shows %q", rows)
	}
	screenshot(t, pctx, "people-"+w.lang+"-partner-invitation")
	var notice string
	step(t, pctx, "accept",
		chromedp.Click("#invitation-answer", chromedp.ByID),
		chromedp.WaitVisible("#invitation-notice", chromedp.ByID),
		chromedp.Text("#invitation-notice", &notice, chromedp.ByID))
	if !strings.HasPrefix(notice, w.accepted) {
		t.Errorf("after accepting: %q", notice)
	}

	// The granted product passes to the app as the partner's user; a
	// product not granted does not.
	step(t, pctx, "acme's reviews as partnerco", chromedp.Navigate(s.gateway+"/t/acme/reviews"), chromedp.WaitVisible("#user", chromedp.ByID))
	if u, _ := text(pctx, "#user"); u != "partner" {
		t.Errorf("the app thinks the user is %q", u)
	}
	if tn, _ := text(pctx, "#tenant"); tn != "acme" {
		t.Errorf("the app got tenant %q", tn)
	}
	var body string
	step(t, pctx, "acme's billing as partnerco", chromedp.Navigate(s.gateway+"/t/acme/billing"), chromedp.Text("body", &body, chromedp.ByQuery))
	if hasAppUser(pctx) {
		t.Errorf("billing, not granted to partnerco, reached the app: %.300q", body)
	}
}

func memberInvitationFlow(t *testing.T, chromium string, s stack, w peopleWords) {
	octx := langBrowser(t, chromium, w)
	signIn(t, octx, s.gateway+"/.portero/admin/", "owner", "#members-acme")
	var flash, invLang string
	step(t, octx, "invite nora@acme.example with the accounting profile",
		chromedp.Click("#members-acme", chromedp.ByID),
		chromedp.WaitVisible("#invite-member", chromedp.ByID),
		chromedp.Click("#invite-member", chromedp.ByID),
		chromedp.WaitVisible("#member-form", chromedp.ByID),
		chromedp.SendKeys("#name", "Nora Díaz", chromedp.ByID),
		chromedp.SendKeys("#email", "nora@acme.example", chromedp.ByID),
		chromedp.SetValue("#role", "account_manager", chromedp.ByID),
		chromedp.SetValue("#profile", "accounting", chromedp.ByID),
		chromedp.Value("#lang", &invLang, chromedp.ByID),
		chromedp.Click("#save-member", chromedp.ByID),
		chromedp.WaitVisible(`#invitations tr[data-invitation="nora@acme.example"]`, chromedp.ByQuery),
		chromedp.Text("#flash", &flash, chromedp.ByID))
	if invLang != w.lang {
		t.Errorf("the invitation's language is %q, want the console's %q", invLang, w.lang)
	}
	if flash != w.invitedFlash {
		t.Errorf("flash %q, want %q", flash, w.invitedFlash)
	}

	m := waitMail(t, s, "nora@acme.example", w.memberSubject)
	link := mailLink(t, s, m, memberLink)
	nctx := langBrowser(t, chromium, w)
	showMail(t, nctx, s, m, "nora@acme.example", "people-"+w.lang+"-member-mail")

	// Nora follows the link, signs in at the IdP (which verified
	// nora@acme.example), sees what she is offered and accepts.
	signIn(t, nctx, link, "nora", "#invitation-answer")
	if h, _ := text(nctx, "h1"); h != w.memberTitle {
		t.Errorf("invitation page heading %q, want %q", h, w.memberTitle)
	}
	if rows, _ := text(nctx, "#invitation"); !strings.Contains(rows, "Acme Dental") || !strings.Contains(rows, w.accounting) {
		t.Errorf("the invitation shows %q", rows)
	}
	if who, _ := text(nctx, "#invitation-user"); who != "nora@acme.example" {
		t.Errorf("signed in as %q", who)
	}
	screenshot(t, nctx, "people-"+w.lang+"-member-invitation")
	var loc string
	step(t, nctx, "accept",
		chromedp.Click("#invitation-answer", chromedp.ByID),
		chromedp.WaitVisible("#user", chromedp.ByID),
		chromedp.Location(&loc))
	if loc != s.gateway+"/t/acme/" {
		t.Errorf("after accepting, at %s", loc)
	}
	if u, _ := text(nctx, "#user"); u != "nora" {
		t.Errorf("the app thinks the user is %q", u)
	}

	// The accounting profile: billing passes, reviews is refused.
	var headers, body string
	step(t, nctx, "billing as Nora",
		chromedp.Navigate(s.gateway+"/t/acme/billing"),
		chromedp.WaitVisible("#user", chromedp.ByID),
		chromedp.Text("#headers", &headers, chromedp.ByID))
	if !strings.Contains(headers, `"billing":"edit"`) || !strings.Contains(headers, "account_manager") {
		t.Errorf("billing: the app got these headers: %q", headers)
	}
	step(t, nctx, "reviews as Nora", chromedp.Navigate(s.gateway+"/t/acme/reviews"), chromedp.Text("body", &body, chromedp.ByQuery))
	if hasAppUser(nctx) || !strings.Contains(body, "feature.not_granted") {
		t.Errorf("reviews, outside the accounting profile: %.300q", body)
	}

	// The link worked once.
	var answerable bool
	step(t, nctx, "the link again", chromedp.Navigate(link), chromedp.WaitVisible("#invitation-notice", chromedp.ByID),
		chromedp.Evaluate(`document.getElementById('invitation-answer') !== null`, &answerable))
	if answerable {
		t.Errorf("the used invitation can be answered again")
	}
}

func masterSessionFlow(t *testing.T, chromium string, s stack, w peopleWords) {
	actx := newBrowser(t, chromium)
	signIn(t, actx, s.gateway+"/.portero/master-access", "admin", "#master-form")
	ticket := "SUP-" + strings.ToUpper(w.lang) + "51"
	step(t, actx, "start master access to acme",
		chromedp.SetValue("#tenant", "acme", chromedp.ByID),
		chromedp.SendKeys("#reason", "Ticket "+ticket+": the owner cannot publish replies", chromedp.ByID),
		chromedp.SetValue("#duration", "15m", chromedp.ByID),
		chromedp.Click("#master-start", chromedp.ByID),
		chromedp.WaitVisible("#impersonation", chromedp.ByID))

	// acme's owner is told by e-mail (the tenant's owner e-mail; told by
	// default).
	started := waitMail(t, s, "olivia@acme.example", "Acme Dental")
	if !strings.Contains(started.Text, "admin") {
		t.Errorf("the owner's notice does not name the admin:\n%s", started.Text)
	}

	octx := langBrowser(t, chromium, w)
	signIn(t, octx, s.gateway+"/.portero/admin/", "owner", "#history-acme")
	var open string
	step(t, octx, "acme's history",
		chromedp.Click("#history-acme", chromedp.ByID),
		chromedp.WaitVisible("#open-sessions", chromedp.ByID),
		chromedp.Text("#open-sessions", &open, chromedp.ByID))
	if !strings.Contains(open, "admin") || !strings.Contains(open, ticket) {
		t.Errorf("open sessions: %q", open)
	}
	screenshot(t, octx, "people-"+w.lang+"-master-sessions")
	var past string
	step(t, octx, "end the support session",
		chromedp.Click("#open-sessions button.danger", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-question", chromedp.ByID),
		chromedp.Click("#confirm-yes", chromedp.ByID),
		chromedp.WaitVisible("#no-open-sessions", chromedp.ByID),
		chromedp.Text("#past-sessions", &past, chromedp.ByID))
	if !strings.Contains(past, w.revokedPast) || !strings.Contains(past, w.revokedBy) || !strings.Contains(past, ticket) {
		t.Errorf("past sessions: %q", past)
	}

	var body string
	step(t, actx, "the admin's next request", chromedp.Navigate(s.gateway+"/t/acme/"), chromedp.Text("body", &body, chromedp.ByQuery))
	if hasAppUser(actx) || strings.Contains(body, "Support access") || !strings.Contains(body, "member.none") {
		t.Errorf("after the owner ended it, acme shows the admin: %.300q", body)
	}
}
