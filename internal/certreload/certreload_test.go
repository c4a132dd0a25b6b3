package certreload

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/internal/testca"
)

func newReloader(t *testing.T, ca *testca.CA) (*Reloader, string, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, time.Hour, "localhost").Write(t, dir, "server")
	r, err := New(certFile, keyFile, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r, certFile, keyFile
}

func serialOf(c *tls.Certificate) string { return c.Leaf.SerialNumber.String() }

// A new pair replaces the old; a pair that does not load is refused, once,
// and the last good one keeps serving.
func TestReloadReplacesGoodPairsAndRefusesBadOnes(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test ca")
	r, certFile, keyFile := newReloader(t, ca)
	first := serialOf(r.Current())

	if err := r.Reload(); err != nil || serialOf(r.Current()) != first {
		t.Fatalf("unchanged files: err %v, serial %s, want %s", err, serialOf(r.Current()), first)
	}
	good := ca.Server(t, time.Hour, "localhost")
	testca.WriteAtomic(t, certFile, good.CertPEM)
	testca.WriteAtomic(t, keyFile, good.KeyPEM)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := serialOf(r.Current()), good.Cert.SerialNumber.String(); got != want {
		t.Fatalf("serving %s after rotation, want %s", got, want)
	}
	if n := testutil.ToFloat64(r.reloads.WithLabelValues("ok")); n != 1 {
		t.Fatalf("reloads ok = %v, want 1", n)
	}

	other := ca.Server(t, time.Hour, "localhost")
	expired := ca.Server(t, -time.Minute, "localhost")
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"garbage certificate", []byte("not a certificate"), good.KeyPEM},
		{"empty files", nil, nil},
		{"key of another certificate", good.CertPEM, other.KeyPEM},
		{"truncated certificate", good.CertPEM[:len(good.CertPEM)/2], good.KeyPEM},
		{"expired certificate", expired.CertPEM, expired.KeyPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(r.reloads.WithLabelValues("error"))
			testca.WriteAtomic(t, certFile, tc.cert)
			testca.WriteAtomic(t, keyFile, tc.key)
			if err := r.Reload(); err == nil {
				t.Fatal("a bad pair was accepted")
			}
			if got := serialOf(r.Current()); got != good.Cert.SerialNumber.String() {
				t.Fatalf("serving %s, want the last good %s", got, good.Cert.SerialNumber)
			}
			if n := testutil.ToFloat64(r.reloads.WithLabelValues("error")); n != before+1 {
				t.Fatalf("reloads error = %v, want %v", n, before+1)
			}
			// The same bad files are not reported again.
			if err := r.Reload(); err != nil {
				t.Fatalf("unchanged bad files reported again: %v", err)
			}
		})
	}
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || serialOf(r.Current()) != good.Cert.SerialNumber.String() {
		t.Fatalf("missing certificate file: err %v, serving %s", err, serialOf(r.Current()))
	}
}

func TestNewRefusesBadPairs(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test ca")
	dir := t.TempDir()
	a, b := ca.Server(t, time.Hour, "localhost"), ca.Server(t, time.Hour, "localhost")
	certFile, _ := a.Write(t, dir, "a")
	_, otherKey := b.Write(t, dir, "b")
	if _, err := New(certFile, otherKey, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a certificate with another certificate's key was loaded")
	}
	if _, err := New(filepath.Join(dir, "missing.crt"), otherKey, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a missing certificate was loaded")
	}
}

// eventually polls cond until it holds or ten seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A renewal by rename is seen through the directory watch, with the
// periodic stat far away.
func TestWatchSeesRenewals(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test ca")
	r, certFile, keyFile := newReloader(t, ca)
	ctx, cancel := context.WithCancel(context.Background())
	done, err := r.Watch(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	next := ca.Server(t, time.Hour, "localhost")
	testca.WriteAtomic(t, certFile, next.CertPEM)
	testca.WriteAtomic(t, keyFile, next.KeyPEM)
	eventually(t, "the renewed certificate", func() bool { return serialOf(r.Current()) == next.Cert.SerialNumber.String() })
}

// Without file events (a watcher watching nothing stands for a file system
// that sends none), the periodic stat finds the renewal.
func TestPeriodicStatSeesRenewalsWithoutEvents(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test ca")
	r, certFile, keyFile := newReloader(t, ca)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); r.watchLoop(ctx, w, 20*time.Millisecond) }()
	defer func() { cancel(); <-stopped }()
	next := ca.Server(t, time.Hour, "localhost")
	testca.WriteAtomic(t, certFile, next.CertPEM)
	testca.WriteAtomic(t, keyFile, next.KeyPEM)
	eventually(t, "the renewed certificate", func() bool { return serialOf(r.Current()) == next.Cert.SerialNumber.String() })
}

// ServerConfig refuses TLS 1.1 and below and offers HTTP/2.
func TestServerConfigVersionsAndProtocols(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test ca")
	r, _, _ := newReloader(t, ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	for _, tc := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
				RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tc.min, MaxVersion: tc.max,
				NextProtos: []string{"h2", "http/1.1"},
			}}
			c, err := d.Dial("tcp", ln.Addr().String())
			if !tc.ok {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
				t.Fatalf("negotiated %q, want h2", p)
			}
		})
	}
}
