package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestReservedHeadersAreStripped(t *testing.T) {
	t.Parallel()
	reserved := newReservedHeaders("X-Portero-Assertion")
	hostile := []string{
		"X-Portero-User", "x-portero-user", "X-PORTERO-USER", "X_Portero_User", "x_portero-tenant",
		"X-Portero-Roles", "X-Portero-Impersonator", "X-Portero-Impersonation-Reason",
		"X-Portero-Assertion", "x_portero_assertion", "X-Portero-Anything-New",
		"Impersonate-User", "impersonate-group", "IMPERSONATE_USER", "Impersonate-Extra-Scopes",
		"impersonate_extra_reason", "Impersonate-Uid",
	}
	for _, name := range hostile {
		t.Run(name, func(t *testing.T) {
			// Set the raw key, bypassing canonicalisation, as the HTTP
			// server does for names it cannot canonicalise (e.g. with '_').
			h := http.Header{name: {"admin"}, "Accept": {"*/*"}}
			h[name] = append(h[name], "second copy")
			reserved.strip(h)
			if len(h) != 1 || h.Get("Accept") != "*/*" {
				t.Fatalf("after strip: %v", h)
			}
		})
	}
	for _, name := range []string{"X-Porter-User", "X-Portero", "Impersonate", "Accept", "X-Forwarded-User"} {
		if reserved.contains(name) {
			t.Errorf("%q should not be reserved", name)
		}
	}
}

// The names normalised from a table are normalised as any other name: the
// table is a shortcut, not a second rule.
func TestLowerHeaderNamesAreTheirNormalForm(t *testing.T) {
	t.Parallel()
	for name, lower := range lowerHeaderNames {
		if n := normalizeHeaderNameOf(name); n != lower || n != strings.ToLower(name) {
			t.Errorf("%s: table %q, worked out %q, lower case %q", name, lower, n, strings.ToLower(name))
		}
		if got := normalizeHeaderName(name); got != lower {
			t.Errorf("normalizeHeaderName(%s) = %q", name, got)
		}
	}
	// Spellings the table does not hold are worked out.
	for name, want := range map[string]string{"x-portero-user": "x-portero-user", "X_Portero_User": "x-portero-user",
		"X-PORTERO-USER": "x-portero-user", "X.Portero.User": "x-portero-user", "Accept": "accept"} {
		if got := normalizeHeaderName(name); got != want {
			t.Errorf("normalizeHeaderName(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestNormalizePath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		segs     []string
		bad      bool
	}{
		{in: "/", want: "/", segs: []string{}},
		{in: "/api/orders", want: "/api/orders", segs: []string{"api", "orders"}},
		{in: "/api/orders/", want: "/api/orders/", segs: []string{"api", "orders"}},
		{in: "//api//orders", want: "/api/orders", segs: []string{"api", "orders"}},
		{in: "/api/./orders", want: "/api/orders", segs: []string{"api", "orders"}},
		{in: "/admin/../api/orders", want: "/api/orders", segs: []string{"api", "orders"}},
		{in: "/api/x/..", want: "/api", segs: []string{"api"}},
		{in: "/a%20b/c", want: "/a%20b/c", segs: []string{"a b", "c"}},
		{in: "/caf%C3%A9", want: "/caf%C3%A9", segs: []string{"café"}},
		{in: "/a%20b", want: "/a%20b", segs: []string{"a b"}},
		{in: "/%E6%97%A5%E6%9C%AC", want: "/%E6%97%A5%E6%9C%AC", segs: []string{"日本"}},
		// Hostile: every one is refused, never guessed at.
		{in: "/..", bad: true},
		{in: "/../etc/passwd", bad: true},
		{in: "/api/../../x", bad: true},
		{in: "/%2e%2e/admin", bad: true},
		{in: "/%2E%2E/admin", bad: true},
		{in: "/.%2e/admin", bad: true},
		{in: "/api/%2e/x", bad: true},
		{in: "/api%2fadmin", bad: true},
		{in: "/api%2Fadmin", bad: true},
		{in: "/api%5cadmin", bad: true},
		{in: "/api\\admin", bad: true},
		{in: "/api/%252e%252e/x", bad: true},
		{in: "/api/%00", bad: true},
		{in: "/api/%0a", bad: true},
		{in: "/api/\x00", bad: true},
		{in: "/api/\x7f", bad: true},
		{in: "/api/%zz", bad: true},
		{in: "/api/%4", bad: true},
		{in: "/..;/admin", bad: true},
		// Spellings an app may route to another path than the policy sees.
		{in: "/a;v=1/b", bad: true},
		{in: "/reviews;", bad: true},
		{in: "/reviews;x=1", bad: true},
		{in: "/reviews%3bx", bad: true},
		{in: "/reviews%3Bx", bad: true},
		{in: "/reviews%20", bad: true},
		{in: "/%20reviews", bad: true},
		{in: "/reviews%09", bad: true},
		{in: "/reviews%e2%80%8b", bad: true},         // zero-width space
		{in: "/rev%e2%80%8biews", bad: true},         // zero-width space inside
		{in: "/reviews%ef%bb%bf", bad: true},         // byte order mark
		{in: "/reviews%e2%80%ae", bad: true},         // right-to-left override
		{in: "/reviews%c2%a0", bad: true},            // no-break space
		{in: "/reviews%e3%80%80", bad: true},         // ideographic space
		{in: "/%c0%ae%c0%ae/admin", bad: true},       // overlong dots
		{in: "/%c0%afadmin", bad: true},              // overlong slash
		{in: "/%ef%bc%8e%ef%bc%8e/admin", bad: true}, // fullwidth dots
		{in: "/%ef%bd%92eviews", bad: true},          // fullwidth r
		{in: "/%ef%ac%81le", bad: true},              // fi ligature
		{in: "/reviews%ff", bad: true},               // invalid UTF-8
		{in: "/reviews%c2", bad: true},               // truncated UTF-8
		{in: "/reviews%ed%a0%80", bad: true},         // surrogate
		{in: "/reviews%c2%85", bad: true},            // next line (C1 control)
		{in: "/reviews%e2%80%a8", bad: true},         // line separator
		{in: "/api/.;/x", bad: true},
		{in: "api/x", bad: true},
		{in: "", bad: true},
		{in: "*", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, segs, err := normalizePath(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q as %q", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want || len(segs) != len(tc.segs) {
				t.Fatalf("normalizePath(%q) = %q %q %v, want %q %q", tc.in, got, segs, err, tc.want, tc.segs)
			}
			for i := range segs {
				if segs[i] != tc.segs[i] {
					t.Fatalf("segment %d = %q, want %q", i, segs[i], tc.segs[i])
				}
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"acme.apps.example.com", "acme.apps.example.com"},
		{"ACME.Apps.Example.COM", "acme.apps.example.com"},
		{"acme.apps.example.com:8443", "acme.apps.example.com"},
		{"acme.apps.example.com.", "acme.apps.example.com"},
		{"Acme.Apps.Example.Com.:443", "acme.apps.example.com"},
		{"127.0.0.1:8080", "127.0.0.1"},
		{"[::1]:8080", "::1"},
		{"localhost", "localhost"},
		// Hostile.
		{"", ""},
		{":8080", ""},
		{"acme..example.com", ""},
		{".example.com", ""},
		{"acme.example.com..", ""},
		{"evil.com/acme.example.com", ""},
		{"acme.example.com\\@evil", ""},
		{"user@acme.example.com", ""},
		{"acme_x.example.com", ""},
		{"[::1", ""},
		{"acme.example.com%00", ""},
	}
	for _, tc := range cases {
		got, err := normalizeHost(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("normalizeHost(%q) accepted as %q", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("normalizeHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
