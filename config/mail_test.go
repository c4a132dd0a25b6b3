package config

import (
	"strings"
	"testing"
	"time"
)

const withStore = minimal + "access:\n  store: postgres://portero@db.example.com:5432/portero\n"

func TestMailOffByDefault(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mail.On() {
		t.Errorf("mail on without mail.smtp.host: %+v", cfg.Mail)
	}
}

func TestMailDefaults(t *testing.T) {
	src := withStore + "mail:\n  smtp:\n    host: smtp.example.com\n  from: Portero <no-reply@example.com>\n  base_url: https://gw.example.com/\n"
	cfg, err := Parse("gateway.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mail
	if !m.On() || m.SMTP.TLS != "starttls" || m.SMTP.Port != 587 || m.SMTP.Timeout != 30*time.Second || m.SMTP.PasswordEnv != "PORTERO_SMTP_PASSWORD" ||
		m.BaseURL != "https://gw.example.com" || m.Lang != "en" || m.MaxAttempts != 8 || m.RetryMin != 30*time.Second || m.RetryMax != time.Hour ||
		m.MaxAge != 72*time.Hour || m.PollInterval != 5*time.Second || m.Batch != 10 || m.Retention != 720*time.Hour {
		t.Errorf("defaults: %+v", m)
	}
	for mode, port := range map[string]int{"tls": 465, "none": 25} {
		cfg, err := Parse("gateway.yaml", []byte(withStore+"mail:\n  smtp:\n    host: 127.0.0.1\n    tls: "+mode+"\n  from: a@example.com\n  base_url: http://localhost:8080\n"))
		if err != nil || cfg.Mail.SMTP.Port != port {
			t.Errorf("tls %s: port %v %v", mode, cfg, err)
		}
	}
}

func TestMailBaseURLFromRedirect(t *testing.T) {
	src := withStore + "  \n" // keep access: last before oidc's additions
	src = strings.Replace(src, "  audiences: [portero]\n", "  audiences: [portero]\n  client_id: portero\n  client_secret: s3cret-s3cret-s3cret-s3cret\n  redirect_url: https://gw.example.com:8443/.portero/callback\n", 1)
	src += "session:\n  keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]\n"
	src += "mail:\n  smtp:\n    host: 127.0.0.1\n    port: 1025\n    tls: none\n  from: Portero <no-reply@example.com>\n"
	cfg, err := Parse("gateway.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mail.BaseURL != "https://gw.example.com:8443" {
		t.Errorf("base_url %q", cfg.Mail.BaseURL)
	}
}

func TestMailPasswordFromTheEnvironment(t *testing.T) {
	t.Setenv("PORTERO_TEST_SMTP_PW", "pw")
	src := withStore + "mail:\n  smtp:\n    host: smtp.example.com\n    username: portero\n    password_env: PORTERO_TEST_SMTP_PW\n  from: a@example.com\n  base_url: https://gw.example.com\n"
	cfg, err := Parse("gateway.yaml", []byte(src))
	if err != nil || cfg.Mail.SMTP.Password != "pw" {
		t.Fatalf("%v %v", cfg, err)
	}
}

func TestMailErrorsNameTheKey(t *testing.T) {
	base := "mail:\n  smtp:\n    host: smtp.example.com\n  from: a@example.com\n  base_url: https://gw.example.com\n"
	bad := map[string]string{
		minimal + "mail:\n  from: a@example.com\n": "gateway.yaml:9:3: mail.smtp.host: mail is configured but mail.smtp.host is not",
		minimal + base: "mail: mail needs access.store",
		withStore + strings.Replace(base, "host: smtp.example.com", "host: smtp.example.com:25", 1): `mail.smtp.host: "smtp.example.com:25" is not a host name`,
		withStore + base + "  lang: fr\n":                                                                                                                        `gateway.yaml:15:9: mail.lang: unknown language "fr"`,
		withStore + strings.Replace(base, "a@example.com", "nobody", 1):                                                                                          `mail.from: "nobody" is not an e-mail address`,
		withStore + strings.Replace(base, "  from: a@example.com\n", "", 1):                                                                                      "mail.from: required",
		withStore + strings.Replace(base, "https://gw.example.com", "gw.example.com", 1):                                                                         `mail.base_url: "gw.example.com" is not an http or https URL`,
		withStore + strings.Replace(base, "  base_url: https://gw.example.com\n", "", 1):                                                                         "mail.base_url: required (no oidc.redirect_url to take it from)",
		withStore + base + "  max_attempts: 0\n  batch: 5000\n":                                                                                                  "mail.batch: must be between 1 and 1000",
		withStore + base + "  retry_min: 1h\n  retry_max: 1m\n":                                                                                                  "mail.retry_max: must be at least mail.retry_min",
		withStore + base + "  retention: 1h\n":                                                                                                                   "mail.retention: must be at least mail.max_age",
		withStore + strings.Replace(base, "host: smtp.example.com\n", "host: smtp.example.com\n    tls: ssl\n", 1):                                               `mail.smtp.tls: unknown mode "ssl"`,
		withStore + strings.Replace(base, "host: smtp.example.com\n", "host: smtp.example.com\n    port: 70000\n", 1):                                            "mail.smtp.port: must be a port between 1 and 65535",
		withStore + strings.Replace(base, "host: smtp.example.com\n", "host: smtp.example.com\n    username: u\n    password_env: PORTERO_TEST_SMTP_UNSET\n", 1): "mail.smtp.username: is set but the environment variable PORTERO_TEST_SMTP_UNSET",
		withStore + strings.Replace(base, "host: smtp.example.com\n", "host: smtp.example.com\n    timeout: 10ms\n", 1):                                          "mail.smtp.timeout: must be between 1s and 10m",
		withStore + strings.Replace(base, "host: smtp.example.com\n", "host: smtp.example.com\n    ca_file: /nonexistent/ca.pem\n", 1):                           `mail.smtp.ca_file: cannot read "/nonexistent/ca.pem"`,
		withStore + base + "  smtp_host: x\n":                                                                                                                    `mail.smtp_host: unknown key "smtp_host"`,
	}
	for src, want := range bad {
		_, err := Parse("gateway.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n%v\nwant %q", src, err, want)
		}
	}
}
