package i18n

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every key of one catalogue is in the other, with the same fmt verbs.
func TestCataloguesMatch(t *testing.T) {
	for _, a := range Languages {
		for _, b := range Languages {
			for _, key := range Keys(a.Code) {
				if !Has(b.Code, key) {
					t.Errorf("%s is in %s.json but not in %s.json", key, a.Code, b.Code)
					continue
				}
				if va, vb := verbs(T(a.Code, key)), verbs(T(b.Code, key)); va != vb {
					t.Errorf("%s: %s.json has verbs %q, %s.json %q", key, a.Code, va, b.Code, vb)
				}
			}
		}
	}
	for _, key := range Keys(Spanish) {
		if strings.TrimSpace(T(Spanish, key)) == "" {
			t.Errorf("%s is empty in es.json", key)
		}
	}
}

// verbs are a format's fmt verbs, in order (%% excluded).
func verbs(format string) string {
	var out []string
	for i := 0; i < len(format)-1; i++ {
		if format[i] != '%' {
			continue
		}
		j := i + 1
		for j < len(format) && strings.ContainsRune("[]0123456789+-# .", rune(format[j])) {
			j++
		}
		if j < len(format) && format[j] != '%' {
			out = append(out, format[i:j+1])
		}
		i = j
	}
	return strings.Join(out, " ")
}

func TestLanguageOfARequest(t *testing.T) {
	for _, c := range []struct{ cookie, accept, want string }{
		{"", "", English},
		{"", "es-ES,es;q=0.9,en;q=0.8", Spanish},
		{"", "es-MX", Spanish},
		{"", "de-DE,de;q=0.9", English},
		{"", "de-DE,es;q=0.5", Spanish},
		{"", "en-GB,es;q=0.5", English},
		{"en", "es", English},
		{"es", "en-US", Spanish},
		{"fr", "es", Spanish}, // a cookie naming no language of ours is ignored
		{"", "not a header;;", English},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.accept != "" {
			r.Header.Set("Accept-Language", c.accept)
		}
		if c.cookie != "" {
			r.Header.Set("Cookie", CookieName+"="+c.cookie)
		}
		if got := Of(r); got != c.want {
			t.Errorf("cookie %q, Accept-Language %q: %s, want %s", c.cookie, c.accept, got, c.want)
		}
	}
}

func TestTextsAndFallbacks(t *testing.T) {
	if got := T(Spanish, "tenants.count", 1, 25, 32); got != "1–25 de 32" {
		t.Errorf("formatted: %q", got)
	}
	if got := T(Spanish, "no.such.key"); got != "no.such.key" {
		t.Errorf("missing key: %q", got)
	}
	if got := Or(Spanish, "feature.no_such_feature", "Policy title"); got != "Policy title" {
		t.Errorf("fallback: %q", got)
	}
	if got := Or(Spanish, "feature.reviews", "Reviews"); got != "Reseñas" {
		t.Errorf("translated: %q", got)
	}
}

// Refusal pages name every status Portero answers with in both languages.
func TestStatusTextsInBothLanguages(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 405, 409, 411, 413, 415, 429, 431, 500, 502, 503, 504} {
		key := fmt.Sprintf("status.%d", code)
		if !Has(English, key) || !Has(Spanish, key) || T(Spanish, key) == T(English, key) {
			t.Errorf("%s: en %q es %q", key, T(English, key), T(Spanish, key))
		}
	}
}
