package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/deny"
)

// newForwarder returns the reverse proxy for one route: X-Forwarded-* set
// from the connection (client-sent values are dropped by Rewrite), responses
// streamed, WebSocket upgrades passed through, a 502/504 with a metric
// when the upstream fails, and with tracing on the forward span's W3C trace
// context.
func newForwarder(rc config.Route, m *Metrics, log *slog.Logger, tracer requestTracer) *httputil.ReverseProxy {
	transport := &http.Transport{
		Proxy: nil, // never send tenant traffic through an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     rc.UpstreamURL.Scheme == "https",
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: rc.Timeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       upstreamTLS(rc.TLS),
	}
	upstream := rc.UpstreamURL
	preserveHost := rc.PreserveHost
	failures := m.upstreamErrors.WithLabelValues(rc.Name)
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
			st := stateOf(pr.In.Context())
			if b, ok := pr.In.Body.(*bufferedBody); ok {
				// A body Portero read whole: hand the transport a reader it
				// knows is in memory (ReverseProxy's own wrapper hides that),
				// so request line, headers and body leave in one write
				// instead of the headers being flushed on their own first.
				pr.Out.Body = io.NopCloser(bytes.NewReader(b.data))
			}
			if st != nil && st.host != "" {
				// The host the policy decided on, in its one spelling.
				hostport := st.host
				if _, port, ok := splitHostPort(pr.In.Host); ok {
					hostport = net.JoinHostPort(st.host, port)
				} else if strings.Contains(st.host, ":") {
					hostport = "[" + st.host + "]"
				}
				pr.Out.Header.Set("X-Forwarded-Host", hostport)
				if preserveHost {
					pr.Out.Host = hostport
				}
			}
			// Request trailers never reach the app: they would arrive after
			// the decision, unchecked.
			pr.Out.Trailer = nil
			// With tracing on, Portero's trace context replaces the
			// client's traceparent; off, headers pass as they came.
			tracer.inject(pr.Out.Context(), pr.Out.Header)
			// What the policy decided is set last, on the outgoing request,
			// after ReverseProxy removed the hop-by-hop headers (and any
			// header the client named in Connection): nothing the client
			// sends can remove or change it.
			if st != nil {
				for name, vals := range st.upstream {
					pr.Out.Header[name] = vals
				}
				if st.dropCookies != nil {
					stripCookies(pr.Out.Header, st.dropCookies...)
				}
			}
		},
		// FlushInterval stays 0: ReverseProxy already flushes streaming
		// responses (SSE, unknown length) after every write.
		Transport:  transport,
		BufferPool: &bufferPool{},
		ErrorLog:   slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				w.WriteHeader(499) // the client went away; not the upstream's fault
				return
			}
			failures.Inc()
			status := http.StatusBadGateway
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				status = http.StatusGatewayTimeout
			}
			log.Warn("upstream error", "route", rc.Name, "upstream", upstream.Host, "error", err.Error())
			deny.Write(w, r, rc.API, deny.Denial{Status: status, Reason: "upstream.unavailable", ID: decisionID(r.Context())})
		},
	}
}

// upstreamTLS is how the forwarder verifies an https upstream: TLS 1.2 at
// least, the route's CA instead of the system's roots when it names one,
// and its client certificate shown whenever the upstream asks. HTTP/2 is
// offered by ALPN (ForceAttemptHTTP2); requests that need HTTP/1.1
// (WebSocket upgrades) get a connection of their own. Nil (system roots,
// Go's defaults) without routes[].tls.
func upstreamTLS(t *config.UpstreamTLS) *tls.Config {
	if t == nil {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: t.RootCAs, ServerName: t.ServerName}
	if cert := t.Certificate; cert != nil {
		// Always the configured certificate, not only when the upstream's
		// list of acceptable CAs names its issuer (what Certificates
		// would do): the upstream decides, and says why when it refuses.
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

// bufferedBody is a request body Portero has read whole (to show it to the
// policy) and gives back to the upstream.
type bufferedBody struct {
	*bytes.Reader
	data []byte
}

func (*bufferedBody) Close() error { return nil }

// bufferPool lends ReverseProxy its body copy buffers. Without a pool it
// allocates 32 KiB per response: under load that was three quarters of
// every byte Portero allocated, and the garbage collector's work with it.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		buf = buf[:copyBufferSize]
		b.pool.Put(&buf)
	}
}
