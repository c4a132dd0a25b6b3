package proxy_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/portero-gateway/portero/internal/gatewaytest"
	"github.com/portero-gateway/portero/internal/testca"
)

var allowAll = fstest.MapFS{"p.rego": {Data: []byte(`package portero.authz

decision := {"allow": true, "status": 200, "reason": "ok"}
`)}}

// tlsUpstream is an https upstream with a certificate from ca for names,
// speaking HTTP/2 and HTTP/1.1, that answers with the protocol and the
// client certificate it saw. With clientCA it requires a client
// certificate issued by clientCA.
func tlsUpstream(t *testing.T, ca *testca.CA, clientCA *testca.CA, names ...string) *httptest.Server {
	t.Helper()
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := "none"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "proto=%s client=%s", r.Proto, client)
	}))
	up.EnableHTTP2 = true
	up.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, time.Hour, names...).TLS(t)}}
	if clientCA != nil {
		up.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		up.TLS.ClientCAs = clientCA.Pool
	}
	up.StartTLS()
	t.Cleanup(up.Close)
	return up
}

// An https upstream is verified against routes[].tls.ca_file (or the
// system's roots), by server_name when given, is spoken to in HTTP/2, and
// gets the client certificate of cert_file and key_file. Anything that
// does not verify is a 502, and the upstream never sees the request.
func TestHTTPSUpstreams(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	private, other := testca.New(t, "private ca"), testca.New(t, "other ca")
	caFile, otherCAFile := filepath.Join(dir, "private.pem"), filepath.Join(dir, "other.pem")
	testca.WriteAtomic(t, caFile, private.PEM)
	testca.WriteAtomic(t, otherCAFile, other.PEM)
	clientCert, clientKey := private.Client(t, "portero").Write(t, dir, "client")
	strangerCert, strangerKey := other.Client(t, "stranger").Write(t, dir, "stranger")

	byIP := tlsUpstream(t, private, nil, "127.0.0.1")
	byName := tlsUpstream(t, private, nil, "app.internal")
	mutual := tlsUpstream(t, private, private, "127.0.0.1")

	for _, tc := range []struct {
		name     string
		upstream *httptest.Server
		tls      string // routes[0].tls, "" for none
		status   int
		body     string
	}{
		{"private CA in ca_file", byIP, fmt.Sprintf("{ca_file: %s}", caFile), 200, "proto=HTTP/2.0 client=none"},
		{"system roots do not know it", byIP, "", 502, ""},
		{"another CA", byIP, fmt.Sprintf("{ca_file: %s}", otherCAFile), 502, ""},
		{"server_name names the certificate", byName, fmt.Sprintf("{ca_file: %s, server_name: app.internal}", caFile), 200, "proto=HTTP/2.0 client=none"},
		{"the certificate is not for the address", byName, fmt.Sprintf("{ca_file: %s}", caFile), 502, ""},
		{"server_name the certificate does not hold", byIP, fmt.Sprintf("{ca_file: %s, server_name: elsewhere.internal}", caFile), 502, ""},
		{"mutual TLS with a client certificate", mutual, fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", caFile, clientCert, clientKey), 200, "proto=HTTP/2.0 client=portero"},
		{"mutual TLS without one", mutual, fmt.Sprintf("{ca_file: %s}", caFile), 502, ""},
		{"mutual TLS with one the upstream does not trust", mutual, fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", caFile, strangerCert, strangerKey), 502, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := gatewaytest.NewWith(t, allowAll, gatewaytest.Options{Config: func(issuer, _ string) string {
				route := fmt.Sprintf("  - name: app\n    upstream: %s\n", tc.upstream.URL)
				if tc.tls != "" {
					route += "    tls: " + tc.tls + "\n"
				}
				return fmt.Sprintf("oidc:\n  issuer: %s\n  audiences: [portero]\nroutes:\n%s", issuer, route)
			}})
			rec := h.Do(t, "GET", "http://localhost/x", "", nil, "")
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 && rec.Body.String() != tc.body {
				t.Fatalf("upstream answered %q, want %q", rec.Body, tc.body)
			}
			if tc.status == 502 && h.Metric(t, "portero_upstream_errors_total", "route", "app") != 1 {
				t.Fatalf("upstream errors = %v, want 1", h.Metric(t, "portero_upstream_errors_total", "route", "app"))
			}
		})
	}
}

// A WebSocket upgrade to an https upstream that speaks HTTP/2 still goes
// over HTTP/1.1 (an upgrade exists only there): the forwarder's transport
// gives it a connection of its own.
func TestWebSocketToAnHTTP2Upstream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testca.New(t, "private ca")
	caFile := filepath.Join(dir, "ca.pem")
	testca.WriteAtomic(t, caFile, ca.PEM)
	up := tlsUpstream(t, ca, nil, "127.0.0.1")
	up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			fmt.Fprintf(w, "proto=%s", r.Proto)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot hijack "+r.Proto, 500)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
		_ = brw.Flush()
	})
	h := gatewaytest.NewWith(t, allowAll, gatewaytest.Options{Config: func(issuer, _ string) string {
		return fmt.Sprintf("oidc:\n  issuer: %s\n  audiences: [portero]\nroutes:\n  - name: app\n    upstream: %s\n    tls: {ca_file: %s}\n", issuer, up.URL, caFile)
	}})
	// First an ordinary request, so an HTTP/2 connection is open and idle.
	if rec := h.Do(t, "GET", "http://localhost/x", "", nil, ""); rec.Body.String() != "proto=HTTP/2.0" {
		t.Fatalf("plain request: %d %q", rec.Code, rec.Body)
	}
	conn, err := net.Dial("tcp", h.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /socket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	msg := make([]byte, 5)
	if _, err := io.ReadFull(br, msg); err != nil || string(msg) != "hello" {
		t.Fatalf("read %q %v", msg, err)
	}
}
