// Command issuer is the benchmark's OpenID provider: discovery, JWKS, an
// authorization endpoint that signs the bench user in at once, and a token
// endpoint. It writes a bearer token and the JWKS to files for the load
// generator and the OPA stacks. It is for load tests on loopback only.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

type pending struct{ nonce, challenge, sub string }

func main() {
	addr := flag.String("listen", "127.0.0.1:9503", "address to listen on")
	tokenOut := flag.String("token-out", "", "write a bearer token (aud portero) here")
	jwksOut := flag.String("jwks-out", "", "write the JWKS here")
	users := flag.Int("users", 0, "sign browsers in as bench-user-0 … bench-user-(N-1) in turn (0: always bench-user)")
	groups := flag.String("groups", "", "comma-separated groups claim of every user (system-admins: may start master access)")
	flag.Parse()
	issuer := "http://" + *addr

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "bench"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		log.Fatal(err)
	}
	sign := func(claims map[string]any) string {
		payload, _ := json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			log.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	user := func(aud string, extra map[string]any) map[string]any {
		now := time.Now()
		c := map[string]any{"iss": issuer, "aud": aud, "sub": "bench-user", "email": "bench@example.com",
			"roles": []string{"acme:administrator", "globex:location_manager"}, "iat": now.Unix(), "exp": now.Add(4 * time.Hour).Unix()}
		if *groups != "" {
			c["groups"] = strings.Split(*groups, ",")
		}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	// A second key, ES256, signs the many tokens of POST /tokens: a P-256
	// signature takes tens of microseconds where RS256 takes a millisecond.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	ecSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey, KeyID: "bench-ec"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		log.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: "bench", Algorithm: "RS256", Use: "sig"},
		{Key: &ecKey.PublicKey, KeyID: "bench-ec", Algorithm: "ES256", Use: "sig"},
	}})
	if *tokenOut != "" {
		if err := os.WriteFile(*tokenOut, []byte(sign(user("portero", nil))), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	if *jwksOut != "" {
		if err := os.WriteFile(*jwksOut, jwks, 0o600); err != nil {
			log.Fatal(err)
		}
	}

	var mu sync.Mutex
	codes := map[string]pending{}
	signIns := 0
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
			"jwks_uri": issuer + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	mux.HandleFunc("GET /auth", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var b [16]byte
		_, _ = rand.Read(b[:])
		code := base64.RawURLEncoding.EncodeToString(b[:])
		mu.Lock()
		sub := "bench-user"
		if *users > 0 {
			sub = fmt.Sprintf("bench-user-%d", signIns%*users)
		}
		signIns++
		codes[code] = pending{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), sub: sub}
		mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		clientID, _, _ := r.BasicAuth()
		mu.Lock()
		p, ok := codes[r.PostFormValue("code")]
		delete(codes, r.PostFormValue("code"))
		mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != p.challenge {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": "bench", "token_type": "Bearer", "expires_in": 4 * 3600,
			"id_token": sign(user(clientID, map[string]any{"nonce": p.nonce, "sub": p.sub})),
		})
	})
	// POST /tokens: a bearer token (aud portero, ES256) for each subject
	// in the body (one a line), one a line in the same order; for loads
	// of many distinct callers.
	mux.HandleFunc("POST /tokens", func(w http.ResponseWriter, r *http.Request) {
		// All subjects first: the server stops reading the request body
		// once the answer has started.
		var subs []string
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			subs = append(subs, sc.Text())
		}
		if err := sc.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		bw := bufio.NewWriter(w)
		for _, sub := range subs {
			claims := user("portero", map[string]any{"sub": sub, "email": sub + "@example.com", "roles": []string{}})
			payload, _ := json.Marshal(claims)
			jws, err := ecSigner.Sign(payload)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			tok, _ := jws.CompactSerialize()
			_, _ = bw.WriteString(tok + "\n")
		}
		_ = bw.Flush()
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
