package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"maps"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"
)

// Kinds are the messages Portero sends, each with a template per
// language; Fields are the data each kind's template reads (the contract
// with the code that queues it). A field ending in _path is a path on the
// gateway: the sender adds the same name ending in _url, prefixed with
// mail.base_url. Optional: a partner invitation's expires_at (absent: no
// expiry is mentioned) and its partnership_expires_at (the partnership's
// own end, shown when present); ticket, name and profile may be empty.
var Kinds = map[string][]string{
	"partner_invitation":           {"tenant_name", "partner_name", "scope", "products", "wallet", "accept_path", "reject_path", "expires_at", "invited_by"},
	"partner_invitation_resent":    {"tenant_name", "partner_name", "scope", "products", "wallet", "accept_path", "reject_path", "expires_at", "invited_by"},
	"partner_invitation_withdrawn": {"tenant_name", "partner_name"},
	"partnership_revoked":          {"tenant_name", "partner_name"},
	"member_invitation":            {"tenant_name", "name", "role", "profile", "accept_path", "expires_at", "invited_by"},
	"master_access_started":        {"tenant_name", "admin", "reason", "ticket", "mode", "expires_at"},
	"master_access_ended":          {"tenant_name", "admin", "ended_at", "end_reason"},
}

// Langs are the languages of the templates; DefaultLang is used for a
// message in another language or none.
var Langs = []string{"en", "es"}

// DefaultLang is the language a message falls back to.
const DefaultLang = "en"

//go:embed templates
var templateFS embed.FS

// labels translate the values templates show (label "role" .role); a value
// not listed is shown as it is.
var labels = map[string]map[string]map[string]string{
	"en": {
		"scope":      {"full": "full access to the account", "limited": "limited to some products"},
		"mode":       {"full": "full access", "read_only": "read only"},
		"end_reason": {"ended": "the administrator ended it", "logout": "the administrator signed out", "revoked": "it was revoked", "expired": "its time ran out"},
		"role":       {"administrator": "administrator", "multi_account_manager": "multi-account manager", "account_manager": "account manager", "location_manager": "location manager"},
	},
	"es": {
		"scope":      {"full": "acceso completo a la cuenta", "limited": "limitado a algunos productos"},
		"mode":       {"full": "acceso completo", "read_only": "solo lectura"},
		"end_reason": {"ended": "el administrador lo terminó", "logout": "el administrador cerró la sesión", "revoked": "fue revocado", "expired": "se agotó su tiempo"},
		"role":       {"administrator": "administrador", "multi_account_manager": "gestor multicuenta", "account_manager": "gestor de cuenta", "location_manager": "gestor de local"},
	},
}

var months = map[string][]string{
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	"es": {"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"},
}

// funcs are the template functions of one language.
func funcs(lang string) map[string]any {
	return map[string]any{
		// date shows an RFC 3339 time in UTC, in the language's words.
		"date": func(v any) (string, error) {
			s, _ := v.(string)
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return "", fmt.Errorf("date: %q is not an RFC 3339 time", s)
			}
			t = t.UTC()
			m := months[lang][t.Month()-1]
			if lang == "es" {
				return fmt.Sprintf("%d de %s de %d, %s UTC", t.Day(), m, t.Year(), t.Format("15:04")), nil
			}
			return fmt.Sprintf("%d %s %d, %s UTC", t.Day(), m, t.Year(), t.Format("15:04")), nil
		},
		// join lists values with commas.
		"join": func(v any) string {
			var out []string
			switch l := v.(type) {
			case []any:
				for _, x := range l {
					out = append(out, fmt.Sprint(x))
				}
			case []string:
				out = l
			case nil:
			default:
				out = []string{fmt.Sprint(l)}
			}
			if len(out) == 0 {
				return "—"
			}
			return strings.Join(out, ", ")
		},
		"label": func(group string, v any) string {
			s := fmt.Sprint(v)
			if l, ok := labels[lang][group][s]; ok {
				return l
			}
			return s
		},
		"button": func(url any, label, color string) map[string]any {
			return map[string]any{"url": url, "label": label, "color": color}
		},
	}
}

// kindTemplates are one kind's templates in one language.
type kindTemplates struct {
	text *texttemplate.Template // "subject" and "text"
	html *htmltemplate.Template // "layout"
}

// Templates are every kind's templates in every language, parsed once.
type Templates struct {
	t map[string]map[string]kindTemplates // lang → kind
}

// ParseTemplates parses the embedded templates. A missing key in the data
// is an error when rendering, never "<no value>".
func ParseTemplates() (*Templates, error) {
	out := &Templates{t: map[string]map[string]kindTemplates{}}
	for _, lang := range Langs {
		out.t[lang] = map[string]kindTemplates{}
		for _, kind := range slices.Sorted(maps.Keys(Kinds)) {
			dir := "templates/" + lang + "/"
			tt, err := texttemplate.New(kind).Funcs(funcs(lang)).Option("missingkey=error").ParseFS(templateFS, dir+"footer.txt", dir+kind+".txt")
			if err != nil {
				return nil, fmt.Errorf("mail template %s/%s: %w", lang, kind, err)
			}
			ht, err := htmltemplate.New(kind).Funcs(funcs(lang)).Option("missingkey=error").ParseFS(templateFS, dir+"layout.html", dir+kind+".html")
			if err != nil {
				return nil, fmt.Errorf("mail template %s/%s: %w", lang, kind, err)
			}
			for _, name := range []string{"subject", "text"} {
				if tt.Lookup(name) == nil {
					return nil, fmt.Errorf("mail template %s/%s.txt defines no %q", lang, kind, name)
				}
			}
			if ht.Lookup("body") == nil {
				return nil, fmt.Errorf("mail template %s/%s.html defines no \"body\"", lang, kind)
			}
			out.t[lang][kind] = kindTemplates{text: tt, html: ht}
		}
	}
	return out, nil
}

// Rendered is a message's subject and bodies.
type Rendered struct {
	Lang    string
	Subject string
	Text    string
	HTML    string
}

// Render renders kind in lang (DefaultLang when lang has no templates)
// with data, which Render does not change. baseURL prefixes each *_path
// value as the matching *_url; to is the recipient the footer names.
func (t *Templates) Render(kind, lang, baseURL, to string, data map[string]any) (*Rendered, error) {
	if _, ok := t.t[lang]; !ok {
		lang = DefaultLang
	}
	k, ok := t.t[lang][kind]
	if !ok {
		return nil, fmt.Errorf("no template for the kind %q", kind)
	}
	d := make(map[string]any, len(data)+4)
	for key, v := range data {
		d[key] = v
		if name, ok := strings.CutSuffix(key, "_path"); ok {
			p, _ := v.(string)
			if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
				return nil, fmt.Errorf("%s: %q is not a path on the gateway", key, p)
			}
			d[name+"_url"] = strings.TrimRight(baseURL, "/") + p
		}
	}
	d["to"] = to
	var subject, text, html bytes.Buffer
	if err := k.text.ExecuteTemplate(&subject, "subject", d); err != nil {
		return nil, err
	}
	r := &Rendered{Lang: lang, Subject: strings.Join(strings.Fields(subject.String()), " ")}
	d["subject"] = r.Subject
	if err := k.text.ExecuteTemplate(&text, "text", d); err != nil {
		return nil, err
	}
	if err := k.html.ExecuteTemplate(&html, "layout", d); err != nil {
		return nil, err
	}
	r.Text, r.HTML = strings.TrimSpace(text.String())+"\n", html.String()
	return r, nil
}
