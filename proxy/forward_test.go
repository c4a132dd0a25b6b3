package proxy

import "testing"

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
