// Package deny is how Portero answers a request itself instead of
// forwarding it, on both planes: a small HTML page for browsers, JSON for
// APIs, with a stable reason id and the decision id, never policy source or
// secrets.
package deny

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/portero-gateway/portero/internal/i18n"
)

// Denial is an answer Portero gives itself instead of forwarding.
type Denial struct {
	Status int
	Reason string // stable id; never policy source or secrets
	ID     string // decision id, to find the log line
}

type idKey struct{}

// WithID returns ctx carrying the request's decision id, for answers
// written further down (the control plane's).
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// ID is the decision id ctx carries, "" when none.
func ID(ctx context.Context) string {
	id, _ := ctx.Value(idKey{}).(string)
	return id
}

var page = template.Must(template.New("deny").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Status}} {{.Text}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:.1rem .3rem}</style>
</head><body><h1>{{.Text}}</h1><p>{{call .T "deny.not_through"}}</p>
<p>{{call .T "deny.reason"}}: <code>{{.Reason}}</code>{{if .ID}}<br>{{call .T "deny.decision_id"}}: <code>{{.ID}}</code>{{end}}</p></body></html>
`))

// Counter is a ResponseWriter that wants to know the reason of the denial
// written to it (the request path counts denials by reason).
type Counter interface {
	Denied(reason string)
}

// Write answers as JSON for API routes (or clients that ask for JSON) and as
// a small HTML page otherwise.
func Write(w http.ResponseWriter, r *http.Request, api bool, d Denial) {
	if c, ok := w.(Counter); ok {
		c.Denied(d.Reason)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if api || strings.Contains(r.Header.Get("Accept"), "application/json") {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(d.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"error":  strings.ToLower(strings.ReplaceAll(http.StatusText(d.Status), " ", "_")),
			"reason": d.Reason, "decision_id": d.ID,
		})
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(d.Status)
	// The page speaks the user's language (the console's choice, else
	// Accept-Language); the reason and id stay as they are, for support.
	lang := i18n.Of(r)
	_ = page.Execute(w, struct {
		Status                 int
		Text, Reason, ID, Lang string
		T                      func(string, ...any) string
	}{d.Status, i18n.Or(lang, fmt.Sprintf("status.%d", d.Status), http.StatusText(d.Status)), d.Reason, d.ID, lang,
		func(key string, args ...any) string { return i18n.T(lang, key, args...) }})
}

// Unauthenticated answers 401 with a Bearer challenge (RFC 6750), or 503
// while the identity provider has not been reached. reason is the
// authentication failure's ("missing", "invalid", …; "" for none given).
func Unauthenticated(w http.ResponseWriter, r *http.Request, api bool, reason, id string) {
	if reason == "unavailable" {
		w.Header().Set("Retry-After", "5")
		Write(w, r, api, Denial{Status: http.StatusServiceUnavailable, Reason: "auth.unavailable", ID: id})
		return
	}
	challenge := `Bearer realm="portero"`
	out := "auth.required"
	if reason != "" && reason != "missing" {
		challenge += `, error="invalid_token"`
		out = "auth." + reason
	}
	w.Header().Set("WWW-Authenticate", challenge)
	Write(w, r, api, Denial{Status: http.StatusUnauthorized, Reason: out, ID: id})
}
