package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/config"
)

func TestBufferPoolLendsFullSizeBuffersOnly(t *testing.T) {
	var p bufferPool
	for range 3 {
		b := p.Get()
		if len(b) != copyBufferSize {
			t.Fatalf("len %d, want %d", len(b), copyBufferSize)
		}
		p.Put(b[:10]) // ReverseProxy may hand back a resliced buffer
	}
	p.Put(make([]byte, 100)) // a foreign buffer is not kept
	for range 3 {
		if b := p.Get(); len(b) != copyBufferSize || cap(b) != copyBufferSize {
			t.Fatalf("len %d cap %d after a foreign Put", len(b), cap(b))
		}
	}
}

func TestForwarderUsesThePool(t *testing.T) {
	rp := newForwarder(config.Route{Name: "app", UpstreamURL: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}},
		NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler), requestTracer{})
	if _, ok := rp.BufferPool.(*bufferPool); !ok {
		t.Fatalf("BufferPool is %T", rp.BufferPool)
	}
}

// TestBufferedBodyLeavesInOneWrite: a body Portero read whole goes to the
// upstream in the same write as the request line and headers. (Without
// handing the transport a body it knows is in memory, net/http flushes the
// headers on their own first: two writes, two packets.)
func TestBufferedBodyLeavesInOneWrite(t *testing.T) {
	body := `{"phone": "+1 555 0100", "hours": "9-17"}`
	var got string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	rp := newForwarder(config.Route{Name: "app", UpstreamURL: u}, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler), requestTracer{})
	var writes atomic.Int32
	rp.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return &countingConn{Conn: c, writes: &writes}, err
	}
	req := httptest.NewRequest("PATCH", "http://gw.example/t/acme/locations/l1/profile", nil)
	req.Body, req.ContentLength = &bufferedBody{Reader: bytes.NewReader([]byte(body)), data: []byte(body)}, int64(len(body))
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || got != body {
		t.Fatalf("status %d, upstream got %q", rec.Code, got)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("the request left in %d writes, want 1", n)
	}
}

type countingConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
