package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/testca"
)

// With listen.tls, TLS is layered on top of the limited listener, as
// cmd/portero does with ServeTLS: connections within the limits get
// HTTP/2, a refused one is closed before any handshake and without the
// plain-text 503 a TLS client could not read.
func TestConnectionLimitsUnderTLS(t *testing.T) {
	ca := testca.New(t, "test ca")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Listen{MaxConnections: 1, ClientConnections: config.Rate{PerMinute: 6000, Burst: 100}, TLS: &config.ListenTLS{}}
	l := LimitListener(ln, cfg, prometheus.NewRegistry())
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) }),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.Server(t, time.Hour, "127.0.0.1").TLS(t)}},
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("first connection: %q", body)
	}

	// The keep-alive connection holds the one slot.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
	if err := c.Handshake(); err == nil {
		t.Fatal("a connection over the limit completed a handshake")
	}
	if n := testutil.ToFloat64(l.refused.WithLabelValues("max_connections")); n != 1 {
		t.Fatalf("refused{max_connections} = %v", n)
	}
	// Nothing in plain text came back before the close.
	raw2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	_ = raw2.SetDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(raw2); len(got) != 0 {
		t.Fatalf("a refused TLS connection was sent %q", got)
	}
}
