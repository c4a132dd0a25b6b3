// Package session seals small documents into encrypted, authenticated
// cookies: AES-256-GCM with a list of keys (the first seals, all open, so keys
// rotate without signing everyone out), bound to the cookie's name and an
// expiry, and split across several cookies when large. Anything that does not
// open cleanly — tampered, truncated, foreign, expired, sealed under another
// name — is treated as no cookie at all.
package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// KeySize is the length of a sealing key: 32 bytes for AES-256.
const KeySize = 32

const (
	version    = 1
	keyIDSize  = 4
	headerSize = 1 + keyIDSize
	// maxChunk keeps each cookie well below the 4096-byte limit browsers
	// apply to name, value and attributes together.
	maxChunk = 3800
	// MaxChunks bounds how many cookies one document may span.
	MaxChunks = 8
)

// ErrNoCookie means there is no usable cookie: absent or invalid alike, so
// callers cannot tell (and need not care) which.
var ErrNoCookie = errors.New("no valid cookie")

// Attributes are the cookie attributes set on every chunk.
type Attributes struct {
	Domain string // empty: host-only
	Path   string // empty: "/"
	// Secure must be true except for plain-http localhost development.
	Secure bool
}

// Codec seals and opens cookies.
type Codec struct {
	keys  []sealKey
	attrs Attributes
}

type sealKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// NewCodec returns a codec; keys[0] seals, every key opens.
func NewCodec(keys [][]byte, attrs Attributes) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: at least one key is required")
	}
	c := &Codec{attrs: attrs}
	if c.attrs.Path == "" {
		c.attrs.Path = "/"
	}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("session: key %d is %d bytes, want %d (generate one with: head -c 32 /dev/urandom | base64)", i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		var id [keyIDSize]byte
		copy(id[:], sum[:keyIDSize])
		c.keys = append(c.keys, sealKey{id: id, aead: aead})
	}
	return c, nil
}

// Seal encrypts payload for the cookie called name, valid until expires, and
// returns the cookies to set (one, or several chunks), plus deletions for
// chunks of an earlier, larger value that r still carries (r may be nil).
func (c *Codec) Seal(r *http.Request, name string, payload []byte, expires time.Time) ([]*http.Cookie, error) {
	k := c.keys[0]
	plain := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint64(plain, uint64(expires.Unix()))
	plain = append(plain, payload...)
	buf := make([]byte, headerSize, headerSize+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	buf[0] = version
	copy(buf[1:], k.id[:])
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	buf = append(buf, nonce...)
	buf = k.aead.Seal(buf, nonce, plain, []byte(name))
	value := base64.RawURLEncoding.EncodeToString(buf)

	n := (len(value) + maxChunk - 1) / maxChunk
	if n > MaxChunks {
		return nil, fmt.Errorf("session: %s is %d bytes sealed, over the %d-cookie limit", name, len(value), MaxChunks)
	}
	cookies := make([]*http.Cookie, 0, n)
	for i := range n {
		v := value[i*maxChunk : min((i+1)*maxChunk, len(value))]
		if i == 0 {
			v = strconv.Itoa(n) + "." + v
		}
		cookies = append(cookies, c.cookie(chunkName(name, i), v, expires))
	}
	for i := n; r != nil && i < MaxChunks; i++ {
		if _, err := r.Cookie(chunkName(name, i)); err == nil {
			cookies = append(cookies, c.expired(chunkName(name, i)))
		}
	}
	return cookies, nil
}

// Open returns the payload sealed in the request's cookie called name, or
// ErrNoCookie.
func (c *Codec) Open(r *http.Request, name string, now time.Time) ([]byte, error) {
	value, ok := Sealed(r, name)
	if !ok {
		return nil, ErrNoCookie
	}
	return c.OpenSealed(name, value, now)
}

// Sealed returns the sealed value of the cookie called name, its chunks
// joined, without opening it; callers may use it as a cache key, since only
// a value that once opened can be found in such a cache.
func Sealed(r *http.Request, name string) (string, bool) {
	first, err := r.Cookie(name)
	if err != nil {
		return "", false
	}
	count, rest, ok := strings.Cut(first.Value, ".")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 || n > MaxChunks {
		return "", false
	}
	if n == 1 {
		return rest, true
	}
	var value strings.Builder
	value.WriteString(rest)
	for i := 1; i < n; i++ {
		ck, err := r.Cookie(chunkName(name, i))
		if err != nil {
			return "", false
		}
		value.WriteString(ck.Value)
	}
	return value.String(), true
}

// OpenSealed opens a value returned by Sealed.
func (c *Codec) OpenSealed(name, value string, now time.Time) ([]byte, error) {
	return c.open(name, value, now)
}

func (c *Codec) open(name, value string, now time.Time) ([]byte, error) {
	buf, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(buf) < headerSize || buf[0] != version {
		return nil, ErrNoCookie
	}
	for _, k := range c.keys {
		if [keyIDSize]byte(buf[1:headerSize]) != k.id {
			continue
		}
		sealed := buf[headerSize:]
		if len(sealed) < k.aead.NonceSize()+k.aead.Overhead() {
			return nil, ErrNoCookie
		}
		nonce, ct := sealed[:k.aead.NonceSize()], sealed[k.aead.NonceSize():]
		plain, err := k.aead.Open(nil, nonce, ct, []byte(name))
		if err != nil || len(plain) < 8 {
			return nil, ErrNoCookie
		}
		if now.Unix() >= int64(binary.BigEndian.Uint64(plain)) {
			return nil, ErrNoCookie
		}
		return plain[8:], nil
	}
	return nil, ErrNoCookie
}

// Clear returns cookies that delete every chunk of name.
func (c *Codec) Clear(name string) []*http.Cookie {
	out := make([]*http.Cookie, MaxChunks)
	for i := range MaxChunks {
		out[i] = c.expired(chunkName(name, i))
	}
	return out
}

func chunkName(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "_" + strconv.Itoa(i)
}

func (c *Codec) cookie(name, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: c.attrs.Path, Domain: c.attrs.Domain,
		Expires: expires, Secure: c.attrs.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}

func (c *Codec) expired(name string) *http.Cookie {
	ck := c.cookie(name, "", time.Unix(0, 0))
	ck.MaxAge = -1
	return ck
}
