package proxy

import (
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/portero-gateway/portero/policy"
)

// Recording the policy input in the decision log (log.decision_inputs), so
// `portero policy replay` can evaluate real traffic against a candidate
// policy. The recorded input is policy.Input.Document with every secret
// replaced by a pseudonym: equal values get equal pseudonyms, so a policy
// that compares two masked values (the master-access session with the
// caller's) decides on replay as it did live, and nobody reading the log
// learns the values, even short ones such as phone numbers.
//
// Masked always:
//   - identity.session and access.master.session (the sign-in session);
//   - in request.headers, request.query, identity.claims and request.body,
//     at any depth, the values of keys whose names look like credentials
//     (secretName): tokens, keys, passwords, session ids, signatures.
//
// The Authorization, Cookie and Proxy-Authorization headers never reach
// the input (inputHeaders), nor does the assertion header (stripped on
// the way in). log.decision_inputs.mask names more paths.

// sampled says whether this decision's input is recorded: recording is
// on and the decision falls in the sample. It costs a field load when
// recording is off.
func (g *Gateway) sampled() bool {
	di := &g.cfg.Log.DecisionInputs
	if !di.Enabled {
		return false
	}
	f := di.Fraction()
	return f >= 1 || f > 0 && rand.Float64() < f // math/rand/v2's runtime source: no lock, no allocation
}

// decisionInputAttrs are the recorded input ("input") and what the
// decision gives the app: its headers ("decision_headers") and whom the
// assertion names ("decision_assertion"), so a replay can tell whether a
// candidate would send other ones. A masked value found in them is
// replaced by its pseudonym there too.
func (g *Gateway) decisionInputAttrs(in *policy.Input, d policy.Decision) []slog.Attr {
	doc, err := in.Document()
	if err != nil {
		return []slog.Attr{slog.String("input_error", err.Error())}
	}
	m := newInputMasker()
	m.maskInput(doc, g.cfg.Log.DecisionInputs.MaskPaths)
	attrs := []slog.Attr{slog.Any("input", json.RawMessage(appendJSON(make([]byte, 0, 2048), doc)))}
	if len(d.Headers) > 0 {
		attrs = append(attrs, slog.Any("decision_headers", m.maskHeaders(d.Headers)))
	}
	if a := d.Assertion; a != nil {
		attrs = append(attrs, slog.Any("decision_assertion", map[string]any{
			"sub": m.maskString(a.Subject), "act": m.maskString(a.Actor), "roles": m.maskStrings(a.Roles)}))
	}
	return attrs
}

// pseudonymKey keys the pseudonyms: random for each process, never
// written anywhere, so a pseudonym cannot be reversed by trying values.
// Pseudonyms of one process compare; those of two processes do not.
var pseudonymKey = func() []byte {
	k := make([]byte, 32)
	_, _ = crand.Read(k)
	return k
}()

// alwaysMasked are the paths masked whatever the configuration says.
var alwaysMasked = [][]string{
	{"identity", "session"},
	{"access", "master", "session"},
}

// secretsByName are the parts of the input where a key's name says
// whether its value is a secret (secretName), at any depth.
var secretsByName = [][]string{
	{"request", "headers"},
	{"request", "query"},
	{"request", "body"},
	{"identity", "claims"},
}

// secretName says whether a header, parameter, claim or field name looks
// like it holds a credential. It errs on the side of masking: a masked
// value the policy does not compare costs nothing on replay.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, part := range []string{"auth", "token", "secret", "passw", "cookie", "session", "key", "signature", "credential", "csrf", "xsrf", "nonce", "hash", "assertion"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	switch n {
	case "sid", "code", "otp", "pin":
		return true
	}
	return false
}

// inputMasker replaces values by pseudonyms and remembers which strings it
// replaced, for the decision's headers.
type inputMasker struct {
	mac     hash.Hash
	secrets map[string]string // masked string or number text -> pseudonym
}

func newInputMasker() *inputMasker {
	return &inputMasker{mac: hmac.New(sha256.New, pseudonymKey)}
}

func (m *inputMasker) maskInput(doc map[string]any, configured [][]string) {
	for _, path := range alwaysMasked {
		m.maskPath(doc, path)
	}
	for _, path := range secretsByName {
		if sub, ok := lookup(doc, path); ok {
			m.maskSecretNames(sub)
		}
	}
	for _, path := range configured {
		m.maskPath(doc, path)
	}
}

// maskPath masks the values at path below x ("*": every key or element; a
// number: that element of a list).
func (m *inputMasker) maskPath(x any, path []string) {
	if len(path) == 0 {
		return
	}
	key, rest := path[0], path[1:]
	switch c := x.(type) {
	case map[string]any:
		if key != "*" {
			if v, ok := c[key]; ok {
				m.maskAt(v, rest, func(nv any) { c[key] = nv })
			}
			return
		}
		for k, v := range c {
			m.maskAt(v, rest, func(nv any) { c[k] = nv })
		}
	case []any:
		for i, v := range c {
			if key == "*" || key == strconv.Itoa(i) {
				m.maskAt(v, rest, func(nv any) { c[i] = nv })
			}
		}
	}
}

func (m *inputMasker) maskAt(v any, rest []string, set func(any)) {
	if len(rest) == 0 {
		set(m.mask(v))
		return
	}
	m.maskPath(v, rest)
}

// maskSecretNames masks, below x, the value of every key secretName picks.
func (m *inputMasker) maskSecretNames(x any) {
	switch c := x.(type) {
	case map[string]any:
		for k, v := range c {
			if secretName(k) {
				c[k] = m.mask(v)
			} else {
				m.maskSecretNames(v)
			}
		}
	case []any:
		for _, v := range c {
			m.maskSecretNames(v)
		}
	}
}

// mask replaces every value in x by a pseudonym, keeping the shape of
// objects (their keys) and lists (their length): a policy that checks
// which fields an edit changes decides the same on replay.
func (m *inputMasker) mask(x any) any {
	switch v := x.(type) {
	case nil:
		return nil
	case map[string]any:
		for k, e := range v {
			v[k] = m.mask(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = m.mask(e)
		}
		return v
	case string:
		return m.pseudonym("s", v)
	case json.Number:
		return m.pseudonym("n", string(v))
	case bool:
		return m.pseudonym("b", strconv.FormatBool(v))
	default: // not made by Document; mask its text
		b, _ := json.Marshal(v)
		return m.pseudonym("x", string(b))
	}
}

// pseudonym is "masked:" and 16 hex digits of an HMAC of the value and
// its kind (the string "1" and the number 1 stay apart).
func (m *inputMasker) pseudonym(kind, v string) string {
	m.mac.Reset()
	_, _ = m.mac.Write([]byte(kind))
	_, _ = m.mac.Write([]byte(v))
	var sum [sha256.Size]byte
	p := "masked:" + hex.EncodeToString(m.mac.Sum(sum[:0])[:8])
	if kind == "s" || kind == "n" {
		if m.secrets == nil {
			m.secrets = map[string]string{}
		}
		m.secrets[v] = p
	}
	return p
}

// maskHeaders copies the decision's headers (cached decisions share them)
// with every masked value replaced by its pseudonym (maskString).
func (m *inputMasker) maskHeaders(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for name, vals := range h {
		out[name] = m.maskStrings(vals)
	}
	return out
}

func (m *inputMasker) maskStrings(vals []string) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = m.maskString(v)
	}
	return out
}

// maskString replaces a masked value by its pseudonym: as a whole value,
// and inside v for secrets long enough not to match by chance.
func (m *inputMasker) maskString(v string) string {
	if p, ok := m.secrets[v]; ok {
		return p
	}
	for secret, p := range m.secrets {
		if len(secret) >= 8 {
			v = strings.ReplaceAll(v, secret, p)
		}
	}
	return v
}

// lookup follows path (exact keys) from doc.
func lookup(doc map[string]any, path []string) (any, bool) {
	var x any = doc
	for _, k := range path {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		if x, ok = m[k]; !ok {
			return nil, false
		}
	}
	return x, true
}

// appendJSON writes a document made of map[string]any, []any, string,
// json.Number, bool and nil as JSON, object keys sorted: encoding/json
// does the same through reflection at several times the cost, and the
// decision log line is on the request path.
func appendJSON(buf []byte, x any) []byte {
	switch v := x.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		return strconv.AppendBool(buf, v)
	case string:
		return appendJSONString(buf, v)
	case json.Number:
		return append(buf, v...)
	case []any:
		buf = append(buf, '[')
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSON(buf, e)
		}
		return append(buf, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(appendJSONString(buf, k), ':')
			buf = appendJSON(buf, v[k])
		}
		return append(buf, '}')
	default: // not made by Document
		b, err := json.Marshal(v)
		if err != nil {
			return append(buf, "null"...)
		}
		return append(buf, b...)
	}
}

// appendJSONString quotes s as encoding/json does without HTML escaping:
// control characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029
// escaped.
func appendJSONString(buf []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(append(buf, s[start:i]...), "\\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			buf = append(append(buf, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(buf, s[start:]...), '"')
}
