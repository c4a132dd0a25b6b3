package config

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// OPA's management APIs (docs/opa-management.md): the policy from a bundle
// server, decision logs to a collector, status reports. Each talks to one
// service, named by its base URL; its bearer token comes from the
// environment, never from this file.

// PolicyBundle takes the policy from an OPA bundle server instead of
// policy.dir (policy.bundle).
type PolicyBundle struct {
	// URL is the bundle service's base URL; Resource the bundle's path on
	// it (default bundles/portero.tar.gz).
	URL      string `yaml:"url"`
	Resource string `yaml:"resource"`
	// TokenEnv names the environment variable holding the bearer token.
	TokenEnv string `yaml:"token_env"`
	// CAFile, when set, is the only CA trusted for the service's TLS.
	CAFile string `yaml:"ca_file"`
	// MinDelay and MaxDelay bound the wait between polls (default 60s and
	// 120s, OPA's; whole seconds).
	MinDelay time.Duration `yaml:"min_delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
	// LongPollingTimeout asks the server to hold each poll until the
	// bundle changes, up to this long (OPA's long polling); 0: off.
	LongPollingTimeout time.Duration `yaml:"long_polling_timeout"`
	// Signing requires every bundle to be signed by this key.
	Signing *BundleSigning `yaml:"signing"`
	// PersistDir keeps the last bundle that loaded, served at start when
	// the server cannot be reached.
	PersistDir string `yaml:"persist_dir"`
	// StartTimeout bounds the first download at start (default 30s).
	StartTimeout time.Duration `yaml:"start_timeout"`

	// Token is TokenEnv's value, read once at load.
	Token string `yaml:"-"`
}

// BundleSigning is the key bundles are signed with (OPA's
// .signatures.json).
type BundleSigning struct {
	// PublicKeyFile is a PEM public key (RS*, PS*, ES* algorithms) or, for
	// HS*, a file holding the shared secret.
	PublicKeyFile string `yaml:"public_key_file"`
	// KeyID is the key's id in the signature (default "default").
	KeyID string `yaml:"key_id"`
	// Algorithm defaults to RS256.
	Algorithm string `yaml:"algorithm"`
	// Scope, when set, must match the signature's scope.
	Scope string `yaml:"scope"`

	// PublicKey is the file's content, read once at load.
	PublicKey []byte `yaml:"-"`
}

// DecisionLogs sends every decision to an OPA decision-log collector
// (policy.decision_logs). The input is masked as log.decision_inputs
// masks it (credentials always, log.decision_inputs.mask besides).
type DecisionLogs struct {
	URL string `yaml:"url"`
	// Resource is the path batches are POSTed to (default /logs).
	Resource string `yaml:"resource"`
	TokenEnv string `yaml:"token_env"`
	CAFile   string `yaml:"ca_file"`
	// MinDelay and MaxDelay bound the wait between uploads (default 5s
	// and 10s; whole seconds).
	MinDelay time.Duration `yaml:"min_delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
	// BufferEvents bounds the decisions waiting to be sent (default
	// 10000); beyond, the oldest are dropped and counted.
	BufferEvents int64 `yaml:"buffer_events"`
	// UploadBytes bounds one gzipped batch (default 32768).
	UploadBytes int64 `yaml:"upload_bytes"`

	Token string `yaml:"-"`
}

// OPAStatus sends OPA status reports (policy.status).
type OPAStatus struct {
	URL      string `yaml:"url"`
	TokenEnv string `yaml:"token_env"`
	CAFile   string `yaml:"ca_file"`
	// Interval sends a report this often, besides one on every bundle
	// change (default 60s).
	Interval time.Duration `yaml:"interval"`

	Token string `yaml:"-"`
}

// OPAManagement reports whether any of OPA's management APIs is on.
func (p Policy) OPAManagement() bool {
	return p.Bundle != nil || p.DecisionLogs != nil || p.Status != nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// opaManagement checks policy.bundle, policy.decision_logs and
// policy.status, reads the key and the tokens, and applies defaults.
func (v validator) opaManagement(p *Policy) {
	if b := p.Bundle; b != nil {
		if p.Dir != "" {
			v.at("policy.bundle", "policy.dir and policy.bundle are both set; the policy comes from one place: remove dir to take it from the bundle server, or bundle to take it from the directory")
		}
		v.serviceURL("policy.bundle", b.URL)
		if b.Resource == "" {
			b.Resource = "bundles/portero.tar.gz"
		}
		b.Token = v.token("policy.bundle", b.TokenEnv)
		b.CAFile = v.caFile("policy.bundle", b.CAFile)
		v.delays("policy.bundle", b.MinDelay, b.MaxDelay)
		if b.LongPollingTimeout != 0 && b.LongPollingTimeout < time.Second {
			v.at("policy.bundle.long_polling_timeout", "must be at least 1s (OPA counts whole seconds), got %s; remove it to poll", b.LongPollingTimeout)
		}
		if b.StartTimeout < 0 {
			v.at("policy.bundle.start_timeout", "must be positive, got %s", b.StartTimeout)
		} else if b.StartTimeout == 0 {
			b.StartTimeout = 30 * time.Second
		}
		if b.PersistDir != "" {
			b.PersistDir = v.path(b.PersistDir)
		}
		if s := b.Signing; s != nil {
			v.bundleSigning(s)
		}
	}
	if d := p.DecisionLogs; d != nil {
		v.serviceURL("policy.decision_logs", d.URL)
		if d.Resource == "" {
			d.Resource = "/logs"
		}
		d.Token = v.token("policy.decision_logs", d.TokenEnv)
		d.CAFile = v.caFile("policy.decision_logs", d.CAFile)
		v.delays("policy.decision_logs", d.MinDelay, d.MaxDelay)
		if d.BufferEvents < 0 {
			v.at("policy.decision_logs.buffer_events", "must be positive, got %d", d.BufferEvents)
		}
		if d.UploadBytes < 0 {
			v.at("policy.decision_logs.upload_bytes", "must be positive, got %d", d.UploadBytes)
		}
	}
	if s := p.Status; s != nil {
		v.serviceURL("policy.status", s.URL)
		s.Token = v.token("policy.status", s.TokenEnv)
		s.CAFile = v.caFile("policy.status", s.CAFile)
		switch {
		case s.Interval < 0:
			v.at("policy.status.interval", "must be positive, got %s", s.Interval)
		case s.Interval == 0:
			s.Interval = 60 * time.Second
		}
	}
}

func (v validator) serviceURL(key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.at(key+".url", "is required: the service's base URL, e.g. https://opa-control.example.com")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		v.at(key+".url", "%q is not an http or https URL (credentials go in token_env, not the URL)", raw)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		v.at(key+".url", "%q is plain http to another host: the bearer token and the policy would cross the network in clear; use https", raw)
	}
}

func (v validator) token(key, env string) string {
	if env == "" {
		return ""
	}
	if !envName.MatchString(env) {
		v.at(key+".token_env", "%q is not an environment variable name; give the name (PORTERO_BUNDLE_TOKEN), not the token", env)
		return ""
	}
	tok, ok := os.LookupEnv(env)
	if !ok || tok == "" {
		v.at(key+".token_env", "environment variable %s is not set or empty; export the service's bearer token in it", env)
	}
	return tok
}

func (v validator) caFile(key, file string) string {
	if file == "" {
		return ""
	}
	file = v.path(file)
	if _, err := os.Stat(file); err != nil {
		v.at(key+".ca_file", "%q cannot be read: %v", file, err)
	}
	return file
}

func (v validator) delays(key string, lo, hi time.Duration) {
	switch {
	case lo == 0 && hi == 0:
	case lo < time.Second || hi < time.Second:
		v.at(key+".min_delay", "min_delay and max_delay must both be set, each at least 1s (OPA counts whole seconds); got %s and %s", lo, hi)
	case hi < lo:
		v.at(key+".max_delay", "%s is below min_delay %s", hi, lo)
	}
}

// bundleAlgorithms are the signature algorithms OPA verifies.
var bundleAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"}

func (v validator) bundleSigning(s *BundleSigning) {
	if s.KeyID == "" {
		s.KeyID = "default"
	}
	if s.Algorithm == "" {
		s.Algorithm = "RS256"
	}
	known := false
	for _, a := range bundleAlgorithms {
		known = known || a == s.Algorithm
	}
	if !known {
		v.at("policy.bundle.signing.algorithm", "unknown algorithm %q; expected one of %s", s.Algorithm, strings.Join(bundleAlgorithms, ", "))
	}
	if s.PublicKeyFile == "" {
		v.at("policy.bundle.signing.public_key_file", "is required: the PEM public key bundles are signed for (opa build --signing-key's pair)")
		return
	}
	s.PublicKeyFile = v.path(s.PublicKeyFile)
	key, err := os.ReadFile(s.PublicKeyFile)
	switch {
	case err != nil:
		v.at("policy.bundle.signing.public_key_file", "%q cannot be read: %v", s.PublicKeyFile, err)
	case !strings.HasPrefix(s.Algorithm, "HS") && !strings.Contains(string(key), "-----BEGIN"):
		v.at("policy.bundle.signing.public_key_file", "%q is not a PEM key (%s needs a public key)", s.PublicKeyFile, s.Algorithm)
	case strings.Contains(string(key), "PRIVATE KEY"):
		v.at("policy.bundle.signing.public_key_file", "%q holds a private key; give the public key (openssl pkey -pubout), the private one stays with whoever builds bundles", s.PublicKeyFile)
	default:
		s.PublicKey = key
	}
}
