package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/config"
)

// serveLimited runs a keep-alive HTTP server behind a ConnLimiter.
func serveLimited(t *testing.T, cfg config.Listen) (*ConnLimiter, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(ln, cfg, prometheus.NewRegistry())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l, ln.Addr().String()
}

// get opens a connection, makes one request on it and returns the status
// and the still-open connection (nil when the server closed it).
func get(t *testing.T, addr string) (int, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		if !resp.Close || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many connections") {
			t.Fatalf("refusal: close=%v %v %q", resp.Close, resp.Header, body)
		}
		c.Close()
		return resp.StatusCode, nil
	}
	return resp.StatusCode, c
}

func TestConnectionCapRefusesClearlyAndFreesSlots(t *testing.T) {
	l, addr := serveLimited(t, config.Listen{MaxConnections: 2, ClientConnections: config.Rate{PerMinute: 6000, Burst: 100}})
	s1, c1 := get(t, addr)
	s2, c2 := get(t, addr)
	if s1 != 200 || s2 != 200 {
		t.Fatalf("first two: %d %d", s1, s2)
	}
	if s, _ := get(t, addr); s != http.StatusServiceUnavailable {
		t.Fatalf("third while two are open: %d, want 503", s)
	}
	if n := testutil.ToFloat64(l.refused.WithLabelValues("max_connections")); n != 1 {
		t.Fatalf("refused{max_connections} = %v", n)
	}
	c1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the server notices the close on its next read
	}
	if s, c := get(t, addr); s != 200 {
		t.Fatalf("after one closed: %d, want 200", s)
	} else {
		c.Close()
	}
	c2.Close()
}

func TestConnectionRatePerClient(t *testing.T) {
	l, addr := serveLimited(t, config.Listen{MaxConnections: 100, ClientConnections: config.Rate{PerMinute: 1, Burst: 3}})
	for i := range 3 {
		s, c := get(t, addr)
		if s != 200 {
			t.Fatalf("connection %d within the burst: %d", i, s)
		}
		c.Close()
	}
	if s, _ := get(t, addr); s != http.StatusServiceUnavailable {
		t.Fatalf("fourth new connection: %d, want 503", s)
	}
	if n := testutil.ToFloat64(l.refused.WithLabelValues("client_rate")); n != 1 {
		t.Fatalf("refused{client_rate} = %v", n)
	}
}
