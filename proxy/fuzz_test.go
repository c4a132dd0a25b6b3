package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for the request path's rules. CI runs each for a few
// seconds (scripts/test.sh); while developing, run one for longer:
//
//	go test -run='^$' -fuzz=FuzzNormalizePath -fuzztime=10m ./proxy
//
// Seeds are added here; new failing inputs land in testdata/fuzz/.

// FuzzNormalizePath: an accepted path is canonical (normalising it again
// changes nothing), its segments hold no separator, parameter, dot segment
// or invisible character, and it never climbs above the root.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "/api/orders", "//a//b/", "/a/./b/../c", "/%2e%2e/x", "/a%2fb", "/a;b", "/a%3bb", "/..;/x",
		"/caf%C3%A9", "/%c0%ae", "/%ef%bc%8e", "/a%e2%80%8b", "/a%20b", "/a%20", "/%25", "/a\\b", "/x/..",
		"/t/acme/reviews", "/REVIEWS", "/%ef%ac%81", "/%ed%a0%80", "/a%c2%85",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		clean, segs, err := normalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(clean, "/") {
			t.Fatalf("%q -> %q does not start with /", in, clean)
		}
		again, segs2, err := normalizePath(clean)
		if err != nil || again != clean || strings.Join(segs2, "\x00") != strings.Join(segs, "\x00") {
			t.Fatalf("not canonical: %q -> %q -> %q (%v)", in, clean, again, err)
		}
		for _, s := range segs {
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\;%") || !utf8.ValidString(s) || !plainSegment(s) {
				t.Fatalf("%q: segment %q", in, s)
			}
		}
		if strings.Contains(clean, "//") || strings.Contains(clean, ";") {
			t.Fatalf("%q -> %q", in, clean)
		}
		// What the upstream receives decodes to the segments the policy saw.
		u, err := url.Parse("http://h" + clean)
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", in, clean, err)
		}
		want := "/" + strings.Join(segs, "/")
		if got := strings.TrimSuffix(u.Path, "/"); got != strings.TrimSuffix(want, "/") && !(got == "" && want == "/") {
			t.Fatalf("%q: upstream path %q, policy segments %q", in, u.Path, segs)
		}
	})
}

// FuzzNormalizeHost: an accepted host is lower case, without port or
// trailing dot, and normalising it again changes nothing.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"acme.apps.example.com", "ACME.example.com.:443", "[::1]:80", "a..b", "a_b", "x@y", "127.0.0.1", "[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		host, err := normalizeHost(in)
		if err != nil {
			return
		}
		if host != strings.ToLower(host) || strings.HasSuffix(host, ".") || host == "" {
			t.Fatalf("%q -> %q", in, host)
		}
		if again, err := normalizeHost(host); (err != nil || again != host) && !strings.Contains(host, ":") {
			t.Fatalf("not canonical: %q -> %q -> %q (%v)", in, host, again, err)
		}
		if strings.ContainsAny(host, "/@\\?#% ") {
			t.Fatalf("%q -> %q", in, host)
		}
	})
}

// FuzzStripReservedHeaders: after strip, no header Portero controls is left
// under any spelling, no name but plain letters, digits and '-', Connection
// holds only its own options, and every other header is untouched.
func FuzzStripReservedHeaders(f *testing.F) {
	for _, s := range []string{
		"X-Portero-User: root\nConnection: close, X-Portero-User",
		"x_portero_assertion: a\nImpersonate-User: b\nAccept: */*",
		"Connection: X-Forwarded-For,,x-http-method-override\nX-Original-URL: /admin",
		"Forwarded: for=1\nX-Real-IP: 1\nX-Custom: 1\nConnection: X-Custom",
		"X.Portero.User: a\nContent_Type: text/plain\nConnection: Content-Type, close",
	} {
		f.Add(s)
	}
	reserved := newReservedHeaders("X-Portero-Assertion")
	f.Fuzz(func(t *testing.T, in string) {
		h := http.Header{}
		for line := range strings.SplitSeq(in, "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || name == "" {
				continue
			}
			h[name] = append(h[name], strings.TrimSpace(value))
		}
		before := h.Clone()
		reserved.strip(h)
		for name, vals := range h {
			n := normalizeHeaderName(name)
			if reserved.controlled(n) || !plainHeaderName(name) {
				t.Fatalf("%q survived strip", name)
			}
			if name == "Connection" {
				for _, v := range vals {
					for tok := range strings.SplitSeq(v, ",") {
						if !connectionTokens[strings.ToLower(strings.TrimSpace(tok))] {
							t.Fatalf("Connection still names %q", tok)
						}
					}
				}
				continue
			}
			if strings.Join(vals, "\x00") != strings.Join(before[name], "\x00") {
				t.Fatalf("%q changed: %q -> %q", name, before[name], vals)
			}
		}
		for name := range before {
			if _, kept := h[name]; !kept && plainHeaderName(name) && !reserved.controlled(normalizeHeaderName(name)) && name != "Connection" {
				t.Fatalf("%q was removed", name)
			}
		}
	})
}

// FuzzReadBody: a body is either refused, or accepted with the upstream
// receiving exactly the bytes the policy's document was parsed from; an
// accepted JSON body is valid JSON without duplicate keys.
func FuzzReadBody(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"phone":"1"}`}, {"application/json", `{"a":1,"a":2}`}, {"application/json", `[1,{"b":{"c":null}}]`},
		{"application/x-www-form-urlencoded", "a=1&a=2&b=%20"}, {"application/x-www-form-urlencoded", "a=1;b=2"},
		{"text/plain", "x"}, {"application/json; charset=utf-8", `{"n\u0061me":1}`}, {"application/merge-patch+json", `{"_method":"x"}`},
		{"application/json", "{\"a\":\"\xff\"}"}, {"application/json", `{"a":1} x`}, {"", `{}`},
	} {
		f.Add(s.ct, s.body)
	}
	f.Fuzz(func(t *testing.T, ct, body string) {
		r := httptest.NewRequest("PATCH", "http://h/x", strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		doc, refusal := readBody(r, 4096)
		if refusal != nil {
			if refusal.status < 400 || refusal.reason == "" {
				t.Fatalf("refusal %+v", refusal)
			}
			return
		}
		if doc == nil {
			t.Fatal("an edit must carry a body document (at least {})")
		}
		forwarded, _ := io.ReadAll(r.Body)
		if !bytes.Equal(forwarded, []byte(body)) {
			t.Fatalf("upstream would get %q, policy saw %q", forwarded, body)
		}
		if body == "" {
			return
		}
		kind, _ := bodyKind(r.Header)
		if kind == "json" {
			if !json.Valid([]byte(body)) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
		} else if _, err := url.ParseQuery(body); err != nil {
			t.Fatalf("accepted invalid form %q", body)
		}
	})
}
