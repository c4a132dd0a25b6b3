package mail

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/testca"
	"github.com/portero-gateway/portero/internal/testport"
)

// mailpitBin finds Mailpit: $PORTERO_MAILPIT, on PATH, or in
// $(go env GOPATH)/bin; the test is skipped without it unless
// PORTERO_MAILPIT_REQUIRED=1 (scripts/test.sh installs it and sets that).
func mailpitBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PORTERO_MAILPIT"); p != "" {
		return p
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "mailpit")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("PORTERO_MAILPIT_REQUIRED") == "1" {
		t.Fatal("mailpit is required (PORTERO_MAILPIT_REQUIRED=1) but not found: go install github.com/axllent/mailpit@v1.33.1")
	}
	t.Skip("mailpit not found (go install github.com/axllent/mailpit@v1.33.1, or set PORTERO_MAILPIT); set PORTERO_MAILPIT_REQUIRED=1 to fail instead")
	return ""
}

// runMailpit starts Mailpit with args and returns its SMTP port and API
// address.
func runMailpit(t *testing.T, args ...string) (smtpPort int, api string) {
	t.Helper()
	bin := mailpitBin(t)
	addrs := testport.Addrs(t, 2)
	cmd := exec.Command(bin, append([]string{"--smtp", addrs[0], "--listen", addrs[1], "--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--disable-version-check"}, args...)...)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addrs[1] + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("mailpit exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mailpit not ready")
		}
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	p, _ := strconv.Atoi(port)
	return p, addrs[1]
}

type mailpitMessage struct {
	MessageID string
	Subject   string
	To        []struct{ Address string }
}

func mailpitMessages(t *testing.T, api string) []mailpitMessage {
	t.Helper()
	resp, err := http.Get("http://" + api + "/api/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Messages []mailpitMessage }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list.Messages
}

// Through a real SMTP server: STARTTLS (required, the server's certificate
// checked against mail.smtp.ca_file) with SMTP AUTH, and TLS from the
// first byte; a certificate the CA did not sign is a connect failure,
// retried, never sent in the clear.
func TestMailpitTLSAndAuth(t *testing.T) {
	ca := testca.New(t, "mail test CA")
	dir := t.TempDir()
	cert, key := ca.Server(t, time.Hour, "127.0.0.1").Write(t, dir, "smtp")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		mode string
		args []string
	}{
		{"starttls", []string{"--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls", "--smtp-auth-accept-any"}},
		{"tls", []string{"--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-tls", "--smtp-auth-accept-any"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			port, api := runMailpit(t, tc.args...)
			s, store, _ := senderOn(t, port, func(c *config.Mail) {
				c.SMTP.TLS, c.SMTP.CAFile, c.SMTP.Username, c.SMTP.Password = tc.mode, caFile, "portero", "s3cret"
			})
			if err := store.EnqueueMail(ctx, revoked("tls:"+tc.mode)); err != nil {
				t.Fatal(err)
			}
			if n := s.Flush(ctx); n != 1 {
				t.Fatalf("flushed %d", n)
			}
			if m := status(t, store, "tls:"+tc.mode); m.Status != "sent" {
				t.Fatalf("not sent: %+v", m)
			}
			got := mailpitMessages(t, api)
			if len(got) != 1 || got[0].MessageID != MessageID("tls:"+tc.mode, "portero.test") || got[0].Subject != "Acme terminó su colaboración con Partner Co" ||
				len(got[0].To) != 1 || got[0].To[0].Address != "pat@partner.example" {
				t.Fatalf("mailpit got %+v", got)
			}

			// The system's roots do not know the test CA: refused, retried.
			s2, store2, _ := senderOn(t, port, func(c *config.Mail) { c.SMTP.TLS, c.MaxAttempts = tc.mode, 2 })
			if err := store2.EnqueueMail(ctx, revoked("untrusted")); err != nil {
				t.Fatal(err)
			}
			flushUntil(t, s2, func() bool { return status(t, store2, "untrusted").Status == "failed" })
			if m := status(t, store2, "untrusted"); !strings.Contains(m.LastError, "certificate") {
				t.Errorf("last error %q does not name the certificate", m.LastError)
			}
			if v := testutil.ToFloat64(s2.failed.WithLabelValues("connect")); v != 2 {
				t.Errorf("failed{connect} = %v, want 2", v)
			}
			if len(mailpitMessages(t, api)) != 1 {
				t.Fatal("a message went to a server whose certificate was not trusted")
			}
		})
	}
}
