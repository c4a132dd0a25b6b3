package proxy

import (
	"context"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/limit"
)

// ConnLimiter bounds the public listener: at most max open client
// connections, and a token bucket of new connections per client address.
// A connection over either limit is answered with a plain 503 and closed
// at once, so the client sees why instead of hanging in the accept queue.
// With TLS (layered on top of this listener, so refused connections cost
// no handshake) it is closed without an answer: a TLS client could not
// read a plain-text one.
type ConnLimiter struct {
	net.Listener
	max       int64
	open      atomic.Int64
	perClient *limit.PerKey
	now       func() time.Time
	refusal   []byte // what a refused connection gets; nothing under TLS

	openGauge prometheus.GaugeFunc
	refused   *prometheus.CounterVec
}

// refusalResponse is all a refused connection gets.
const refusalResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\nConnection: close\r\nContent-Length: 45\r\n\r\nPortero: too many connections; retry shortly\n"

// LimitListener wraps ln with the limits of cfg and registers
// portero_connections_open and portero_connections_refused_total{reason}
// on reg.
func LimitListener(ln net.Listener, cfg config.Listen, reg prometheus.Registerer) *ConnLimiter {
	l := &ConnLimiter{
		Listener:  ln,
		max:       int64(cfg.MaxConnections),
		perClient: limit.NewPerKey(cfg.ClientConnections, 100000),
		now:       time.Now,
		refusal:   []byte(refusalResponse),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_connections_refused_total",
			Help: "Client connections answered 503 and closed: max_connections (listen.max_connections reached) or client_rate (listen.client_connections).",
		}, []string{"reason"}),
	}
	l.openGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portero_connections_open",
		Help: "Open client connections on the public listener.",
	}, func() float64 { return float64(l.open.Load()) })
	if cfg.TLS != nil {
		l.refusal = nil
	}
	for _, r := range []string{"max_connections", "client_rate"} {
		l.refused.WithLabelValues(r)
	}
	reg.MustRegister(l.openGauge, l.refused)
	return l
}

// Accept returns the next connection within the limits; connections over
// them are refused in the background and never reach the server.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		reason := ""
		if l.open.Add(1) > l.max {
			reason = "max_connections"
		} else if ok, _ := l.perClient.Allow(limit.AddrKey(c.RemoteAddr().String()), l.now()); !ok {
			reason = "client_rate"
		}
		if reason == "" {
			return &limitedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.refused.WithLabelValues(reason).Inc()
		go func() {
			defer l.open.Add(-1)
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if l.refusal != nil {
				_, _ = c.Write(l.refusal)
			}
			_ = c.Close()
		}()
	}
}

// Open is the number of open client connections.
func (l *ConnLimiter) Open() int64 { return l.open.Load() }

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// ReadFrom keeps the connection's own ReadFrom (sendfile/splice) usable
// through the wrapper.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// ReleaseIdleMemory returns memory to the operating system while the
// gateway is quiet. A connection's goroutine keeps the stack it grew while
// its request was evaluated (the policy's evaluation is deep) for as long
// as the connection stays open; Go shrinks stacks only during a garbage
// collection, and an idle process does not collect. So every interval in
// which fewer than quiet requests arrived, it collects and returns freed
// pages: idle keep-alive connections cost about 20 KB instead of 32 KB each,
// and memory is given back after they close (see bench/idleconns).
func (g *Gateway) ReleaseIdleMemory(ctx context.Context, every time.Duration, quiet int64) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := g.served.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := g.served.Load()
		if n-last < quiet {
			debug.FreeOSMemory()
		}
		last = n
	}
}
