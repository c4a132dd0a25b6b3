package session

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func key(t testing.TB) []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func requestWith(cookies []*http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	for _, c := range cookies {
		if c.MaxAge >= 0 {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return r
}

func mustCodec(t testing.TB, keys ...[]byte) *Codec {
	c, err := NewCodec(keys, Attributes{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTripAndAttributes(t *testing.T) {
	c := mustCodec(t, key(t))
	cookies, err := c.Seal(nil, "portero_session", []byte(`{"sub":"alice"}`), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies) != 1 {
		t.Fatalf("%d cookies for a small payload", len(cookies))
	}
	ck := cookies[0]
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
		t.Errorf("attributes: %+v", ck)
	}
	if strings.Contains(ck.Value, "alice") {
		t.Error("payload is visible in the cookie")
	}
	got, err := c.Open(requestWith(cookies), "portero_session", now)
	if err != nil || string(got) != `{"sub":"alice"}` {
		t.Fatalf("%q %v", got, err)
	}
}

func TestLargePayloadIsChunked(t *testing.T) {
	c := mustCodec(t, key(t))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 800) // 12.8 KB
	cookies, err := c.Seal(nil, "s", payload, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies) < 4 {
		t.Fatalf("%d cookies", len(cookies))
	}
	for _, ck := range cookies {
		if len(ck.String()) > 4096 {
			t.Errorf("cookie %s is %d bytes", ck.Name, len(ck.String()))
		}
	}
	got, err := c.Open(requestWith(cookies), "s", now)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("chunked round trip: %v", err)
	}
	// A smaller value later deletes the chunks the browser still holds.
	smaller, _ := c.Seal(requestWith(cookies), "s", []byte("x"), now.Add(time.Hour))
	deleted := 0
	for _, ck := range smaller {
		if ck.MaxAge < 0 {
			deleted++
		}
	}
	if deleted != len(cookies)-1 {
		t.Errorf("deleted %d stale chunks, want %d", deleted, len(cookies)-1)
	}
	if _, err := c.Seal(nil, "s", make([]byte, MaxChunks*maxChunk), now); err == nil {
		t.Error("sealed a payload over the chunk limit")
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := key(t), key(t)
	sealedOld, _ := mustCodec(t, oldKey).Seal(nil, "s", []byte("old"), now.Add(time.Hour))
	rotated := mustCodec(t, newKey, oldKey)
	if got, err := rotated.Open(requestWith(sealedOld), "s", now); err != nil || string(got) != "old" {
		t.Fatalf("old cookie after rotation: %q %v", got, err)
	}
	sealedNew, _ := rotated.Seal(nil, "s", []byte("new"), now.Add(time.Hour))
	if _, err := mustCodec(t, oldKey).Open(requestWith(sealedNew), "s", now); err == nil {
		t.Fatal("new cookie opened with only the old key")
	}
	if _, err := mustCodec(t, newKey).Open(requestWith(sealedOld), "s", now); err == nil {
		t.Fatal("old cookie opened after the old key was retired")
	}
}

// Every cookie that is not exactly what Portero sealed means "no session".
func TestHostileCookies(t *testing.T) {
	k := key(t)
	c := mustCodec(t, k)
	good, _ := c.Seal(nil, "s", []byte(`{"sub":"alice"}`), now.Add(time.Hour))
	big, _ := c.Seal(nil, "s", bytes.Repeat([]byte("a"), 9000), now.Add(time.Hour))
	v := good[0].Value
	raw := strings.SplitN(v, ".", 2)[1]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	otherName, _ := c.Seal(nil, "portero_login", []byte(`{"sub":"alice"}`), now.Add(time.Hour))
	foreign, _ := mustCodec(t, key(t)).Seal(nil, "s", []byte(`{"sub":"alice"}`), now.Add(time.Hour))
	expired, _ := c.Seal(nil, "s", []byte(`{"sub":"alice"}`), now)
	cases := map[string][]*http.Cookie{
		"tampered ciphertext":        {{Name: "s", Value: "1." + flip(raw, len(raw)-5)}},
		"tampered nonce":             {{Name: "s", Value: "1." + flip(raw, 8)}},
		"tampered key id":            {{Name: "s", Value: "1." + flip(raw, 2)}},
		"truncated":                  {{Name: "s", Value: v[:len(v)-10]}},
		"truncated to header":        {{Name: "s", Value: "1." + raw[:8]}},
		"empty":                      {{Name: "s", Value: ""}},
		"no count":                   {{Name: "s", Value: raw}},
		"count too high":             {{Name: "s", Value: "99." + raw}},
		"count zero":                 {{Name: "s", Value: "0." + raw}},
		"not base64":                 {{Name: "s", Value: "1.!!!!"}},
		"wrong version":              {{Name: "s", Value: "1." + base64.RawURLEncoding.EncodeToString(append([]byte{9}, mustDecode(raw)[1:]...))}},
		"sealed under another name":  {{Name: "s", Value: otherName[0].Value}},
		"sealed with a foreign key":  foreign,
		"expired":                    expired,
		"missing chunk":              {big[0], big[2]},
		"chunks swapped":             {big[0], {Name: "s_1", Value: big[2].Value}, {Name: "s_2", Value: big[1].Value}},
		"chunk from another session": {big[0], {Name: "s_1", Value: strings.Repeat("A", len(big[1].Value))}, big[2]},
	}
	for name, cookies := range cases {
		t.Run(name, func(t *testing.T) {
			if got, err := c.Open(requestWith(cookies), "s", now); err != ErrNoCookie {
				t.Fatalf("opened: %q %v", got, err)
			}
		})
	}
}

func mustDecode(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}

func TestBadKeys(t *testing.T) {
	if _, err := NewCodec(nil, Attributes{}); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := NewCodec([][]byte{make([]byte, 16)}, Attributes{}); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Errorf("short key: %v", err)
	}
}

func BenchmarkOpen(b *testing.B) {
	c := mustCodec(b, key(b), key(b))
	cookies, _ := c.Seal(nil, "s", bytes.Repeat([]byte("x"), 1200), now.Add(time.Hour))
	r := requestWith(cookies)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(r, "s", now); err != nil {
			b.Fatal(err)
		}
	}
}
