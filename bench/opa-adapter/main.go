// Command opa-adapter is the glue a do-it-yourself Caddy + OPA stack needs:
// Caddy's forward_auth wants a 2xx or a 4xx, OPA's data API always answers
// 200 with a JSON result. It posts the request's facts to OPA and maps the
// result to 204 or 403.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9504", "address to listen on")
	opa := flag.String("opa", "http://127.0.0.1:8181/v1/data/portero/bench/allow", "OPA data API URL of the allow rule")
	flag.Parse()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		input := map[string]any{"input": map[string]string{
			"authorization": r.Header.Get("Authorization"),
			"method":        r.Header.Get("X-Forwarded-Method"),
			"path":          r.Header.Get("X-Forwarded-Uri"),
			"host":          r.Header.Get("X-Forwarded-Host"),
		}}
		body, _ := json.Marshal(input)
		resp, err := client.Post(*opa, "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, "opa unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var out struct {
			Result bool `json:"result"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.Result {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
