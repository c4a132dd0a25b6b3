package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The console in both languages, through the demo stack:
//   - the owner's browser asks for Spanish (Accept-Language): the console
//     answers in Spanish; the owner invites a member by e-mail, picking
//     per-field edit rights, and finds an agency by name;
//   - the admin, in English, takes master access to acme; the owner sees
//     the session on acme's history page and ends it, and the admin is
//     refused in acme's app from then on;
//   - the admin switches the console to Spanish with the layout's switch
//     and deletes globex, typing its id to confirm (a wrong id first), then
//     switches back to English.
//
// Screenshots of the Spanish pages go to e2e/artifacts/ (the README shows
// them from docs/screenshots/).
func TestBrowserConsoleInSpanish(t *testing.T) {
	chromium := prerequisites(t)
	s := startStack(t)

	octx := newBrowser(t, chromium)
	if err := chromedp.Run(octx, network.Enable(), network.SetExtraHTTPHeaders(network.Headers{"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"})); err != nil {
		t.Fatal(err)
	}
	signIn(t, octx, s.gateway+"/.portero/admin/", "owner", "#members-acme")
	var lang, heading string
	step(t, octx, "the home page in Spanish", chromedp.Evaluate(`document.documentElement.lang`, &lang), chromedp.Text("main h2", &heading, chromedp.ByQuery))
	if lang != "es" || heading != "Tus empresas" {
		t.Fatalf("home: lang %q, heading %q", lang, heading)
	}
	if out, _ := text(octx, "#sign-out"); out != "Cerrar sesión" {
		t.Errorf("sign-out link %q", out)
	}
	screenshot(t, octx, "console-es-home")

	step(t, octx, "invite a member by e-mail",
		chromedp.Click("#members-acme", chromedp.ByID),
		chromedp.WaitVisible("#invite-member", chromedp.ByID),
		chromedp.Click("#invite-member", chromedp.ByID),
		chromedp.WaitVisible("#member-form", chromedp.ByID),
		chromedp.SendKeys("#name", "Nora Díaz", chromedp.ByID),
		chromedp.SendKeys("#email", "nora@acme.example", chromedp.ByID),
		chromedp.SetValue("#role", "location_manager", chromedp.ByID),
		chromedp.SendKeys("#locations", "l1", chromedp.ByID),
		chromedp.SetValue("#feature-profile_listings", "edit", chromedp.ByID),
		chromedp.Click("#field-profile_listings-phone", chromedp.ByID),
		chromedp.Click("#field-profile_listings-hours", chromedp.ByID))
	screenshot(t, octx, "console-es-invite-form")
	var flash string
	step(t, octx, "send the invitation",
		chromedp.Click("#save-member", chromedp.ByID),
		chromedp.WaitVisible(`#invitations tr[data-invitation="nora@acme.example"]`, chromedp.ByQuery),
		chromedp.Text("#flash", &flash, chromedp.ByID))
	if flash != "Invitación enviada a nora@acme.example." {
		t.Errorf("flash %q", flash)
	}
	screenshot(t, octx, "console-es-members")

	var found string
	step(t, octx, "find an agency by name",
		chromedp.Navigate(s.gateway+"/.portero/admin/t/acme/partners"),
		chromedp.WaitVisible("#partner-q", chromedp.ByID),
		chromedp.SendKeys("#partner-q", "Par", chromedp.ByID),
		chromedp.Click("#partner-search-button", chromedp.ByID),
		chromedp.WaitVisible("#pick-partnerco", chromedp.ByID),
		chromedp.Text("#partner-results", &found, chromedp.ByID))
	if !strings.Contains(found, "Partner Co") {
		t.Errorf("search results: %q", found)
	}
	screenshot(t, octx, "console-es-partner-search")

	// The admin enters acme through master access.
	actx := newBrowser(t, chromium)
	signIn(t, actx, s.gateway+"/.portero/admin/", "admin", "#tenants")
	step(t, actx, "master access to acme",
		chromedp.Focus("#menu-button-acme", chromedp.ByID),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#menu-acme", chromedp.ByID),
		chromedp.KeyEvent(kb.End),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#master-dialog", chromedp.ByID),
		chromedp.SendKeys("#master-reason", "Ticket SUP-88: reviews do not load for the owner", chromedp.ByID),
		chromedp.SendKeys("#master-ticket", "SUP-88", chromedp.ByID),
		chromedp.Click("#master-dialog-start", chromedp.ByID),
		chromedp.WaitVisible("#impersonation", chromedp.ByID))

	// The owner sees it on acme's history and ends it.
	var open string
	step(t, octx, "acme's history",
		chromedp.Navigate(s.gateway+"/.portero/admin/"),
		chromedp.WaitVisible("#history-acme", chromedp.ByID),
		chromedp.Click("#history-acme", chromedp.ByID),
		chromedp.WaitVisible("#open-sessions", chromedp.ByID),
		chromedp.Text("#open-sessions", &open, chromedp.ByID))
	if !strings.Contains(open, "admin") || !strings.Contains(open, "SUP-88") || !strings.Contains(open, "completo") {
		t.Errorf("open sessions: %q", open)
	}
	screenshot(t, octx, "console-es-history")
	var question, past string
	step(t, octx, "end the support session",
		chromedp.Click("#open-sessions button.danger", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-question", chromedp.ByID),
		chromedp.Text("#confirm-question", &question, chromedp.ByID),
		chromedp.Click("#confirm-yes", chromedp.ByID),
		chromedp.WaitVisible("#no-open-sessions", chromedp.ByID),
		chromedp.Text("#past-sessions", &past, chromedp.ByID))
	if !strings.HasPrefix(question, "¿Cortar la sesión de acceso de soporte") {
		t.Errorf("question %q", question)
	}
	if !strings.Contains(past, "revocada") || !strings.Contains(past, "por owner") {
		t.Errorf("past sessions: %q", past)
	}
	var body string
	step(t, actx, "the admin is out of acme", chromedp.Navigate(s.gateway+"/t/acme/"), chromedp.Text("body", &body, chromedp.ByQuery))
	if strings.Contains(body, "Support access") || !strings.Contains(body, "member.none") {
		t.Errorf("after the owner ended it, acme shows the admin: %.300q", body)
	}

	// The admin switches to Spanish and deletes globex.
	var title string
	step(t, actx, "switch to Spanish",
		chromedp.Navigate(s.gateway+"/.portero/admin/tenants"),
		chromedp.WaitVisible("#lang-es", chromedp.ByID),
		chromedp.Click("#lang-es", chromedp.ByID),
		// The English page has #tenants too: wait for the page in Spanish.
		chromedp.WaitVisible(`#lang-es[aria-current="true"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#tenants", chromedp.ByID),
		chromedp.Text("h1", &title, chromedp.ByQuery))
	if title != "Empresas" {
		t.Errorf("tenants page after the switch: %q", title)
	}
	var mismatch string
	// The menu by keyboard: Enter opens it, End goes to Master access,
	// ↑ to Delete tenant just above it.
	step(t, actx, "choose Delete tenant in globex's menu",
		chromedp.Focus("#menu-button-globex", chromedp.ByID),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#menu-globex", chromedp.ByID),
		chromedp.KeyEvent(kb.End),
		chromedp.KeyEvent(kb.ArrowUp),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#confirm-typed", chromedp.ByID))
	screenshot(t, actx, "console-es-delete-tenant")
	step(t, actx, "a wrong id",
		chromedp.SendKeys("#confirm-typed", "globe", chromedp.ByID),
		chromedp.Click("#confirm-yes", chromedp.ByID),
		chromedp.WaitVisible(".confirm .err", chromedp.ByQuery),
		chromedp.Text(".confirm .err", &mismatch, chromedp.ByQuery))
	if mismatch != "Escribe el id de la empresa, globex, tal cual." {
		t.Errorf("mismatch %q", mismatch)
	}
	var deleted, count string
	step(t, actx, "the right id",
		chromedp.SendKeys("#confirm-typed", "globex", chromedp.ByID), // the refused page starts empty
		chromedp.Click("#confirm-yes", chromedp.ByID),
		chromedp.WaitVisible("#flash", chromedp.ByID),
		chromedp.Text("#flash", &deleted, chromedp.ByID),
		chromedp.Text("#tenant-count", &count, chromedp.ByID))
	if deleted != "La empresa globex se ha eliminado." || !strings.Contains(count, "de 1") {
		t.Errorf("after deleting: %q, %q", deleted, count)
	}
	step(t, actx, "back to English",
		chromedp.Click("#lang-en", chromedp.ByID),
		chromedp.WaitVisible(`#lang-en[aria-current="true"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#tenants", chromedp.ByID),
		chromedp.Text("h1", &title, chromedp.ByQuery))
	if title != "Tenants" {
		t.Errorf("after switching back: %q", title)
	}
}
