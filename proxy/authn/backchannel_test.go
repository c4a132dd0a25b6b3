package authn

import (
	"encoding/base64"
	"testing"
)

// The logout token's header: a logout token's typ or a plain JWT's, and
// never unsigned. (Signature, algorithms and claims are checked with the
// IdP's keys: control's TestBackchannelLogout.)
func TestLogoutTokenHeader(t *testing.T) {
	enc := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) + ".e30.c2ln" }
	for _, c := range []struct {
		token string
		ok    bool
	}{
		{enc(`{"alg":"ES256","typ":"logout+jwt"}`), true},
		{enc(`{"alg":"RS256","typ":"application/logout+jwt"}`), true},
		{enc(`{"alg":"RS256","typ":"JWT"}`), true},
		{enc(`{"alg":"RS256"}`), true},
		{enc(`{"alg":"RS256","typ":"at+jwt"}`), false},
		{enc(`{"alg":"RS256","typ":""}`), false},
		{enc(`{"alg":"none","typ":"logout+jwt"}`), false},
		{enc(`{"alg":"NONE"}`), false},
		{enc(`{"typ":"JWT"}`), false},
		{enc(`not json`), false},
		{"no-dots", false},
		{"%%%.e30.c2ln", false},
	} {
		if err := checkLogoutHeader(c.token); (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.token, err, c.ok)
		}
	}
}
