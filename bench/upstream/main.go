// Command upstream is the benchmark's origin: every request gets the same
// 1 KiB body, as fast as net/http can send it.
package main

import (
	"bytes"
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9501", "address to listen on")
	flag.Parse()
	body := bytes.Repeat([]byte("portero-bench-payload-0123456789\n"), 32)[:1024]
	length := strconv.Itoa(len(body))
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", length)
			_, _ = w.Write(body)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
