// Package certreload serves a TLS certificate and key from files and
// replaces them when the files change. A listener's tls.Config asks for the
// certificate on every handshake (GetCertificate), so a renewed pair takes
// effect for new connections at once while open connections keep the one
// they were made with. A new pair that does not load is refused, logged
// and counted; the last good pair keeps serving.
package certreload

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// Reloader holds the current certificate of one cert_file and key_file.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	current atomic.Pointer[tls.Certificate]
	mu      sync.Mutex // one reload at a time
	seen    [2]stamp   // the files as last looked at, loaded or refused

	reloads *prometheus.CounterVec
}

// stamp is what a stat says about a file; a rotation changes it.
type stamp struct {
	size    int64
	modTime time.Time
}

// New loads certFile and keyFile and registers
// portero_tls_certificate_expiry_seconds and
// portero_tls_certificate_reloads_total{result} on reg. It fails when the
// pair does not load (see Load).
func New(certFile, keyFile string, reg prometheus.Registerer, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_tls_certificate_reloads_total",
			Help: "Reloads of listen.tls's certificate and key after their files changed: ok, or error (the pair was refused and the previous one keeps serving).",
		}, []string{"result"}),
	}
	r.seen = r.stat()
	cert, err := Load(certFile, keyFile, r.now())
	if err != nil {
		return nil, err
	}
	r.current.Store(cert)
	for _, res := range []string{"ok", "error"} {
		r.reloads.WithLabelValues(res)
	}
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portero_tls_certificate_expiry_seconds",
		Help: "When the public listener's certificate expires (its not-after, unix seconds).",
	}, func() float64 { return float64(r.current.Load().Leaf.NotAfter.Unix()) })
	reg.MustRegister(r.reloads, expiry)
	return r, nil
}

// Load reads a certificate chain and its private key from PEM files and
// checks that they belong together and that the certificate has not
// expired at now.
func Load(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	// LoadX509KeyPair has parsed the leaf (Go 1.23+).
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("load certificate %s: it expired at %s", certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// ServerConfig is the tls.Config of a public listener: TLS 1.2 at least,
// HTTP/2 offered before HTTP/1.1, the current certificate on every
// handshake.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: r.GetCertificate,
	}
}

// GetCertificate returns the current certificate, whatever the client asks.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current.Load(), nil
}

// Current is the certificate new connections get.
func (r *Reloader) Current() *tls.Certificate { return r.current.Load() }

// Reload loads the files if they changed since they were last looked at.
// A pair that does not load is refused: the error is logged and counted,
// and the previous certificate stays. Unchanged files are not read again,
// so a refused pair is reported once, not on every check.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stat()
	if st == r.seen {
		return nil
	}
	r.seen = st
	cert, err := Load(r.certFile, r.keyFile, r.now())
	if err != nil {
		r.reloads.WithLabelValues("error").Inc()
		r.log.Error("tls certificate reload refused; the previous certificate keeps serving",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err.Error(),
			"serving_not_after", r.current.Load().Leaf.NotAfter.UTC())
		return err
	}
	old := r.current.Load()
	if bytes.Equal(old.Leaf.Raw, cert.Leaf.Raw) {
		// Touched, or the key written after its certificate: nothing new.
		return nil
	}
	r.current.Store(cert)
	r.reloads.WithLabelValues("ok").Inc()
	r.log.Info("tls certificate reloaded", "cert_file", r.certFile,
		"subject", cert.Leaf.Subject.String(), "serial", cert.Leaf.SerialNumber.String(),
		"not_after", cert.Leaf.NotAfter.UTC())
	return nil
}

// stat stamps both files; a file that cannot be stat'ed gets a zero stamp,
// so it reads as changed once it is back.
func (r *Reloader) stat() [2]stamp {
	var s [2]stamp
	for i, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s[i] = stamp{fi.Size(), fi.ModTime()}
		}
	}
	return s
}

// settle is how long the watcher waits after the last file event before
// reloading, so a certificate and its key written one after the other are
// loaded together.
const settle = 100 * time.Millisecond

// Watch reloads the pair when a file in its directories changes (fsnotify;
// directories, not files, because renewals replace files by a rename or,
// in Kubernetes, by swapping a symlink) and, in case an event is missed
// (network file systems, some container mounts), whenever a stat every
// interval finds them changed. It returns once the watches are in place;
// done is closed when ctx ends and watching has stopped.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) (done <-chan struct{}, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch tls certificate: %w", err)
	}
	for _, dir := range dirsOf(r.certFile, r.keyFile) {
		if err := w.Add(dir); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch tls certificate directory %s: %w", dir, err)
		}
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer w.Close()
		r.watchLoop(ctx, w, interval)
	}()
	return stopped, nil
}

func (r *Reloader) watchLoop(ctx context.Context, w *fsnotify.Watcher, interval time.Duration) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			timer.Reset(settle)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			r.log.Warn("tls certificate watcher error", "cert_file", r.certFile, "error", err.Error())
		case <-timer.C:
			_ = r.Reload() // Reload logs and counts its own failure
		case <-tick.C:
			_ = r.Reload()
		}
	}
}

func dirsOf(files ...string) []string {
	var dirs []string
	for _, f := range files {
		if d := filepath.Dir(f); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}
