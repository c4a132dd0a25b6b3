// Package pgtest gives tests a real PostgreSQL: an empty schema of their
// own on the server named by PORTERO_TEST_POSTGRES (CI sets it to the
// machine's server; scripts/test.sh starts a throwaway cluster when it is
// not set), or a whole throwaway cluster that a test may stop and restart.
//
// Without a server the tests that need one skip, unless
// PORTERO_POSTGRES_REQUIRED=1 (scripts/test.sh sets it), which makes a
// missing server a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/portero-gateway/portero/internal/testport"
)

// Env names the PostgreSQL server tests use: a URL of a database in which
// they may create and drop schemas.
const Env = "PORTERO_TEST_POSTGRES"

// RequiredEnv, set to 1, makes a missing server or missing PostgreSQL
// binaries a test failure instead of a skip.
const RequiredEnv = "PORTERO_POSTGRES_REQUIRED"

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequiredEnv) == "1" {
		t.Fatalf("PostgreSQL required (%s=1) but %s", RequiredEnv, why)
	}
	t.Skipf("no PostgreSQL: %s (scripts/test.sh provides one)", why)
}

// Server returns the server's URL, or skips.
func Server(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		unavailable(t, Env+" is not set")
	}
	return base
}

// Schema creates an empty schema on the server and returns a URL whose
// connections use it; the schema is dropped when the test ends.
func Schema(t testing.TB) string {
	t.Helper()
	return SchemaOn(t, Server(t))
}

// SchemaOn is Schema on the server at base.
func SchemaOn(t testing.TB, base string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "portero_test_" + hex.EncodeToString(b[:])
	exec := func(q string) error {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	if err := exec(`CREATE SCHEMA ` + name); err != nil {
		if os.Getenv(RequiredEnv) == "1" {
			t.Fatalf("create a schema on %s: %v", redact(base), err)
		}
		t.Skipf("PostgreSQL at %s unusable: %v", redact(base), err)
	}
	t.Cleanup(func() {
		if err := exec(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return WithSearchPath(base, name)
}

// WithSearchPath returns base with its connections' search_path set.
func WithSearchPath(base, schema string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(a URL)"
}

// Cluster is a throwaway PostgreSQL server in a temporary directory, for
// tests that stop and restart the database under a running gateway.
type Cluster struct {
	URL  string // postgres://postgres@127.0.0.1:port/postgres
	bin  string
	dir  string
	port int
	as   string // the user it runs as ("" when not root)
	t    testing.TB
}

// Binaries returns the directory of Debian's PostgreSQL server binaries
// (the newest version installed), or "".
func Binaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// StartCluster creates and starts a cluster; it is stopped when the test
// ends. It skips (or fails, when required) without the server binaries.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := Binaries()
	if bin == "" {
		unavailable(t, "no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
	}
	c := &Cluster{bin: bin, t: t}
	dir, err := os.MkdirTemp("", "portero-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	// initdb refuses to run as root: the cluster then belongs to the
	// postgres user Debian's package creates.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, "running as root and there is no postgres user to own the cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = "postgres"
	}
	addr := testport.Addrs(t, 1)[0]
	c.port, _ = strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Start()
	t.Cleanup(func() {
		if _, err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("stop the test cluster: %v", err)
		}
	})
	return c
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.as != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.as, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// Start starts the (stopped) server and waits until it accepts
// connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=200", c.port, c.dir)
	if out, err := c.run("pg_ctl", "-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server (fast shutdown: sessions are ended, committed
// work is kept).
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Crash kills the server without a shutdown (immediate mode): on the next
// start it recovers from its write-ahead log.
func (c *Cluster) Crash() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop"); err != nil {
		c.t.Fatalf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}

// DB opens a connection pool on the cluster (closed when the test ends).
func (c *Cluster) DB() *sql.DB {
	db, err := sql.Open("pgx", c.URL)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	return db
}
