// Package i18n holds the admin console's texts in English and Spanish, one
// catalogue per language (en.json, es.json: a key to a fmt format), and
// picks the language of a request: the user's choice (the portero_lang
// cookie, set by the console's language switch), else the browser's
// Accept-Language, else English.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"golang.org/x/text/language"
)

// Languages the console speaks, the first the default.
const (
	English = "en"
	Spanish = "es"
)

// Languages lists them with their own names, for the language switch.
var Languages = []struct{ Code, Name string }{{English, "English"}, {Spanish, "Español"}}

// CookieName remembers the user's choice, on the paths under /.portero/.
const CookieName = "portero_lang"

//go:embed en.json es.json
var files embed.FS

var catalogues = map[string]map[string]string{}

func init() {
	for _, l := range Languages {
		b, err := files.ReadFile(l.Code + ".json")
		if err != nil {
			panic(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("i18n: %s.json: %v", l.Code, err))
		}
		catalogues[l.Code] = m
	}
}

var matcher = language.NewMatcher([]language.Tag{language.English, language.Spanish})

// Supported says whether code is a language the console speaks.
func Supported(code string) bool {
	_, ok := catalogues[code]
	return ok
}

// FromAcceptLanguage is the language an Accept-Language header asks for
// (English when it names none of ours).
func FromAcceptLanguage(header string) string {
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil || len(tags) == 0 {
		return English
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return English
	}
	return Languages[i].Code
}

// Of is the language of r: the cookie's when it names one of ours, else
// the Accept-Language header's.
func Of(r *http.Request) string {
	if c, err := r.Cookie(CookieName); err == nil && Supported(c.Value) {
		return c.Value
	}
	return FromAcceptLanguage(r.Header.Get("Accept-Language"))
}

// T is key's text in lang, formatted with args; a key missing in lang falls
// back to English, and a key missing there is shown as itself (the tests
// see that none is).
func T(lang, key string, args ...any) string {
	s, ok := catalogues[lang][key]
	if !ok {
		if s, ok = catalogues[English][key]; !ok {
			return key
		}
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// Has says whether lang's catalogue has key.
func Has(lang, key string) bool {
	_, ok := catalogues[lang][key]
	return ok
}

// Keys are lang's keys, sorted.
func Keys(lang string) []string {
	return slices.Sorted(maps.Keys(catalogues[lang]))
}

// Or is key's text in lang when a catalogue has it, else fallback: for
// names the policy defines (features, profiles, roles), which a catalogue
// may translate and otherwise shows as the policy gives them.
func Or(lang, key, fallback string) string {
	if Has(lang, key) || Has(English, key) {
		return T(lang, key)
	}
	return fallback
}
