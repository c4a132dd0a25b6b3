package deny

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A refusal page speaks the browser's language; JSON answers and the
// reason and decision id stay the same in every language.
func TestRefusalPageLanguage(t *testing.T) {
	for _, tc := range []struct{ accept, cookie, want, notWant string }{
		{"es-MX,es;q=0.9", "", "Portero no ha dejado pasar esta petición.", "did not let"},
		{"en-GB", "", "Portero did not let this request through.", "no ha dejado"},
		{"es", "en", "Forbidden", "Prohibido"}, // the console's choice wins
		{"", "es", "<h1>Prohibido</h1>", "Forbidden"},
	} {
		r := httptest.NewRequest("GET", "/t/acme/", nil)
		r.Header.Set("Accept-Language", tc.accept)
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "portero_lang", Value: tc.cookie})
		}
		w := httptest.NewRecorder()
		Write(w, r, false, Denial{Status: 403, Reason: "member.none", ID: "d-1"})
		body := w.Body.String()
		if w.Code != 403 || !strings.Contains(body, tc.want) || strings.Contains(body, tc.notWant) ||
			!strings.Contains(body, "<code>member.none</code>") || !strings.Contains(body, "<code>d-1</code>") {
			t.Errorf("%+v: %d %s", tc, w.Code, body)
		}
	}
	r := httptest.NewRequest("GET", "/api/x", nil)
	r.Header.Set("Accept-Language", "es")
	w := httptest.NewRecorder()
	Write(w, r, true, Denial{Status: 403, Reason: "member.none", ID: "d-2"})
	if body := w.Body.String(); !strings.Contains(body, `"error":"forbidden"`) || !strings.Contains(body, `"reason":"member.none"`) {
		t.Errorf("JSON answer: %s", body)
	}
}
