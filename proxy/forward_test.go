package proxy

import (
	"log/slog"
	"net/url"
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
		NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if _, ok := rp.BufferPool.(*bufferPool); !ok {
		t.Fatalf("BufferPool is %T", rp.BufferPool)
	}
}
