package proxy

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

// denial is an answer Portero gives itself instead of forwarding.
type denial struct {
	status int
	reason string // stable id; never policy source or secrets
	id     string // decision id, to find the log line
}

var denyPage = template.Must(template.New("deny").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Status}} {{.Text}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:.1rem .3rem}</style>
</head><body><h1>{{.Text}}</h1><p>Portero did not let this request through.</p>
<p>Reason: <code>{{.Reason}}</code>{{if .ID}}<br>Decision id: <code>{{.ID}}</code>{{end}}</p></body></html>
`))

// writeDenial answers as JSON for API routes (or clients that ask for JSON)
// and as a small HTML page otherwise.
func writeDenial(w http.ResponseWriter, r *http.Request, api bool, d denial) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if api || strings.Contains(r.Header.Get("Accept"), "application/json") {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(d.status)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"error":  strings.ToLower(strings.ReplaceAll(http.StatusText(d.status), " ", "_")),
			"reason": d.reason, "decision_id": d.id,
		})
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(d.status)
	_ = denyPage.Execute(w, struct {
		Status           int
		Text, Reason, ID string
	}{d.status, http.StatusText(d.status), d.reason, d.id})
}
