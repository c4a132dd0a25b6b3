package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/testissuer"
	"github.com/portero-gateway/portero/internal/testport"
	"github.com/portero-gateway/portero/mail"
)

// mailpit is a running Mailpit: a real SMTP server that keeps every
// message, and its API.
type mailpit struct {
	cmd        *exec.Cmd
	smtp, http string
	logs       *lockedBuffer
}

// mailpitBinary finds Mailpit (scripts/test.sh installs it with go
// install): $PORTERO_MAILPIT, on PATH, or in $(go env GOPATH)/bin. The
// test is skipped without it unless PORTERO_MAILPIT_REQUIRED=1.
func mailpitBinary(t *testing.T) string {
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

func startMailpit(t *testing.T, args ...string) *mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	addrs := testport.Addrs(t, 2)
	m := &mailpit{smtp: addrs[0], http: addrs[1], logs: &lockedBuffer{}}
	m.cmd = exec.Command(bin, append([]string{"--smtp", m.smtp, "--listen", m.http, "--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--disable-version-check"}, args...)...)
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = m.cmd.Process.Signal(syscall.SIGCONT) // in case a test left it stopped
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("mailpit logs:\n%s", m.logs.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + m.http + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return m
			}
		}
		select {
		case <-exited:
			t.Fatalf("mailpit exited:\n%s", m.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit not ready:\n%s", m.logs.String())
		}
	}
}

// messages lists what Mailpit received: each message's Message-ID.
func (m *mailpit) messages(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get("http://" + m.http + "/api/v1/messages?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Total    int `json:"total"`
		Messages []struct {
			MessageID string `json:"MessageID"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, msg := range list.Messages {
		ids = append(ids, msg.MessageID)
	}
	if len(ids) != list.Total {
		t.Fatalf("mailpit lists %d of %d messages", len(ids), list.Total)
	}
	return ids
}

// chaos sets Mailpit's chaos trigger for the sender stage (MAIL FROM):
// answer code with the given probability (0 turns it off).
func (m *mailpit) chaos(t *testing.T, code, probability int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"Sender": map[string]int{"ErrorCode": code, "Probability": probability}})
	req, _ := http.NewRequest(http.MethodPut, "http://"+m.http+"/api/v1/chaos", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("mailpit chaos: %s", resp.Status)
	}
}

const mailConfig = `
access:
  store: %s
mail:
  smtp:
    host: 127.0.0.1
    port: %s
    tls: none
    timeout: %s
  from: Portero <portero@faults.test>
  base_url: https://gateway.faults.test
  batch: 1
  poll_interval: 200ms
  retry_min: 200ms
  retry_max: 1s
  max_attempts: 50
`

func mailGateway(t *testing.T, mp *mailpit, db, timeout string) *gateway {
	t.Helper()
	iss := testissuer.New(t)
	up := startUpstream(t, "")
	port := mp.smtp[strings.LastIndexByte(mp.smtp, ':')+1:]
	return startGateway(t, iss, up.addr, fmt.Sprintf(mailConfig, db, port, timeout))
}

// queueMails writes n messages to the store's outbox from this process, as
// `portero admin` writes beside a running gateway, and returns their
// keys.
func queueMails(t *testing.T, db string, n int) []string {
	t.Helper()
	store, err := access.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var keys []string
	for i := range n {
		key := fmt.Sprintf("partnership_revoked:faults-%d", i)
		err := store.EnqueueMail(context.Background(), access.Mail{Key: key, Kind: "partnership_revoked", Tenant: "acme",
			To: fmt.Sprintf("partner%d@faults.test", i), Lang: []string{"en", "es"}[i%2],
			Data: map[string]any{"tenant_name": "Acme", "partner_name": fmt.Sprintf("Partner %d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}

// outbox counts the store's messages by status.
func outbox(t *testing.T, db string) map[string]int {
	t.Helper()
	store, err := access.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := store.MailCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitOutbox(t *testing.T, db, what string, ok func(map[string]int) bool, limit time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c := outbox(t, db)
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox never %s within %v: %v", what, limit, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The outbox survives kill -9: messages committed to it, one of them in
// the middle of its SMTP exchange (Mailpit stopped), the rest not yet
// claimed, are each sent exactly once after the gateway restarts — the
// one whose sender died after its lease ran out.
func TestMailSurvivesKill(t *testing.T) {
	need(t)
	mp := startMailpit(t)
	db := filepath.Join(t.TempDir(), "access.db")
	g := mailGateway(t, mp, db, "5s")

	// Mailpit stopped: the kernel still accepts the gateway's connection,
	// and the exchange hangs waiting for the greeting.
	if err := mp.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const n = 6
	keys := queueMails(t, db, n)
	c := waitOutbox(t, db, "had a message being sent", func(c map[string]int) bool { return c["sending"] == 1 }, 30*time.Second)
	if err := g.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-g.exited
	t.Logf("killed with the outbox at %v", c)
	if err := mp.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if got := mp.messages(t); len(got) != 0 {
		t.Fatalf("mailpit got %d messages from the killed gateway", len(got))
	}

	begin := time.Now()
	g.start()
	c = waitOutbox(t, db, "sent everything", func(c map[string]int) bool { return c["sent"] == n }, 90*time.Second)
	t.Logf("after the restart: all %d sent in %v (the interrupted one after its lease: smtp timeout × (batch + 2) = 15s): %v",
		n, time.Since(begin).Round(100*time.Millisecond), c)
	got := mp.messages(t)
	want := map[string]bool{}
	for _, k := range keys {
		want[mail.MessageID(k, "faults.test")] = true
	}
	seen := map[string]bool{}
	for _, id := range got {
		if !want[id] || seen[id] {
			t.Errorf("unexpected or repeated Message-ID %q", id)
		}
		seen[id] = true
	}
	if len(got) != n {
		t.Fatalf("mailpit got %d messages, want %d exactly", len(got), n)
	}
	if v := g.metric("portero_mail_sent_total"); v != n {
		t.Errorf("portero_mail_sent_total = %v after the restart, want %d", v, n)
	}
	if v := g.metric("portero_mail_queued"); v != 0 && v != -1 {
		t.Logf("portero_mail_queued = %v (refreshed each poll)", v)
	}
}

// A server answering 451 is retried with backoff until it accepts, each
// failed attempt counted by reason; the message arrives once.
func TestMailFailingServerRetried(t *testing.T) {
	need(t)
	mp := startMailpit(t, "--enable-chaos")
	db := filepath.Join(t.TempDir(), "access.db")
	g := mailGateway(t, mp, db, "5s")
	mp.chaos(t, 451, 100)
	keys := queueMails(t, db, 1)
	deadline := time.Now().Add(60 * time.Second)
	for g.metric(`portero_mail_failed_total{reason="temporary"}`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no retries counted: failed_total{temporary} = %v\n%s", g.metric(`portero_mail_failed_total{reason="temporary"}`), g.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := mp.messages(t); len(got) != 0 {
		t.Fatalf("mailpit kept %d messages it refused", len(got))
	}
	mp.chaos(t, 451, 0)
	waitOutbox(t, db, "sent the message", func(c map[string]int) bool { return c["sent"] == 1 }, 30*time.Second)
	got := mp.messages(t)
	if len(got) != 1 || got[0] != mail.MessageID(keys[0], "faults.test") {
		t.Fatalf("mailpit got %v", got)
	}
	failed := g.metric(`portero_mail_failed_total{reason="temporary"}`)
	if sent, dead := g.metric("portero_mail_sent_total"), g.metric("portero_mail_dead_total"); sent != 1 || dead != 0 {
		t.Fatalf("sent %v, dead %v", sent, dead)
	}
	store, err := access.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, err := store.MailByKey(context.Background(), keys[0])
	if err != nil || m.Attempts < 4 || float64(m.Attempts) != failed+1 {
		t.Fatalf("outbox: %+v %v (failed attempts counted: %v)", m, err, failed)
	}
	t.Logf("sent at attempt %d after %v failed attempts (451 from Mailpit's chaos)", m.Attempts, failed)
}
