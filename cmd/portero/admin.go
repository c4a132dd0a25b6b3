package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/policy"
	defaultrego "github.com/portero-gateway/portero/rego"
)

const adminUsage = `portero admin — manage the access store directly (scripting, bootstrapping the first admin)

Usage: portero admin [-c gateway.yaml | --store FILE|URL] NOUN VERB ARGS...

  tenant create ID --name NAME [--owner SUB] [--owner-email ADDR] [--host HOST]... [--no-master-access]
  tenant list [--q TEXT]
  tenant suspend|reactivate ID
  member put TENANT USER --role ROLE [--profile P] [--business B]... [--location L]...
             [--feature NAME=read|edit]... [--field FEATURE=f1,f2]... [--right RIGHT]...
  member list TENANT
  member deactivate|reactivate|remove TENANT USER
  partner create ID --name NAME [--email ADDR]
  partner user PARTNER USER [--role admin|staff] [--name NAME] [--email ADDR]
  delegation invite TENANT PARTNER --scope full|limited [--product P]... [--wallet] [--expires RFC3339] --by SUB
  delegation list TENANT
  delegation accept|reject|resend|withdraw|revoke ID
  import FILE|-     tenants, members, partners and partner users from JSON lines
                    ({"tenant": {...}}, {"member": {...}}, ...), all or nothing

Writes take effect in a running gateway within access.watch_interval.
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdAdmin(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, adminUsage) }
	cfgPath := fs.String("c", "gateway.yaml", "configuration file naming access.store")
	storePath := fs.String("store", "", "the access store: a SQLite file or a postgres:// URL (instead of -c)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fs.Usage()
		return errors.New("admin: say what to do, e.g. portero admin tenant list")
	}
	path := *storePath
	src := policy.Source{Name: "embedded", FS: defaultrego.Bundle}
	var cfg *config.Config
	if path == "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
		if cfg.Access.Store == "" {
			return fmt.Errorf("%s has no access.store; set it or pass --store FILE", *cfgPath)
		}
		path = cfg.Access.Store
		if src, err = offlinePolicySource(cfg); err != nil {
			return err
		}
	}
	ctx := context.Background()
	// Names (roles, profiles, features, rights, products) are checked against
	// the policy's catalogue, as the management API does: a typo is an
	// error, not a grant of nothing.
	loaded, err := policy.Compile(ctx, src)
	if err != nil {
		return err
	}
	defs, err := loaded.Definitions(ctx)
	if err != nil {
		return fmt.Errorf("admin: read the policy's definitions: %w", err)
	}
	// Changes are recorded in the audit trail as made by portero admin and
	// the operating-system user who ran it.
	actor := "portero admin"
	if u := os.Getenv("USER"); u != "" {
		actor += " (" + u + ")"
	}
	store, err := access.Open(ctx, path, storeOptions(cfg, access.WithActors(func(context.Context) string { return actor }))...)
	if err != nil {
		return err
	}
	defer store.Close()
	out, err := runAdmin(ctx, store, access.CatalogueOf(defs), rest[0], rest[1], rest[2:])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// positional splits leading positional arguments from the flags after them.
func positional(args []string, n int, usage string) ([]string, []string, error) {
	if len(args) < n {
		return nil, nil, fmt.Errorf("admin: usage: %s", usage)
	}
	for _, a := range args[:n] {
		if strings.HasPrefix(a, "-") {
			return nil, nil, fmt.Errorf("admin: usage: %s", usage)
		}
	}
	return args[:n], args[n:], nil
}

func runAdmin(ctx context.Context, s *access.Store, cat *access.Catalogue, noun, verb string, args []string) (any, error) {
	if noun == "import" {
		return importFile(ctx, s, cat, verb)
	}
	fs := flag.NewFlagSet(noun+" "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch noun + " " + verb {
	case "tenant create":
		pos, rest, err := positional(args, 1, "tenant create ID --name NAME")
		if err != nil {
			return nil, err
		}
		name, owner := fs.String("name", "", ""), fs.String("owner", "", "")
		ownerEmail := fs.String("owner-email", "", "")
		noMaster := fs.Bool("no-master-access", false, "")
		var hosts stringList
		fs.Var(&hosts, "host", "")
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		return s.CreateTenant(ctx, access.Tenant{ID: pos[0], Name: *name, Owner: *owner, OwnerEmail: *ownerEmail, Hostnames: hosts, MasterAccess: !*noMaster})
	case "tenant list":
		q := fs.String("q", "", "")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return s.Tenants(ctx, *q, 500, 0)
	case "tenant suspend", "tenant reactivate":
		pos, _, err := positional(args, 1, "tenant "+verb+" ID")
		if err != nil {
			return nil, err
		}
		t, err := s.Tenant(ctx, pos[0])
		if err != nil {
			return nil, err
		}
		t.Status = map[string]string{"suspend": "suspended", "reactivate": "active"}[verb]
		return s.UpdateTenant(ctx, *t)
	case "member put":
		pos, rest, err := positional(args, 2, "member put TENANT USER --role ROLE")
		if err != nil {
			return nil, err
		}
		role, profile := fs.String("role", "", ""), fs.String("profile", "", "")
		var businesses, locations, features, fields, rights stringList
		fs.Var(&businesses, "business", "")
		fs.Var(&locations, "location", "")
		fs.Var(&features, "feature", "")
		fs.Var(&fields, "field", "")
		fs.Var(&rights, "right", "")
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		m := access.Member{Tenant: pos[0], User: pos[1], Role: *role, Profile: *profile, Businesses: businesses,
			Locations: locations, Rights: rights, Features: map[string]string{}, Fields: map[string][]string{}}
		for _, f := range features {
			name, level, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("admin: --feature %q: write NAME=read or NAME=edit", f)
			}
			m.Features[name] = level
		}
		for _, f := range fields {
			name, list, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("admin: --field %q: write FEATURE=field1,field2", f)
			}
			m.Fields[name] = strings.Split(list, ",")
		}
		if err := cat.CheckMember(&m); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		return s.PutMember(ctx, m)
	case "member list":
		pos, _, err := positional(args, 1, "member list TENANT")
		if err != nil {
			return nil, err
		}
		return s.Members(ctx, pos[0])
	case "member deactivate", "member reactivate":
		pos, _, err := positional(args, 2, "member "+verb+" TENANT USER")
		if err != nil {
			return nil, err
		}
		return s.SetMemberStatus(ctx, pos[0], pos[1], map[string]string{"deactivate": "deactivated", "reactivate": "active"}[verb])
	case "member remove":
		pos, _, err := positional(args, 2, "member remove TENANT USER")
		if err != nil {
			return nil, err
		}
		return map[string]string{"removed": pos[1]}, s.RemoveMember(ctx, pos[0], pos[1])
	case "partner create":
		pos, rest, err := positional(args, 1, "partner create ID --name NAME")
		if err != nil {
			return nil, err
		}
		name, email := fs.String("name", "", ""), fs.String("email", "", "")
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		return s.CreatePartner(ctx, access.Partner{ID: pos[0], Name: *name, Email: *email})
	case "partner user":
		pos, rest, err := positional(args, 2, "partner user PARTNER USER")
		if err != nil {
			return nil, err
		}
		role, name, email := fs.String("role", "", ""), fs.String("name", "", ""), fs.String("email", "", "")
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		return s.PutPartnerUser(ctx, access.PartnerUser{Partner: pos[0], User: pos[1], Role: *role, Name: *name, Email: *email})
	case "delegation invite":
		pos, rest, err := positional(args, 2, "delegation invite TENANT PARTNER --scope full|limited --by SUB")
		if err != nil {
			return nil, err
		}
		scope, by, expires := fs.String("scope", "", ""), fs.String("by", "", ""), fs.String("expires", "", "")
		wallet := fs.Bool("wallet", false, "")
		var products stringList
		fs.Var(&products, "product", "")
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		d := access.Delegation{Tenant: pos[0], Partner: pos[1], Scope: *scope, Products: products, Wallet: *wallet, InvitedBy: *by}
		if *expires != "" {
			t, err := time.Parse(time.RFC3339, *expires)
			if err != nil {
				return nil, fmt.Errorf("admin: --expires %q: use RFC 3339, e.g. 2027-01-31T00:00:00Z", *expires)
			}
			d.Expires = &t
		}
		if err := cat.CheckDelegation(&d); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		return s.Invite(ctx, d)
	case "delegation list":
		pos, _, err := positional(args, 1, "delegation list TENANT")
		if err != nil {
			return nil, err
		}
		return s.Delegations(ctx, pos[0], "")
	case "delegation accept", "delegation reject", "delegation resend", "delegation withdraw", "delegation revoke":
		pos, _, err := positional(args, 1, "delegation "+verb+" ID")
		if err != nil {
			return nil, err
		}
		return s.Transition(ctx, pos[0], verb)
	}
	return nil, fmt.Errorf("admin: unknown command %q (see portero admin -h)", noun+" "+verb)
}

// importFile runs a bulk import from a file or, for "-", standard input.
func importFile(ctx context.Context, s *access.Store, cat *access.Catalogue, path string) (any, error) {
	in := io.Reader(os.Stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("admin: import: %w", err)
		}
		defer f.Close()
		in = f
	}
	n, err := s.ImportChecked(ctx, in, cat)
	if err != nil {
		return nil, fmt.Errorf("admin: import %s: %w (nothing was written)", path, err)
	}
	return n, nil
}
