// Package mail sends Portero's own e-mail: it renders the messages the
// access store's outbox holds (templates in English and Spanish, HTML and
// plain text) and hands them to an SMTP server, with retries, backoff and
// metrics. A message is written to the outbox in the transaction of the
// change it announces (access.Mail); the sender claims due messages with a
// lease, so replicas sharing a PostgreSQL store never send one twice
// between them, and marks each sent, to be retried, or given up.
package mail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	netmail "net/mail"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gomail "github.com/wneessen/go-mail"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
)

// Sender sends the outbox's messages.
type Sender struct {
	cfg    config.Mail
	store  *access.Store
	log    *slog.Logger
	tpl    *Templates
	from   *netmail.Address
	domain string // of From: the Message-IDs' right-hand side
	tls    *tls.Config
	now    func() time.Time
	lease  time.Duration

	queued prometheus.Gauge
	sent   prometheus.Counter
	failed *prometheus.CounterVec
	dead   prometheus.Counter
}

// Failure reasons, the label of portero_mail_failed_total: connect (the
// server could not be reached, TLS or authentication failed), temporary
// (a 4xx answer), rejected (a 5xx answer), error (anything else in the
// exchange, such as a dropped connection), render (the message's data does
// not fit its template).
var failureReasons = []string{"connect", "temporary", "rejected", "error", "render"}

// New prepares a sender for cfg (validated by config) on store; reg
// registers its metrics.
func New(cfg config.Mail, store *access.Store, log *slog.Logger, reg prometheus.Registerer) (*Sender, error) {
	tpl, err := ParseTemplates()
	if err != nil {
		return nil, err
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail.from: %w", err)
	}
	s := &Sender{cfg: cfg, store: store, log: log, tpl: tpl, from: from, now: time.Now,
		domain: from.Address[strings.LastIndexByte(from.Address, '@')+1:],
		// A claim lasts while one batch may take, each message bounded
		// by the SMTP timeout, and then some: a sender that stops
		// mid-batch leaves its messages to another after this.
		lease: cfg.SMTP.Timeout * time.Duration(cfg.Batch+2),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portero_mail_queued",
			Help: "Messages in the outbox not yet sent nor given up (queued or being sent); the same on every replica sharing a store."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "portero_mail_sent_total",
			Help: "Messages this replica handed to the SMTP server, which accepted them."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portero_mail_failed_total",
			Help: "Failed send attempts, by reason: connect, temporary (4xx), rejected (5xx), error, render; a failed attempt is retried unless the message is given up."}, []string{"reason"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "portero_mail_dead_total",
			Help: "Messages given up (status failed): rejected by the server, attempts exhausted (mail.max_attempts), older than mail.max_age, or not renderable."}),
	}
	for _, r := range failureReasons {
		s.failed.WithLabelValues(r)
	}
	if cfg.SMTP.TLS != "none" {
		s.tls = &tls.Config{ServerName: cfg.SMTP.Host, MinVersion: tls.VersionTLS12}
		if cfg.SMTP.CAFile != "" {
			pem, err := os.ReadFile(cfg.SMTP.CAFile)
			if err != nil {
				return nil, fmt.Errorf("mail.smtp.ca_file: %w", err)
			}
			s.tls.RootCAs = x509.NewCertPool()
			if !s.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("mail.smtp.ca_file: %s holds no PEM certificate", cfg.SMTP.CAFile)
			}
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.queued, s.sent, s.failed, s.dead} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// MessageID is the Message-ID of the message queued under key (without
// angle brackets): the same at every attempt, so a receiver that sees a
// message twice (the gateway stopped between the server's acceptance and
// marking it sent) can tell.
func (s *Sender) MessageID(key string) string { return MessageID(key, s.domain) }

// MessageID is the Message-ID of the message with idempotency key key, sent
// from domain.
func MessageID(key, domain string) string {
	h := sha256.Sum256([]byte(key))
	return "portero." + hex.EncodeToString(h[:16]) + "@" + domain
}

// Run sends due messages until ctx ends: at once when the store's
// generation moves (a write here, or on PostgreSQL on any replica), when
// the next retry is due, and every mail.poll_interval. Sent and given-up
// messages older than mail.retention are deleted hourly.
func (s *Sender) Run(ctx context.Context) {
	s.log.Info("mail sender on", "smtp", net.JoinHostPort(s.cfg.SMTP.Host, fmt.Sprint(s.cfg.SMTP.Port)), "tls", s.cfg.SMTP.TLS,
		"from", s.cfg.From, "base_url", s.cfg.BaseURL)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var purged time.Time
	for ctx.Err() == nil {
		gen := s.store.Generation()
		s.Flush(ctx)
		if s.now().Sub(purged) > time.Hour {
			purged = s.now()
			if n, err := s.store.PurgeMail(ctx, s.now().Add(-s.cfg.Retention)); err != nil && ctx.Err() == nil {
				s.log.Warn("mail: could not purge old messages", "error", err.Error())
			} else if n > 0 {
				s.log.Info("mail: purged old messages", "count", n, "retention", s.cfg.Retention.String())
			}
		}
		wake := s.now().Add(s.cfg.PollInterval)
		if due, err := s.store.NextMailDue(ctx); err == nil && !due.IsZero() && due.Before(wake) {
			wake = due
		}
		s.refreshGauge(ctx)
		for ctx.Err() == nil && s.store.Generation() == gen && s.now().Before(wake) {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}
}

func (s *Sender) refreshGauge(ctx context.Context) {
	if c, err := s.store.MailCounts(ctx); err == nil {
		s.queued.Set(float64(c["queued"] + c["sending"]))
	}
}

// Flush sends what is due now, batch by batch, and returns how many
// messages it handled (sent, retried or given up).
func (s *Sender) Flush(ctx context.Context) int {
	n := 0
	for ctx.Err() == nil {
		// A read first: claiming is a writing transaction, which takes
		// the store's write lock; most wake-ups find nothing due.
		if due, err := s.store.NextMailDue(ctx); err == nil && (due.IsZero() || due.After(s.now())) {
			return n
		}
		batch, err := s.store.ClaimMail(ctx, s.cfg.Batch, s.lease)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("mail: could not claim messages from the outbox", "error", err.Error())
			}
			return n
		}
		if len(batch) == 0 {
			return n
		}
		s.sendBatch(ctx, batch)
		n += len(batch)
	}
	return n
}

// sendBatch sends claimed messages over one connection, opened when the
// first needs it and again after an error.
func (s *Sender) sendBatch(ctx context.Context, batch []*access.OutboxMail) {
	var client *gomail.Client
	defer func() {
		if client != nil {
			_ = client.Close()
		}
	}()
	// The store's marks outlive a shutdown that begins mid-batch: a sent
	// message is recorded as sent.
	mctx := context.WithoutCancel(ctx)
	for i, m := range batch {
		if ctx.Err() != nil {
			// Stopping: leave the rest to the lease (their claim counts
			// as an attempt, but nothing was sent).
			s.log.Info("mail: stopping with claimed messages unsent; they are sent after their lease", "count", len(batch)-i)
			return
		}
		if s.now().Sub(m.CreatedAt) > s.cfg.MaxAge {
			s.giveUp(mctx, m, "", fmt.Sprintf("not sent within mail.max_age (%v) of being queued", s.cfg.MaxAge))
			continue
		}
		msg, err := s.build(m)
		if err != nil {
			s.failed.WithLabelValues("render").Inc()
			s.giveUp(mctx, m, "render", "cannot render: "+err.Error())
			continue
		}
		if client == nil {
			c, err := s.dial(ctx)
			if err != nil {
				s.failed.WithLabelValues("connect").Inc()
				s.retryOrGiveUp(mctx, m, "connect", err)
				continue
			}
			client = c
		}
		err = client.Send(msg)
		if err == nil {
			s.markSent(mctx, m)
			continue
		}
		reason, permanent := classify(err)
		s.failed.WithLabelValues(reason).Inc()
		if permanent {
			s.giveUp(mctx, m, reason, err.Error())
		} else {
			s.retryOrGiveUp(mctx, m, reason, err)
		}
		_ = client.Close()
		client = nil // a fresh connection for the next message
	}
}

func (s *Sender) dial(ctx context.Context) (*gomail.Client, error) {
	c := s.cfg.SMTP
	opts := []gomail.Option{gomail.WithPort(c.Port), gomail.WithTimeout(c.Timeout)}
	switch c.TLS {
	case "tls":
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(s.tls))
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(s.tls))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if c.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(c.Username), gomail.WithPassword(c.Password))
	}
	if c.HELO != "" {
		opts = append(opts, gomail.WithHELO(c.HELO))
	}
	client, err := gomail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, err
	}
	if err := client.DialWithContext(ctx); err != nil {
		return nil, err
	}
	return client, nil
}

// build renders m into a message: HTML with a plain-text alternative, a
// Message-ID derived from its key, Auto-Submitted.
func (s *Sender) build(m *access.OutboxMail) (*gomail.Msg, error) {
	lang := m.Lang
	if lang == "" {
		lang = s.cfg.Lang
	}
	r, err := s.tpl.Render(m.Kind, lang, s.cfg.BaseURL, m.To, m.Data)
	if err != nil {
		return nil, err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.FromFormat(s.from.Name, s.from.Address); err != nil {
		return nil, err
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(r.Subject)
	msg.SetMessageIDWithValue(s.MessageID(m.Key))
	msg.SetDateWithValue(s.now())
	msg.SetGenHeader(gomail.HeaderContentLang, r.Lang)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Portero-Kind", m.Kind)
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}

// classify names why a send failed and whether retrying cannot help (the
// server refused the message with a 5xx answer).
func classify(err error) (reason string, permanent bool) {
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch code := se.ErrorCode(); {
		case se.IsTemp() || (code >= 400 && code < 500):
			return "temporary", false
		case code >= 500:
			return "rejected", true
		}
	}
	return "error", false
}

// backoff is the wait after the attempt-th failed attempt: retry_min
// doubled each time, at most retry_max, with up to a fifth less at
// random so that messages failed together spread out.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.cfg.RetryMin
	for i := 1; i < attempt && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	return d - rand.N(d/5+1)
}

func (s *Sender) markSent(ctx context.Context, m *access.OutboxMail) {
	if err := s.store.MarkMailSent(ctx, m); err != nil {
		// Accepted by the server but not recorded: it is sent again
		// after the lease, with the same Message-ID.
		s.log.Error("mail: sent but could not record it; it may be sent again", "key", m.Key, "error", err.Error())
		return
	}
	s.sent.Inc()
	s.log.Info("mail sent", "kind", m.Kind, "to", m.To, "tenant", m.Tenant, "attempt", m.Attempts, "message_id", s.MessageID(m.Key))
}

func (s *Sender) retryOrGiveUp(ctx context.Context, m *access.OutboxMail, reason string, err error) {
	if m.Attempts >= s.cfg.MaxAttempts {
		s.giveUp(ctx, m, reason, fmt.Sprintf("%d attempts failed; the last: %v", m.Attempts, err))
		return
	}
	wait := s.backoff(m.Attempts)
	if e := s.store.RetryMail(ctx, m, s.now().Add(wait), reason+": "+err.Error()); e != nil {
		s.log.Error("mail: could not schedule a retry", "key", m.Key, "error", e.Error())
		return
	}
	s.log.Warn("mail: send failed; retrying", "kind", m.Kind, "to", m.To, "attempt", m.Attempts, "reason", reason, "retry_in", wait.Round(time.Second).String(), "error", err.Error())
}

func (s *Sender) giveUp(ctx context.Context, m *access.OutboxMail, reason, why string) {
	if err := s.store.FailMail(ctx, m, why); err != nil {
		s.log.Error("mail: could not record a message given up", "key", m.Key, "error", err.Error())
		return
	}
	s.dead.Inc()
	s.log.Error("mail: message given up", "kind", m.Kind, "to", m.To, "tenant", m.Tenant, "attempts", m.Attempts, "reason", reason, "why", why)
}
