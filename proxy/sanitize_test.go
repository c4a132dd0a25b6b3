package proxy

import (
	"net/http"
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
		{in: "/a;v=1/b", want: "/a;v=1/b", segs: []string{"a;v=1", "b"}},
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
