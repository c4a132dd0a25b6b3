package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/proxy"
)

const auditUsage = `Usage:
  portero audit verify [-c gateway.yaml | --store FILE|URL] [--key assertion.pem]
                       check the audit trail in the access store: the hash chain
                       and the signed checkpoints (with the gateway's assertion key)
  portero audit verify FILE
                       check a store file, or a JSON lines export, by its content
  portero audit export [-c gateway.yaml | --store FILE|URL] OUT
                       write the trail as JSON lines to OUT (- for standard output)

Exit status 1 names the first broken record.
`

// cmdAudit: portero audit verify|export.
func cmdAudit(args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "export") {
		fmt.Fprint(stdout, auditUsage)
		return errors.New("audit: usage: portero audit verify|export (see above)")
	}
	verb := args[0]
	fs := flag.NewFlagSet("audit "+verb, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, auditUsage) }
	cfgPath := fs.String("c", "", "configuration file naming access.store (and assertion.key_file)")
	storePath := fs.String("store", "", "the access store: a SQLite file or a postgres:// URL")
	keyPath := fs.String("key", "", "the gateway's assertion key (PEM) the checkpoints must be signed with")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx := context.Background()
	rest := fs.Args()
	store, key := *storePath, *keyPath
	var cfg *config.Config
	if *cfgPath != "" || (store == "" && (verb == "export" || len(rest) == 0)) {
		path := *cfgPath
		if path == "" {
			path = "gateway.yaml"
		}
		var err error
		if cfg, err = config.Load(path); err != nil {
			return err
		}
		if cfg.Access.Store == "" {
			return fmt.Errorf("audit: %s has no access.store; set it or pass --store FILE", path)
		}
		store = cfg.Access.Store
		if key == "" {
			key = cfg.Assertion.KeyFile
		}
	}
	var pinned *ecdsa.PublicKey
	if key != "" {
		k, err := proxy.LoadAssertionKey(key)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		pinned = &k.PublicKey
	}
	switch {
	case verb == "export":
		if len(rest) != 1 {
			return errors.New("audit: usage: portero audit export [-c gateway.yaml | --store FILE|URL] OUT")
		}
		return exportTrail(ctx, store, cfg, rest[0], stdout)
	case store == "" && len(rest) == 1:
		if isSQLite(rest[0]) {
			return verifyStore(ctx, rest[0], nil, pinned, stdout)
		}
		return verifyFile(rest[0], stdout)
	case len(rest) == 0:
		return verifyStore(ctx, store, cfg, pinned, stdout)
	}
	return errors.New("audit: usage: portero audit verify [-c gateway.yaml | --store FILE | FILE]")
}

// isSQLite says whether path is a SQLite database file.
func isSQLite(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 16)
	_, err = io.ReadFull(f, head)
	return err == nil && bytes.Equal(head, []byte("SQLite format 3\x00"))
}

// openExisting opens a store that must exist already (a SQLite file is
// not created); cfg, when the configuration was read, gives a PostgreSQL
// store's password and pool.
func openExisting(ctx context.Context, path string, cfg *config.Config) (*access.Store, error) {
	if !access.IsPostgres(path) {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	return access.Open(ctx, path, storeOptions(cfg)...)
}

func verifyStore(ctx context.Context, path string, cfg *config.Config, pinned *ecdsa.PublicKey, stdout io.Writer) error {
	s, err := openExisting(ctx, path, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	sum, err := audit.VerifyTrail(ctx, s, pinned)
	if err != nil {
		var be *audit.BreakError
		if errors.As(err, &be) {
			return fmt.Errorf("audit: %s: the trail is broken at %w (%d records before it verify)", path, be, sum.Records)
		}
		return fmt.Errorf("audit: %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "%s: %d records, hash chain intact; %d checkpoints intact", path, sum.Records, sum.Checkpoints)
	if sum.Checkpoints > 0 {
		signer := "signed with the gateway's key"
		if pinned == nil {
			signer = "(pass --key or -c to check it is signed with the gateway's key)"
		}
		fmt.Fprintf(stdout, ", the newest, of %s, covers record %d of %d %s", sum.Last.Time.Format("2006-01-02T15:04:05Z"), sum.Last.Seq, sum.Head, signer)
		if sum.OtherKeys > 0 {
			fmt.Fprintf(stdout, " (%d older ones by earlier keys)", sum.OtherKeys)
		}
	}
	fmt.Fprintln(stdout)
	return nil
}

func verifyFile(path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		var be *audit.BreakError
		if errors.As(err, &be) {
			return fmt.Errorf("audit: %s: the chain is broken at %w (%d records before it verify)", path, be, n)
		}
		return fmt.Errorf("audit: %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "%s: %d records, hash chain intact\n", path, n)
	return nil
}

func exportTrail(ctx context.Context, path string, cfg *config.Config, out string, stdout io.Writer) error {
	s, err := openExisting(ctx, path, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	w := stdout
	if out != "-" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		defer f.Close()
		w = f
	}
	n := 0
	err = s.AuditScan(ctx, 0, func(raw []byte) error {
		n++
		_, err := w.Write(append(raw, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	if out != "-" {
		fmt.Fprintf(stdout, "%s: %d records exported to %s\n", path, n, out)
	}
	return nil
}
