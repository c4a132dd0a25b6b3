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
	"strings"

	"github.com/portero-gateway/portero/policy"
)

// Recording the policy input in the decision log (log.decision_inputs), so
// `portero policy replay` can evaluate real traffic against a candidate
// policy. The recorded input is policy.Input.AppendJSON with every secret
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
	return inSample(di.Fraction())
}

// inSample says yes to a fraction f of the calls (f ≥ 1: every one).
func inSample(f float64) bool {
	return f >= 1 || f > 0 && rand.Float64() < f // math/rand/v2's runtime source: no lock, no allocation
}

// decisionInputAttrs are the recorded input ("input") and what the
// decision gives the app: its headers ("decision_headers") and whom the
// assertion names ("decision_assertion"), so a replay can tell whether a
// candidate would send other ones. A masked value found in them is
// replaced by its pseudonym there too.
func (g *Gateway) decisionInputAttrs(in *policy.Input, d policy.Decision) []slog.Attr {
	m := newInputMasker(g.cfg.Log.DecisionInputs.MaskPaths, g.pseudonymKey)
	attrs := []slog.Attr{slog.Any("input", json.RawMessage(in.AppendJSON(make([]byte, 0, 2048), m)))}
	if len(d.Headers) > 0 {
		attrs = append(attrs, slog.Any("decision_headers", m.maskHeaders(d.Headers)))
	}
	if a := d.Assertion; a != nil {
		attrs = append(attrs, slog.Any("decision_assertion", map[string]any{
			"sub": m.maskString(a.Subject), "act": m.maskString(a.Actor), "roles": m.maskStrings(a.Roles)}))
	}
	return attrs
}

// newPseudonymKey keys the pseudonyms: random for each gateway, never
// written anywhere, so a pseudonym cannot be reversed by trying values.
// Pseudonyms of one gateway compare; those of two do not.
func newPseudonymKey() []byte {
	k := make([]byte, 32)
	_, _ = crand.Read(k)
	return k
}

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

// inputMasker is the decision log's policy.InputMask: it says which
// values are hidden, gives their pseudonyms, and remembers which strings
// it hid, for the decision's headers.
type inputMasker struct {
	configured [][]string
	mac        hash.Hash
	secrets    map[string]string // hidden string or number text -> pseudonym
}

func newInputMasker(configured [][]string, key []byte) *inputMasker {
	return &inputMasker{configured: configured, mac: hmac.New(sha256.New, key)}
}

// Masked: the paths always masked, credential-like names below the parts
// where names tell (at any depth), and the configured paths.
func (m *inputMasker) Masked(path []string) bool {
	for _, p := range alwaysMasked {
		if slices.Equal(p, path) {
			return true
		}
	}
	for _, p := range secretsByName {
		if len(path) > len(p) && slices.Equal(path[:len(p)], p) && secretName(path[len(path)-1]) {
			return true
		}
	}
	for _, p := range m.configured {
		if matchPath(p, path) {
			return true
		}
	}
	return false
}

// matchPath says whether path is pattern, "*" matching any one key or
// list index.
func matchPath(pattern, path []string) bool {
	if len(pattern) != len(path) {
		return false
	}
	for i, k := range pattern {
		if k != "*" && k != path[i] {
			return false
		}
	}
	return true
}

// Pseudonym is "masked:" and 16 hex digits of an HMAC of the value and
// its kind (the string "1" and the number 1 stay apart).
func (m *inputMasker) Pseudonym(kind byte, v string) string {
	m.mac.Reset()
	_, _ = m.mac.Write([]byte{kind})
	_, _ = m.mac.Write([]byte(v))
	var sum [sha256.Size]byte
	p := "masked:" + hex.EncodeToString(m.mac.Sum(sum[:0])[:8])
	if kind == 's' || kind == 'n' {
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
