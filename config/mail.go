package config

import (
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Mail is how Portero sends its own e-mail (invitations, master-access
// notices): through an SMTP server, from the access store's outbox. It is
// off unless smtp.host is set; it needs access.store (the outbox lives
// there).
type Mail struct {
	SMTP SMTP `yaml:"smtp"`
	// From is the sender, an address with an optional name:
	// "Portero <no-reply@example.com>". Its domain names the messages'
	// Message-IDs.
	From string `yaml:"from"`
	// BaseURL is the gateway's public address that the links in the
	// messages start with (the messages carry paths such as
	// /.portero/invitations/…). Default: the origin of oidc.redirect_url.
	BaseURL string `yaml:"base_url"`
	// Lang is the language of a message whose recipient's language is not
	// known (the tenant owner's master-access notices): en or es
	// (default en).
	Lang string `yaml:"lang"`
	// MaxAttempts is how many times a message is tried before it is given
	// up (status failed; default 8).
	MaxAttempts int `yaml:"max_attempts"`
	// RetryMin is the wait after the first failed attempt (default 30s);
	// each further failure doubles it, up to RetryMax (default 1h).
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// MaxAge gives up a message not sent this long after it was queued
	// (default 72h): an invitation queued while mail was off is not sent
	// days later.
	MaxAge time.Duration `yaml:"max_age"`
	// PollInterval is how often the outbox is looked at when nothing was
	// written (default 5s); a write by this gateway, or on PostgreSQL by
	// any replica, wakes the sender at once.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Batch is how many messages one sender claims at a time (default 10).
	Batch int `yaml:"batch"`
	// Retention is how long sent and failed messages stay in the outbox
	// (default 720h, 30 days) for the console and for deduplication.
	Retention time.Duration `yaml:"retention"`
}

// SMTP is the server the messages are handed to.
type SMTP struct {
	Host string `yaml:"host"`
	// Port defaults by TLS mode: 587 for starttls, 465 for tls, 25 for
	// none.
	Port int `yaml:"port"`
	// TLS is starttls (default: the connection must be upgraded, or
	// nothing is sent), tls (TLS from the first byte, "SMTPS") or none
	// (plain text: only for a server on the same machine or a test
	// server such as Mailpit).
	TLS string `yaml:"tls"`
	// CAFile is a PEM bundle of the CAs the server's certificate is
	// checked against (default: the system's roots).
	CAFile string `yaml:"ca_file"`
	// Username turns on SMTP AUTH (the best mechanism the server offers,
	// over TLS only); the password comes from the environment variable
	// PasswordEnv names (default PORTERO_SMTP_PASSWORD), never the file.
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
	Password    string `yaml:"-"`
	// HELO is the name Portero gives itself (default: the machine's host
	// name).
	HELO string `yaml:"helo"`
	// Timeout bounds connecting and each SMTP exchange (default 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// MailTLSModes are the values of mail.smtp.tls.
var MailTLSModes = []string{"starttls", "tls", "none"}

// MailLangs are the languages of the messages.
var MailLangs = []string{"en", "es"}

// On says whether mail is configured.
func (m Mail) On() bool { return m.SMTP.Host != "" }

func (v validator) mail(c *Config) {
	m := &c.Mail
	if !m.On() {
		if m.From != "" || m.BaseURL != "" || m.SMTP.Port != 0 || m.SMTP.Username != "" || m.SMTP.TLS != "" {
			v.at("mail.smtp.host", "mail is configured but mail.smtp.host is not: give the SMTP server's host, e.g. smtp.example.com (Mailpit in the demo: 127.0.0.1)")
		}
		return
	}
	if c.Access.Store == "" {
		v.at("mail", "mail needs access.store: messages are queued in the store's outbox, in the transaction of the change they announce")
	}
	s := &m.SMTP
	if strings.ContainsAny(s.Host, " /:") {
		v.at("mail.smtp.host", "%q is not a host name or address; give the port in mail.smtp.port", s.Host)
	}
	switch s.TLS {
	case "":
		s.TLS = "starttls"
	case "starttls", "tls", "none":
	default:
		v.at("mail.smtp.tls", "unknown mode %q; expected starttls (upgrade the connection, required), tls (TLS from the first byte, port 465) or none (plain text, for a local server)", s.TLS)
	}
	switch {
	case s.Port == 0:
		s.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[s.TLS]
	case s.Port < 0 || s.Port > 65535:
		v.at("mail.smtp.port", "must be a port between 1 and 65535, got %d", s.Port)
	}
	if s.CAFile != "" {
		s.CAFile = v.path(s.CAFile)
		if _, err := os.Stat(s.CAFile); err != nil {
			v.at("mail.smtp.ca_file", "cannot read %q: %v", s.CAFile, err)
		}
		if s.TLS == "none" {
			v.at("mail.smtp.ca_file", "is set but mail.smtp.tls is none: no certificate is checked; use tls: starttls or tls")
		}
	}
	if s.PasswordEnv == "" {
		s.PasswordEnv = "PORTERO_SMTP_PASSWORD"
	}
	if s.Username != "" {
		s.Password = os.Getenv(s.PasswordEnv)
		if s.Password == "" {
			v.at("mail.smtp.username", "is set but the environment variable %s, where the SMTP password comes from, is empty; set it, or name another with mail.smtp.password_env", s.PasswordEnv)
		}
		if s.TLS == "none" && !isLoopback(s.Host) {
			v.at("mail.smtp.tls", "none would send the SMTP password in plain text to %s; use starttls or tls", s.Host)
		}
	}
	if s.HELO != "" && strings.ContainsAny(s.HELO, " \t\r\n") {
		v.at("mail.smtp.helo", "%q is not a host name", s.HELO)
	}
	switch {
	case s.Timeout == 0:
		s.Timeout = 30 * time.Second
	case s.Timeout < time.Second || s.Timeout > 10*time.Minute:
		v.at("mail.smtp.timeout", "must be between 1s and 10m, got %v", s.Timeout)
	}

	if m.From == "" {
		v.at("mail.from", "required: the sender's address, e.g. from: \"Portero <no-reply@example.com>\"")
	} else if a, err := mail.ParseAddress(m.From); err != nil || !strings.Contains(a.Address, "@") {
		v.at("mail.from", "%q is not an e-mail address such as \"Portero <no-reply@example.com>\"", m.From)
	}
	v.mailBaseURL(m, c.OIDC.RedirectURL)
	switch m.Lang {
	case "":
		m.Lang = "en"
	default:
		if !slices.Contains(MailLangs, m.Lang) {
			v.at("mail.lang", "unknown language %q; expected one of %s", m.Lang, strings.Join(MailLangs, ", "))
		}
	}
	switch {
	case m.MaxAttempts == 0:
		m.MaxAttempts = 8
	case m.MaxAttempts < 1 || m.MaxAttempts > 100:
		v.at("mail.max_attempts", "must be between 1 and 100, got %d", m.MaxAttempts)
	}
	positive := func(key string, d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			v.at(key, "must be a positive duration, got %v", *d)
		}
	}
	positive("mail.retry_min", &m.RetryMin, 30*time.Second)
	positive("mail.retry_max", &m.RetryMax, time.Hour)
	positive("mail.max_age", &m.MaxAge, 72*time.Hour)
	positive("mail.poll_interval", &m.PollInterval, 5*time.Second)
	positive("mail.retention", &m.Retention, 30*24*time.Hour)
	if m.RetryMax < m.RetryMin {
		v.at("mail.retry_max", "must be at least mail.retry_min (%v), got %v", m.RetryMin, m.RetryMax)
	}
	if m.Retention < m.MaxAge {
		v.at("mail.retention", "must be at least mail.max_age (%v): a message's key must outlive every retry of it, got %v", m.MaxAge, m.Retention)
	}
	switch {
	case m.Batch == 0:
		m.Batch = 10
	case m.Batch < 1 || m.Batch > 1000:
		v.at("mail.batch", "must be between 1 and 1000, got %d", m.Batch)
	}
}

// mailBaseURL checks mail.base_url, or takes the origin of
// oidc.redirect_url when it is not set.
func (v validator) mailBaseURL(m *Mail, redirect string) {
	if m.BaseURL == "" {
		if u, err := url.Parse(redirect); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
			m.BaseURL = u.Scheme + "://" + u.Host
			return
		}
		v.at("mail.base_url", "required (no oidc.redirect_url to take it from): the gateway's public address that links in messages start with, e.g. https://gateway.example.com")
		return
	}
	u, err := url.Parse(m.BaseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		v.at("mail.base_url", "%q is not an http or https URL such as https://gateway.example.com", m.BaseURL)
	case u.RawQuery != "" || u.Fragment != "":
		v.at("mail.base_url", "%q has a query or fragment; give the gateway's public address alone", m.BaseURL)
	default:
		m.BaseURL = strings.TrimRight(u.String(), "/")
	}
}
