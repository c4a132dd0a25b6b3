package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/internal/testca"
)

// tlsFiles writes a CA, a server pair, a client pair, an expired pair and
// a file that is no PEM into a temporary directory.
func tlsFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca := testca.New(t, "test ca")
	ca.Server(t, time.Hour, "localhost").Write(t, dir, "server")
	ca.Client(t, "portero").Write(t, dir, "client")
	ca.Server(t, -time.Minute, "localhost").Write(t, dir, "expired")
	testca.WriteAtomic(t, filepath.Join(dir, "ca.pem"), ca.PEM)
	testca.WriteAtomic(t, filepath.Join(dir, "junk.pem"), []byte("not pem\n"))
	return dir
}

func TestTLSConfigLoads(t *testing.T) {
	t.Parallel()
	dir := tlsFiles(t)
	src := `
listen:
  tls: {cert_file: server.crt, key_file: server.key}
oidc:
  issuer: https://login.example.com
  audiences: [portero]
routes:
  - name: app
    upstream: https://app.internal:8443
    tls: {ca_file: ca.pem, cert_file: client.crt, key_file: client.key, server_name: app.example.com}
  - name: public
    upstream: https://example.com
`
	cfg, err := Parse(filepath.Join(dir, "gateway.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Listen.TLS; l == nil || l.CertFile != filepath.Join(dir, "server.crt") || l.KeyFile != filepath.Join(dir, "server.key") {
		t.Errorf("listen.tls: %+v", cfg.Listen.TLS)
	}
	u := cfg.Routes[0].TLS
	if u == nil || u.RootCAs == nil || u.Certificate == nil || u.ServerName != "app.example.com" {
		t.Fatalf("routes[0].tls: %+v", u)
	}
	if cfg.Routes[1].TLS != nil {
		t.Errorf("routes[1].tls: %+v, want none (the system's roots)", cfg.Routes[1].TLS)
	}
}

// Every TLS mistake is refused at load, at its key's line and column,
// with what to do.
func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	dir := tlsFiles(t)
	const head = `
oidc:
  issuer: https://login.example.com
  audiences: [portero]
`
	for _, tc := range []struct {
		name, src, want string
	}{
		{"listen without key", "listen:\n  tls: {cert_file: server.crt}\n", "gateway.yaml:2:8: listen.tls: cert_file and key_file are both required"},
		{"listen missing file", "listen:\n  tls: {cert_file: nope.crt, key_file: server.key}\n", "gateway.yaml:2:20: listen.tls.cert_file: cannot read"},
		{"listen key of another cert", "listen:\n  tls: {cert_file: server.crt, key_file: client.key}\n", "listen.tls: " + `"` + filepath.Join(dir, "server.crt") + `" and`},
		{"listen junk", "listen:\n  tls: {cert_file: junk.pem, key_file: server.key}\n", "are not a certificate and its key"},
		{"listen expired", "listen:\n  tls: {cert_file: expired.crt, key_file: expired.key}\n", "listen.tls.cert_file: the certificate in"},
		{"tls on http upstream", "routes:\n  - {name: a, upstream: http://a, tls: {ca_file: ca.pem}}\n", "routes[0].tls: applies to an https:// upstream only"},
		{"insecure", "routes:\n  - {name: a, upstream: https://a, tls: {insecure_skip_verify: true}}\n", "routes[0].tls.insecure_skip_verify: is not offered"},
		{"ca junk", "routes:\n  - {name: a, upstream: https://a, tls: {ca_file: junk.pem}}\n", "routes[0].tls.ca_file: " + `"` + filepath.Join(dir, "junk.pem") + `" holds no PEM certificate`},
		{"ca missing", "routes:\n  - {name: a, upstream: https://a, tls: {ca_file: missing.pem}}\n", "routes[0].tls.ca_file: cannot read"},
		{"cert without key", "routes:\n  - {name: a, upstream: https://a, tls: {cert_file: client.crt}}\n", "routes[0].tls: cert_file and key_file go together"},
		{"client key mismatch", "routes:\n  - {name: a, upstream: https://a, tls: {cert_file: client.crt, key_file: server.key}}\n", "are not a certificate and its key"},
		{"server name wildcard", "routes:\n  - {name: a, upstream: https://a, tls: {server_name: '*.example.com'}}\n", "routes[0].tls.server_name: \"*.example.com\" is a wildcard"},
		{"server name with port", "routes:\n  - {name: a, upstream: https://a, tls: {server_name: 'a:443'}}\n", "is not a host name"},
		{"unknown key", "routes:\n  - {name: a, upstream: https://a, tls: {verify: false}}\n", `unknown key "verify"; expected one of: ca_file, cert_file, insecure_skip_verify, key_file, server_name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// listen first, so its line numbers are the ones in the table
			src := tc.src + head
			if !strings.Contains(tc.src, "routes:") {
				src += "routes:\n  - {name: a, upstream: http://a}\n"
			}
			_, err := Parse(filepath.Join(dir, "gateway.yaml"), []byte(src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestInsecureSkipVerifyFalseIsHarmless(t *testing.T) {
	t.Parallel()
	src := minimal + "    tls: {insecure_skip_verify: false}\n"
	src = strings.Replace(src, "http://127.0.0.1:3000", "https://127.0.0.1:3000", 1)
	if _, err := Parse("gateway.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
}
