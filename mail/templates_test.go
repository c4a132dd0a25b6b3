package mail

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// sample is data for every field of every kind.
func sample(kind string) map[string]any {
	all := map[string]any{
		"tenant_name": "Acme & Co", "partner_name": "Partner <Co>", "scope": "limited", "products": []any{"reviews", "ads"}, "wallet": true,
		"accept_path": "/.portero/invitations/inv_1/accept?token=t0k", "reject_path": "/.portero/invitations/inv_1/reject?token=t0k",
		"expires_at": "2026-12-16T09:00:00Z", "invited_by": "Olivia Owner", "name": "Nina New", "role": "account_manager",
		"profile": "accounting", "admin": "sam", "reason": "ticket 42: a broken listing", "ticket": "SUP-42", "mode": "read_only",
		"ended_at": "2026-12-02T10:30:00Z", "end_reason": "revoked", "partnership_expires_at": "2027-06-30T00:00:00Z",
	}
	d := map[string]any{}
	for _, f := range Kinds[kind] {
		d[f] = all[f]
	}
	if strings.HasPrefix(kind, "partner_invitation") && kind != "partner_invitation_withdrawn" {
		d["partnership_expires_at"] = all["partnership_expires_at"] // optional: a partnership with an end
	}
	return d
}

// Every kind renders in every language from exactly its contract's
// fields: no field missing, no "<no value>", links made absolute,
// HTML escaped.
func TestEveryKindRendersInEveryLanguage(t *testing.T) {
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]string{}
	for _, kind := range slices.Sorted(maps.Keys(Kinds)) {
		for _, lang := range Langs {
			r, err := tpl.Render(kind, lang, "https://gw.example.com/", "pat@partner.example", sample(kind))
			if err != nil {
				t.Errorf("%s/%s: %v", lang, kind, err)
				continue
			}
			for part, s := range map[string]string{"subject": r.Subject, "text": r.Text, "html": r.HTML} {
				if strings.Contains(s, "<no value>") || strings.Contains(s, "%!") || strings.TrimSpace(s) == "" {
					t.Errorf("%s/%s %s: %q", lang, kind, part, s)
				}
			}
			if !strings.Contains(r.Text, "Acme & Co") || !strings.Contains(r.HTML, "Acme &amp; Co") || strings.Contains(r.HTML, "Partner <Co>") {
				t.Errorf("%s/%s: names not shown or not escaped:\n%s", lang, kind, r.HTML)
			}
			if _, ok := sample(kind)["accept_path"]; ok {
				url := "https://gw.example.com/.portero/invitations/inv_1/accept?token=t0k"
				if !strings.Contains(r.Text, url) || !strings.Contains(r.HTML, `href="`+strings.ReplaceAll(url, "&", "&amp;")) {
					t.Errorf("%s/%s: no accept link %s:\n%s\n%s", lang, kind, url, r.Text, r.HTML)
				}
			}
			if strings.Contains(r.Subject, "\n") {
				t.Errorf("%s/%s: subject on several lines: %q", lang, kind, r.Subject)
			}
			subjects[lang+"/"+kind] = r.Subject
		}
		if subjects["en/"+kind] == subjects["es/"+kind] {
			t.Errorf("%s: the Spanish subject is the English one: %q", kind, subjects["en/"+kind])
		}
	}
	t.Logf("subjects: %v", subjects)
}

// A field the contract names but the data lacks is an error, not an
// empty or "<no value>" text; an unknown language falls back to English.
func TestMissingFieldIsAnError(t *testing.T) {
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range slices.Sorted(maps.Keys(Kinds)) {
		for _, f := range Kinds[kind] {
			d := sample(kind)
			if f == "ticket" || f == "products" || f == "scope" || f == "wallet" || f == "profile" || f == "name" ||
				(f == "expires_at" && strings.HasPrefix(kind, "partner_invitation")) {
				continue // optional in the text (with, if): their absence is checked by the contract, not the template
			}
			delete(d, f)
			if _, err := tpl.Render(kind, "es", "https://gw.example.com", "x@example.com", d); err == nil {
				t.Errorf("%s without %s rendered", kind, f)
			}
		}
	}
	// A partner invitation without an expiry says none; the
	// partnership's own end is shown when it has one.
	d := sample("partner_invitation")
	delete(d, "expires_at")
	if r, err := tpl.Render("partner_invitation", "en", "https://gw.example.com", "x@example.com", d); err != nil ||
		strings.Contains(r.Text, "expires on") || !strings.Contains(r.Text, "Partnership ends: 30 June 2027, 00:00 UTC") || !strings.Contains(r.HTML, "30 June 2027") {
		t.Fatalf("without expires_at: %v\n%v", err, r)
	}
	r, err := tpl.Render("partnership_revoked", "fr", "https://gw.example.com", "x@example.com", sample("partnership_revoked"))
	if err != nil || r.Lang != "en" || !strings.Contains(r.Subject, "ended its partnership") {
		t.Fatalf("fallback: %+v %v", r, err)
	}
	if _, err := tpl.Render("member_invitation", "en", "https://gw.example.com", "x@example.com",
		map[string]any{"tenant_name": "A", "name": "", "role": "r", "profile": "", "accept_path": "https://evil.example/", "expires_at": "2026-12-16T09:00:00Z", "invited_by": "o"}); err == nil {
		t.Fatal("an absolute URL in accept_path was taken as a path")
	}
	if _, err := tpl.Render("nope", "en", "", "", nil); err == nil {
		t.Fatal("an unknown kind rendered")
	}
}
