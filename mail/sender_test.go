package mail

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"mime"
	"net"
	netmail "net/mail"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
)

// fakeSMTP is an in-process SMTP server for the sender's unit tests: it
// answers each connection by a script (fail returns the answer to give
// instead of 250 at a stage, "" to go on, "drop" to close the connection)
// and keeps the messages it accepted.
type fakeSMTP struct {
	ln   net.Listener
	fail func(conn int, stage string) string

	mu    sync.Mutex
	conns int
	got   []string
}

func newFakeSMTP(t *testing.T, fail func(conn int, stage string) string) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{ln: ln, fail: fail}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			go f.serve(c, n)
		}
	}()
	return f
}

func (f *fakeSMTP) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fakeSMTP) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeSMTP) serve(c net.Conn, n int) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	// answer gives the scripted answer for stage, or ok; false when the
	// connection is to be dropped.
	answer := func(stage, ok string) bool {
		a := ""
		if f.fail != nil {
			a = f.fail(n, stage)
		}
		switch a {
		case "drop":
			return false
		case "":
			say(ok)
		default:
			say(a)
		}
		return true
	}
	if !answer("greeting", "220 fake.test ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-fake.test\r\n250-8BITMIME\r\n250 SMTPUTF8")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			if !answer("mail", "250 2.1.0 ok") {
				return
			}
		case strings.HasPrefix(cmd, "RCPT TO"):
			if !answer("rcpt", "250 2.1.5 ok") {
				return
			}
		case cmd == "DATA":
			if !answer("data", "354 go on") {
				return
			}
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			if !answer("end", "250 2.0.0 queued") {
				return
			}
			f.mu.Lock()
			f.got = append(f.got, b.String())
			f.mu.Unlock()
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 unknown")
		}
	}
}

// senderOn opens a store and a sender that sends to port.
func senderOn(t *testing.T, port int, edit func(*config.Mail), opts ...access.Option) (*Sender, *access.Store, *prometheus.Registry) {
	t.Helper()
	store, err := access.Open(context.Background(), filepath.Join(t.TempDir(), "access.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := config.Mail{
		SMTP: config.SMTP{Host: "127.0.0.1", Port: port, TLS: "none", Timeout: 5 * time.Second},
		From: "Portero <no-reply@portero.test>", BaseURL: "https://gw.example.com", Lang: "en",
		MaxAttempts: 5, RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond, MaxAge: time.Hour,
		PollInterval: time.Second, Batch: 10, Retention: 24 * time.Hour,
	}
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := New(cfg, store, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, store, reg
}

func revoked(key string) access.Mail {
	return access.Mail{Key: key, Kind: "partnership_revoked", Tenant: "acme", To: "pat@partner.example", Lang: "es",
		Data: map[string]any{"tenant_name": "Acme", "partner_name": "Partner Co"}}
}

// flushUntil flushes until done says so (the retries' backoff is a few
// milliseconds), or fails after a generous deadline.
func flushUntil(t *testing.T, s *Sender, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !done(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the outbox did not reach the expected state")
		}
		s.Flush(context.Background())
	}
}

func status(t *testing.T, store *access.Store, key string) *access.OutboxMail {
	t.Helper()
	m, err := store.MailByKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A server that answers 451 is retried with backoff until it accepts;
// each failed attempt is counted; the message arrives once, with its
// stable Message-ID, in both parts, in its language, links absolute.
func TestTemporaryFailuresAreRetriedAndCounted(t *testing.T) {
	f := newFakeSMTP(t, func(conn int, stage string) string {
		if conn <= 2 && stage == "mail" {
			return "451 4.3.0 try again later"
		}
		return ""
	})
	s, store, reg := senderOn(t, f.port(), nil)
	if err := store.EnqueueMail(context.Background(), revoked("revoked:d1")); err != nil {
		t.Fatal(err)
	}
	flushUntil(t, s, func() bool { return status(t, store, "revoked:d1").Status == "sent" })
	got := f.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages arrived", len(got))
	}
	msg, err := netmail.ReadMessage(strings.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	for h, want := range map[string]string{"Message-Id": "<" + MessageID("revoked:d1", "portero.test") + ">", "Subject": "Acme terminó su colaboración con Partner Co",
		"Content-Language": "es", "Auto-Submitted": "auto-generated", "To": "<pat@partner.example>", "From": `"Portero" <no-reply@portero.test>`} {
		v := msg.Header.Get(h)
		if h == "Subject" {
			v = subject
		}
		if v != want {
			t.Errorf("%s: %q, want %q", h, v, want)
		}
	}
	for _, want := range []string{"Content-Type: text/plain", "Content-Type: text/html"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("the message lacks %q:\n%s", want, got[0])
		}
	}
	if m := status(t, store, "revoked:d1"); m.Attempts != 3 || m.SentAt == nil {
		t.Fatalf("outbox: %+v", m)
	}
	if v := testutil.ToFloat64(s.failed.WithLabelValues("temporary")); v != 2 {
		t.Errorf("failed{temporary} = %v, want 2", v)
	}
	if v := testutil.ToFloat64(s.sent); v != 1 {
		t.Errorf("sent = %v, want 1", v)
	}
	if n, err := testutil.GatherAndCount(reg, "portero_mail_sent_total", "portero_mail_failed_total", "portero_mail_dead_total", "portero_mail_queued"); err != nil || n != 8 {
		t.Errorf("metrics: %d series, %v", n, err)
	}
}

// A connection dropped mid-message, or a server not listening, is an
// attempt failed and retried.
func TestDroppedAndRefusedConnectionsAreRetried(t *testing.T) {
	f := newFakeSMTP(t, func(conn int, stage string) string {
		if conn == 1 && stage == "data" {
			return "drop"
		}
		return ""
	})
	s, store, _ := senderOn(t, f.port(), nil)
	ctx := context.Background()
	if err := store.EnqueueMail(ctx, revoked("revoked:d2")); err != nil {
		t.Fatal(err)
	}
	flushUntil(t, s, func() bool { return status(t, store, "revoked:d2").Status == "sent" })
	if v := testutil.ToFloat64(s.failed.WithLabelValues("error")); v != 1 {
		t.Errorf("failed{error} = %v, want 1", v)
	}
	if len(f.messages()) != 1 {
		t.Fatalf("%d messages", len(f.messages()))
	}

	// Nothing listening at all: connect failures, then given up after
	// mail.max_attempts.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s2, store2, _ := senderOn(t, closed, func(c *config.Mail) { c.MaxAttempts = 3 })
	if err := store2.EnqueueMail(ctx, revoked("revoked:d3")); err != nil {
		t.Fatal(err)
	}
	flushUntil(t, s2, func() bool { return status(t, store2, "revoked:d3").Status == "failed" })
	m := status(t, store2, "revoked:d3")
	if m.Attempts != 3 || !strings.Contains(m.LastError, "3 attempts failed") {
		t.Fatalf("given up: %+v", m)
	}
	if c, d := testutil.ToFloat64(s2.failed.WithLabelValues("connect")), testutil.ToFloat64(s2.dead); c != 3 || d != 1 {
		t.Fatalf("failed{connect} = %v, dead = %v; want 3 and 1", c, d)
	}
}

// A 5xx answer is final: the message is given up at once, the others of
// the batch still go.
func TestRejectedIsGivenUp(t *testing.T) {
	var mu sync.Mutex
	rcpts := 0
	f := newFakeSMTP(t, func(conn int, stage string) string {
		if stage == "rcpt" {
			mu.Lock()
			defer mu.Unlock()
			rcpts++
			if rcpts == 1 {
				return "550 5.1.1 no such user"
			}
		}
		return ""
	})
	s, store, _ := senderOn(t, f.port(), nil)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := store.EnqueueMail(ctx, revoked(k)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Flush(ctx); n != 3 {
		t.Fatalf("flushed %d", n)
	}
	c, err := store.MailCounts(ctx)
	if err != nil || c["failed"] != 1 || c["sent"] != 2 {
		t.Fatalf("counts %v %v", c, err)
	}
	if r, d := testutil.ToFloat64(s.failed.WithLabelValues("rejected")), testutil.ToFloat64(s.dead); r != 1 || d != 1 {
		t.Fatalf("failed{rejected} = %v, dead = %v", r, d)
	}
	if len(f.messages()) != 2 {
		t.Fatalf("%d messages arrived", len(f.messages()))
	}
}

// A message older than mail.max_age, or whose data does not fit its
// template, is given up without being sent.
func TestTooOldOrUnrenderableIsGivenUp(t *testing.T) {
	f := newFakeSMTP(t, nil)
	past := time.Now().Add(-2 * time.Hour)
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return past }
	s, store, _ := senderOn(t, f.port(), nil, access.WithClock(now))
	ctx := context.Background()
	if err := store.EnqueueMail(ctx, revoked("old")); err != nil {
		t.Fatal(err)
	}
	clockMu.Lock()
	past = time.Now()
	clockMu.Unlock()
	bad := revoked("bad")
	delete(bad.Data, "partner_name")
	if err := store.EnqueueMail(ctx, bad); err != nil {
		t.Fatal(err)
	}
	s.Flush(ctx)
	if m := status(t, store, "old"); m.Status != "failed" || !strings.Contains(m.LastError, "max_age") {
		t.Fatalf("old: %+v", m)
	}
	if m := status(t, store, "bad"); m.Status != "failed" || !strings.Contains(m.LastError, "partner_name") {
		t.Fatalf("bad: %+v", m)
	}
	if len(f.messages()) != 0 || testutil.ToFloat64(s.dead) != 2 || testutil.ToFloat64(s.failed.WithLabelValues("render")) != 1 {
		t.Fatalf("sent %d, dead %v", len(f.messages()), testutil.ToFloat64(s.dead))
	}
}

// Run sends a message queued while it waits, woken by the store's
// generation rather than its poll interval, and stops with its context.
func TestRunWakesOnWrites(t *testing.T) {
	f := newFakeSMTP(t, nil)
	s, store, _ := senderOn(t, f.port(), func(c *config.Mail) { c.PollInterval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	// A change of access (a tenant created) moves the generation; a
	// message queued by EnqueueMail alone does not, so it rides along.
	if err := store.EnqueueMail(ctx, revoked("woken")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTenant(ctx, access.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(f.messages()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not sent: the sender was not woken by the write")
		}
	}
	cancel()
	<-done
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	s := &Sender{cfg: config.Mail{RetryMin: 30 * time.Second, RetryMax: 10 * time.Minute}}
	prev := time.Duration(0)
	for attempt := 1; attempt <= 10; attempt++ {
		d := s.backoff(attempt)
		want := min(30*time.Second<<(attempt-1), 10*time.Minute)
		if d > want || d < want-want/5 {
			t.Errorf("attempt %d: %v, want %v less up to a fifth", attempt, d, want)
		}
		if attempt <= 5 && d <= prev/2 {
			t.Errorf("attempt %d: %v after %v", attempt, d, prev)
		}
		prev = d
	}
}
