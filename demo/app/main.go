// Command demo-app is a small tenant app for Portero's demo: it shows who it
// thinks the user is, every X-Portero-* (and Impersonate-*) header it
// received, and the claims of the signed assertion, verified against the
// gateway's JWKS.
package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo tenant app{{if .Tenant}} — {{.Tenant}}{{end}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;border-top:1px solid #ddd;padding:.35rem .5rem;vertical-align:top}
td code{word-break:break-all}.ok{color:#060}.bad{color:#a00}nav a{margin-right:1rem}</style></head><body>
<nav><a href="/t/acme/">acme</a><a href="/t/globex/">globex</a><a href="/.portero/userinfo">userinfo</a><a href="/.portero/logout" id="signout">Sign out</a></nav>
{{if .Tenant}}<nav id="pages">Pages of {{.Tenant}}:
<a href="/t/{{.Tenant}}/reviews">reviews</a><a href="/t/{{.Tenant}}/billing">billing</a><a href="/t/{{.Tenant}}/ads">ads</a>
<a href="/t/{{.Tenant}}/locations/l1">location l1</a><a href="/t/{{.Tenant}}/locations/l2">location l2</a>
<a href="/t/{{.Tenant}}/settings">settings</a><a href="/t/{{.Tenant}}/users">users</a><a href="/t/{{.Tenant}}/orders">orders</a></nav>
<p><small>Portero classifies each page with the route mapping in <code>rego/data.json</code> and the
policy decides per person; a page the mapping does not name (here <code>orders</code>) is refused for
everyone (<code>operation.unmapped</code>). Try <code>portero explain GET /t/{{.Tenant}}/orders</code>.</small></p>{{end}}
{{if .Impersonator}}<div id="impersonation" role="status" style="background:#fff3cd;border:1px solid #e0b400;padding:.6rem 1rem;margin:1rem 0">
Support access: <strong id="impersonator">{{.Impersonator}}</strong> is using this app as <strong>{{.User}}</strong>
({{.ImpersonationReason}}; until {{.ImpersonationExpires}}).
<a href="/.portero/master-access/end" id="end-master">Return to the admin panel</a></div>{{end}}
<h1>Demo tenant app{{if .Tenant}} — <span id="tenant">{{.Tenant}}</span>{{end}}</h1>
<p>You are <strong id="user">{{.User}}</strong>{{if .Email}} (<span id="email">{{.Email}}</span>){{end}}.
This page: <code id="path">{{.Path}}</code></p>
<h2>Headers from Portero</h2>
<table id="headers"><tr><th>header</th><th>value</th></tr>
{{range .Headers}}<tr><td>{{.Name}}</td><td><code>{{.Value}}</code></td></tr>{{end}}</table>
<p>Cookies received: <code id="cookies">{{if .Cookies}}{{.Cookies}}{{else}}none{{end}}</code>
<small>(never Portero's own: its session stays with the gateway)</small></p>
<h2>Signed assertion</h2>
<p id="assertion-status" class="{{if .Verified}}ok{{else}}bad{{end}}">{{.AssertionStatus}}</p>
<table id="claims"><tr><th>claim</th><th>value</th></tr>
{{range .Claims}}<tr><td>{{.Name}}</td><td><code>{{.Value}}</code></td></tr>{{end}}</table>
</body></html>
`))

type row struct{ Name, Value string }

// keySet fetches the gateway's JWKS and refetches it when an assertion names
// a key it does not know (the gateway restarted with a new key).
type keySet struct {
	url string
	mu  sync.Mutex
	set jose.JSONWebKeySet
}

func (k *keySet) key(kid string) (*jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if keys := k.set.Key(kid); len(keys) > 0 {
		return &keys[0], nil
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(k.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&k.set); err != nil {
		return nil, fmt.Errorf("jwks %s: %w", k.url, err)
	}
	if keys := k.set.Key(kid); len(keys) > 0 {
		return &keys[0], nil
	}
	return nil, fmt.Errorf("key %q not in %s", kid, k.url)
}

func main() {
	addr := envOr("DEMO_APP_ADDR", "127.0.0.1:9500")
	keys := &keySet{url: envOr("DEMO_JWKS_URL", "http://localhost:8080/.well-known/portero/jwks.json")}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		data := struct {
			Tenant, User, Email, Path, AssertionStatus string
			Cookies                                    string
			Impersonator, ImpersonationReason          string
			ImpersonationExpires                       string
			Verified                                   bool
			Headers, Claims                            []row
		}{
			Tenant: r.Header.Get("X-Portero-Tenant"), User: r.Header.Get("X-Portero-User"), Path: r.URL.RequestURI(),
			AssertionStatus:      "no assertion received",
			Impersonator:         r.Header.Get("X-Portero-Impersonator"),
			ImpersonationReason:  r.Header.Get("X-Portero-Impersonation-Reason"),
			ImpersonationExpires: r.Header.Get("X-Portero-Impersonation-Expires"),
		}
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name)
		}
		data.Cookies = strings.Join(names, ", ")
		if data.User == "" {
			data.User = "nobody (no X-Portero-User header)"
		}
		for name, vals := range r.Header {
			n := strings.ToLower(name)
			if strings.HasPrefix(n, "x-portero-") || strings.HasPrefix(n, "impersonate-") {
				v := strings.Join(vals, ", ")
				if n == "x-portero-assertion" && len(v) > 60 {
					v = v[:60] + "…"
				}
				data.Headers = append(data.Headers, row{name, v})
			}
		}
		sort.Slice(data.Headers, func(i, j int) bool { return data.Headers[i].Name < data.Headers[j].Name })
		if raw := r.Header.Get("X-Portero-Assertion"); raw != "" {
			claims, err := verify(keys, raw)
			if err != nil {
				data.AssertionStatus = "assertion NOT verified: " + err.Error()
			} else {
				data.Verified = true
				data.AssertionStatus = "assertion signature verified with the gateway's JWKS"
				for k, v := range claims {
					b, _ := json.Marshal(v)
					data.Claims = append(data.Claims, row{k, string(b)})
				}
				sort.Slice(data.Claims, func(i, j int) bool { return data.Claims[i].Name < data.Claims[j].Name })
				if e, ok := claims["email"].(string); ok {
					data.Email = e
				}
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, data); err != nil {
			log.Print(err)
		}
	})
	log.Printf("demo app listening on %s", addr)
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func verify(keys *keySet, raw string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	key, err := keys.key(tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	claims := map[string]any{}
	if err := tok.Claims(key.Key, &std, &claims); err != nil {
		return nil, err
	}
	if err := std.Validate(jwt.Expected{Issuer: "portero", AnyAudience: jwt.Audience{"portero-upstream"}, Time: time.Now()}); err != nil {
		return nil, err
	}
	return claims, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
