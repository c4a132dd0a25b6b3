package session

import (
	"bytes"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cookieName is config's rule for session.cookie_name.
var cookieName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// fuzzKeys are fixed so the seeds below (sealed with them) open.
var fuzzKeys = [][]byte{bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)}

func fuzzCodec(t testing.TB) *Codec {
	c, err := NewCodec(fuzzKeys, Attributes{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sealedSeeds are values sealed with each key: valid, so the fuzzer starts
// from the shape it must break.
func sealedSeeds(t testing.TB) []string {
	var out []string
	for _, keys := range [][][]byte{fuzzKeys, {fuzzKeys[1]}} {
		c, _ := NewCodec(keys, Attributes{})
		for _, payload := range []string{`{"sid":"x","c":{"sub":"alice"},"e":1,"u":2}`, "", strings.Repeat("z", 5000)} {
			cookies, err := c.Seal(nil, "portero_session", []byte(payload), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			r := requestWith(cookies)
			v, _ := Sealed(r, "portero_session")
			out = append(out, v)
		}
	}
	return out
}

// The decoder of sealed values: anything that is not a value this codec
// sealed under that name and still valid opens as "no cookie", never a
// panic and never a payload.
func FuzzOpenSealed(f *testing.F) {
	c := fuzzCodec(f)
	for _, v := range sealedSeeds(f) {
		f.Add("portero_session", v, int64(0))
		f.Add("portero_login", v, int64(0))
		f.Add("portero_session", v, int64(2*3600))
		f.Add("portero_session", v[:len(v)/2], int64(0))
	}
	f.Add("portero_session", "", int64(0))
	f.Add("portero_session", "AQ", int64(0))
	f.Add("portero_session", "AQAAAAA", int64(0))
	f.Add("s", "////", int64(0))
	f.Fuzz(func(t *testing.T, name, value string, offset int64) {
		at := now.Add(time.Duration(offset) * time.Second)
		payload, err := c.OpenSealed(name, value, at)
		if err != nil {
			if !errors.Is(err, ErrNoCookie) || payload != nil {
				t.Fatalf("error %v with payload %q", err, payload)
			}
			return
		}
		// It opened: it must seal again under the same name and open to
		// the same payload, and not under another name.
		cookies, err := c.Seal(nil, name, payload, at.Add(time.Minute))
		if err != nil {
			return // too large for cookies: nothing more to check
		}
		r := requestWith(cookies)
		v, ok := Sealed(r, name)
		if !ok {
			t.Fatalf("resealed value not found")
		}
		again, err := c.OpenSealed(name, v, at)
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("reseal round trip: %q %v", again, err)
		}
		if _, err := c.OpenSealed(name+"x", v, at); err == nil {
			t.Fatal("opened under another name")
		}
	})
}

// The request side: any Cookie header, however mangled (chunk counts,
// missing or repeated chunks, odd separators), gives a value or none, and
// only a genuine value opens.
func FuzzOpenCookieHeader(f *testing.F) {
	c := fuzzCodec(f)
	for _, v := range sealedSeeds(f) {
		f.Add("portero_session=1." + v)
		if len(v) > maxChunk {
			f.Add("portero_session=2." + v[:maxChunk] + "; portero_session_1=" + v[maxChunk:])
			f.Add("portero_session=2." + v[:maxChunk])
			f.Add("portero_session=9." + v[:maxChunk] + "; portero_session_1=" + v[maxChunk:])
		}
	}
	f.Add("portero_session=0.x")
	f.Add("portero_session=-1.x")
	f.Add("portero_session=99999999999999999999.x")
	f.Add("portero_session=1.; portero_session=1.x")
	f.Add(`portero_session="1.x"`)
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		v, ok := Sealed(r, "portero_session")
		if !ok && v != "" {
			t.Fatalf("no value, yet %q", v)
		}
		payload, err := c.Open(r, "portero_session", now)
		if err != nil && !errors.Is(err, ErrNoCookie) {
			t.Fatalf("error %v", err)
		}
		if err == nil && !ok {
			t.Fatalf("opened %q without a sealed value", payload)
		}
	})
}

// Whatever is sealed opens to itself, in one or several cookies, and only
// under its name and before its expiry.
func FuzzSealRoundTrip(f *testing.F) {
	c := fuzzCodec(f)
	f.Add("portero_session", []byte(`{"sid":"x"}`), int64(3600))
	f.Add("s", []byte{}, int64(1))
	f.Add("portero_login", bytes.Repeat([]byte{0xff}, 9000), int64(60))
	f.Fuzz(func(t *testing.T, name string, payload []byte, ttl int64) {
		// Cookie names are what gateway.yaml accepts (session.cookie_name).
		if !cookieName.MatchString(name) || ttl <= 0 || ttl > 1<<32 {
			return
		}
		expires := now.Add(time.Duration(ttl) * time.Second)
		cookies, err := c.Seal(nil, name, payload, expires)
		if err != nil {
			return // over the cookie limit
		}
		r := requestWith(cookies)
		got, err := c.Open(r, name, now)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("round trip: %v", err)
		}
		if _, err := c.Open(r, name, expires); err == nil {
			t.Fatal("opened at its expiry")
		}
	})
}
