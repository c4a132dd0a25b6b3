package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"time"
)

// ListenTLS serves the public listener over HTTPS: TLS 1.2 or 1.3, HTTP/2
// and HTTP/1.1 offered by ALPN. The files are watched and a renewed pair
// serves new connections without a restart (internal/certreload).
type ListenTLS struct {
	// CertFile is the PEM certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the leaf's unencrypted PEM private key.
	KeyFile string `yaml:"key_file"`
}

// UpstreamTLS is how Portero connects to a route's https upstream. Without
// it an https upstream is verified against the system's roots.
type UpstreamTLS struct {
	// CAFile holds the PEM certificates the upstream's chain must lead to,
	// instead of the system's roots (a private CA).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate shown to an upstream
	// that asks for one (mutual TLS); both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name sent in SNI and checked in the upstream's
	// certificate, when it is not the upstream URL's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify is refused when true: it exists so the error can
	// say what to do instead (ca_file, server_name).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`

	// RootCAs is CAFile parsed; nil means the system's roots.
	RootCAs *x509.CertPool `yaml:"-"`
	// Certificate is CertFile and KeyFile loaded; nil without them.
	Certificate *tls.Certificate `yaml:"-"`
}

func (v validator) listenTLS(t *ListenTLS) {
	if t == nil {
		return
	}
	const fix = "give the PEM certificate chain (leaf first) and its unencrypted PEM private key, e.g. tls: {cert_file: /etc/portero/tls.crt, key_file: /etc/portero/tls.key}"
	if t.CertFile == "" || t.KeyFile == "" {
		v.at("listen.tls", "cert_file and key_file are both required; %s", fix)
		return
	}
	t.CertFile, t.KeyFile = v.path(t.CertFile), v.path(t.KeyFile)
	cert := v.keyPair("listen.tls", t.CertFile, t.KeyFile)
	if cert != nil && time.Now().After(cert.Leaf.NotAfter) {
		v.at("listen.tls.cert_file", "the certificate in %q expired at %s; renew it", t.CertFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

func (v validator) upstreamTLS(r *Route, route string) {
	t := r.TLS
	if t == nil {
		return
	}
	key := route + ".tls"
	if r.UpstreamURL != nil && r.UpstreamURL.Scheme != "https" {
		v.at(key, "applies to an https:// upstream only, and upstream is %q; make it https://, or remove tls", r.Upstream)
	}
	if t.InsecureSkipVerify {
		v.at(key+".insecure_skip_verify", "is not offered: an unverified upstream could be anyone on the path, and it would receive the identity headers and assertion; give its CA in ca_file (and server_name if its certificate names another host)")
	}
	if t.CAFile != "" {
		t.CAFile = v.path(t.CAFile)
		if pem, err := os.ReadFile(t.CAFile); err != nil {
			v.at(key+".ca_file", "cannot read %q: %v; give a PEM file of the CA certificates the upstream's certificate is issued by", t.CAFile, unwrapPath(err))
		} else if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) {
			v.at(key+".ca_file", "%q holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA certificates the upstream's certificate is issued by", t.CAFile)
		} else {
			t.RootCAs = pool
		}
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		v.at(key, "cert_file and key_file go together: the client certificate shown to the upstream and its private key")
	default:
		t.CertFile, t.KeyFile = v.path(t.CertFile), v.path(t.KeyFile)
		t.Certificate = v.keyPair(key, t.CertFile, t.KeyFile)
	}
	if t.ServerName != "" && !hostName.MatchString(t.ServerName) && net.ParseIP(t.ServerName) == nil {
		v.at(key+".server_name", "%q is not a host name such as app.internal (no wildcard, no port)", t.ServerName)
	} else if len(t.ServerName) > 1 && t.ServerName[0] == '*' {
		v.at(key+".server_name", "%q is a wildcard; give the one name the upstream's certificate must hold", t.ServerName)
	}
}

// keyPair loads a certificate and its key, reporting what is wrong at the
// key that names it.
func (v validator) keyPair(key, certFile, keyFile string) *tls.Certificate {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		v.at(key+".cert_file", "cannot read %q: %v", certFile, unwrapPath(err))
	}
	keyPEM, kerr := os.ReadFile(keyFile)
	if kerr != nil {
		v.at(key+".key_file", "cannot read %q: %v", keyFile, unwrapPath(kerr))
	}
	if err != nil || kerr != nil {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		v.at(key, "%q and %q are not a certificate and its key: %v; give the PEM certificate chain (leaf first) and the unencrypted PEM private key it was issued for", certFile, keyFile, err)
		return nil
	}
	return &cert
}

// unwrapPath drops the *fs.PathError's repetition of the path.
func unwrapPath(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
