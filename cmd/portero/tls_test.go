package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/testca"
)

// The real binary with listen.tls: TLS 1.2 and 1.3 only, HTTP/2 to
// clients, and certificate files renewed on disk while a keep-alive
// HTTP/2 connection is open: that connection goes on with the certificate
// it was made with, a new one gets the renewed certificate, and a broken
// pair written afterwards is refused while the last good one serves.
func TestServeBinaryTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "portero test ca")
	first := ca.Server(t, time.Hour, "127.0.0.1", "localhost")
	certFile, keyFile := first.Write(t, dir, "tls")
	example, err := os.ReadFile("../../gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(example), "listen:\n", fmt.Sprintf("listen:\n  tls: {cert_file: %s, key_file: %s}\n", certFile, keyFile), 1)
	config := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	public, ops, iss := serveBinaryConfig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s proto=%s", r.Header.Get("X-Portero-User"), r.Header.Get("X-Forwarded-Proto"))
	}), config)

	// servedSerial is the serial of the certificate a new connection gets.
	servedSerial := func(t *testing.T) string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", public, &tls.Config{RootCAs: ca.Pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}

	t.Run("versions", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			version uint16
			ok      bool
		}{
			{"TLS 1.0", tls.VersionTLS10, false},
			{"TLS 1.1", tls.VersionTLS11, false},
			{"TLS 1.2", tls.VersionTLS12, true},
			{"TLS 1.3", tls.VersionTLS13, true},
		} {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", public, &tls.Config{
				RootCAs: ca.Pool, MinVersion: tc.version, MaxVersion: tc.version, NextProtos: []string{"h2", "http/1.1"}})
			switch {
			case tc.ok && err != nil:
				t.Errorf("%s: %v", tc.name, err)
			case !tc.ok && err == nil:
				c.Close()
				t.Errorf("%s: handshake succeeded", tc.name)
			case tc.ok:
				if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
					t.Errorf("%s: ALPN %q, want h2", tc.name, p)
				}
				c.Close()
			}
		}
	})

	// One client, one keep-alive connection, for the rest of the test.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, ForceAttemptHTTP2: true}}
	t.Cleanup(client.CloseIdleConnections)
	var firstConn net.Conn
	// get sends one request and reports the connection it went over.
	get := func(t *testing.T, path string, hdr http.Header) (*http.Response, string, httptrace.GotConnInfo) {
		t.Helper()
		var info httptrace.GotConnInfo
		req, _ := http.NewRequest("GET", "https://"+public+path, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { info = i }}))
		for k, v := range hdr {
			req.Header[k] = v
		}
		if h := hdr.Get("Host"); h != "" {
			req.Host = h
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body), info
	}

	t.Run("HTTP/2 through to the upstream", func(t *testing.T) {
		claims := iss.Claims("alice", "portero")
		claims["roles"] = []string{"acme:administrator"}
		// Portero's own headers and a forwarded scheme sent by the client
		// are removed over HTTP/2 as over HTTP/1.1.
		resp, body, info := get(t, "/api/orders", http.Header{"Host": {"acme.apps.localhost"}, "Authorization": {"Bearer " + iss.Sign(t, claims)},
			"X-Portero-User": {"mallory"}, "X-Forwarded-Proto": {"http"}})
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || body != "user=alice proto=https" {
			t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
		}
		firstConn = info.Conn
	})

	t.Run("renewed files serve new connections; the open one goes on", func(t *testing.T) {
		if firstConn == nil {
			t.Skip("no connection from the previous step")
		}
		renewed := ca.Server(t, 2*time.Hour, "127.0.0.1", "localhost")
		testca.WriteAtomic(t, certFile, renewed.CertPEM)
		testca.WriteAtomic(t, keyFile, renewed.KeyPEM)
		eventually(t, "the renewed certificate on a new connection", func() bool {
			return servedSerial(t) == renewed.Cert.SerialNumber.String()
		})
		resp, _, info := get(t, "/.well-known/portero/jwks.json", nil)
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("%s %d on the open connection", resp.Proto, resp.StatusCode)
		}
		if !info.Reused || info.Conn != firstConn {
			t.Fatalf("the request did not reuse the open connection (reused %v)", info.Reused)
		}
		if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(first.Cert.SerialNumber) != 0 {
			t.Fatalf("the open connection shows serial %s, want the one it was made with, %s", got, first.Cert.SerialNumber)
		}
		got := metricValue(t, ops, "portero_tls_certificate_expiry_seconds")
		if v, err := strconv.ParseFloat(got, 64); err != nil || int64(v) != renewed.Cert.NotAfter.Unix() {
			t.Fatalf("portero_tls_certificate_expiry_seconds = %q, want %d", got, renewed.Cert.NotAfter.Unix())
		}

		t.Run("a broken pair keeps the last good one", func(t *testing.T) {
			stranger := ca.Server(t, time.Hour, "127.0.0.1")
			testca.WriteAtomic(t, keyFile, stranger.KeyPEM) // the key of another certificate
			eventually(t, "the refused reload", func() bool {
				return metricValue(t, ops, `portero_tls_certificate_reloads_total{result="error"}`) == "1"
			})
			if got := servedSerial(t); got != renewed.Cert.SerialNumber.String() {
				t.Fatalf("serving %s, want the last good %s", got, renewed.Cert.SerialNumber)
			}
			if resp, _, _ := get(t, "/.well-known/portero/jwks.json", nil); resp.StatusCode != 200 {
				t.Fatalf("%d", resp.StatusCode)
			}
		})
	})
}

// metricValue is the value of one series on the ops listener's /metrics,
// "" when absent.
func metricValue(t *testing.T, ops, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// eventually polls cond until it holds or ten seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
