package authn

import "testing"

func TestSafeReturnTarget(t *testing.T) {
	allowed := []string{"app.example.com", "*.apps.example.com"}
	ok := map[string]string{
		"":                                     "/",
		"/":                                    "/",
		"/orders?page=2#top":                   "/orders?page=2#top",
		"/t/acme/settings":                     "/t/acme/settings",
		"/a%20b":                               "/a%20b",
		"https://app.example.com/x":            "https://app.example.com/x",
		"https://acme.apps.example.com/orders": "https://acme.apps.example.com/orders",
		"https://ACME.apps.example.com:8443/":  "https://ACME.apps.example.com:8443/",
		"http://app.example.com/":              "http://app.example.com/",
	}
	for in, want := range ok {
		if got, valid := SafeReturnTarget(in, allowed); !valid || got != want {
			t.Errorf("SafeReturnTarget(%q) = %q %v, want %q", in, got, valid, want)
		}
	}
	hostile := []string{
		"//evil.com",
		"//evil.com/path",
		"///evil.com",
		"/\\evil.com",
		"\\\\evil.com",
		"/%2fevil.com",
		"/%2F%2Fevil.com",
		"%2f%2fevil.com",
		"/%5cevil.com",
		"/%5Cevil.com",
		"https:evil.com",
		"https:/evil.com",
		"http:evil.com",
		"javascript:alert(1)",
		"JavaScript:alert(1)",
		"data:text/html,<script>alert(1)</script>",
		"https://evil.com",
		"https://evil.com/app.example.com",
		"https://app.example.com.evil.com/",
		"https://app.example.com@evil.com/",
		"https://user:pass@app.example.com/",
		"https://evil.com#@app.example.com",
		"https://evil.com\\@app.example.com",
		"https://apps.example.com/",
		"https://a.b.apps.example.com/",
		"https://app.example.com./",
		"ftp://app.example.com/",
		"/path\r\nSet-Cookie: x=1",
		"/path%0d%0aSet-Cookie:x",
		"/path\x00",
		"/path%00",
		"\t//evil.com",
		" //evil.com",
		"/\t/evil.com",
		"evil.com",
		"app.example.com/x",
	}
	for _, in := range hostile {
		if got, valid := SafeReturnTarget(in, allowed); valid {
			t.Errorf("SafeReturnTarget(%q) accepted as %q", in, got)
		}
	}
}
