package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The replicas row: two Portero processes on one PostgreSQL access store,
// seeded like the store row (100,000 members; 10,000 in the smoke run),
// the same 64 users signed in once (a cookie from one replica is good on
// the other: they share the session key), and the load spread over both
// round robin: one wrk per replica at the same time, each with half the
// connections, and the fixed-rate run alternating between them.

const replicaCount = 2

// benchPostgresEnv names a PostgreSQL database the row may use (a URL with
// the right to create a schema); without it the row starts a throwaway
// cluster of its own with Debian's binaries.
const benchPostgresEnv = "PORTERO_BENCH_POSTGRES"

// benchSchema is the row's schema on a PORTERO_BENCH_POSTGRES server,
// dropped and created again at each run.
const benchSchema = "portero_bench_replicas"

// postgresForBench returns the URL of an empty database for the row: a
// schema of its own on PORTERO_BENCH_POSTGRES, or a throwaway cluster
// started in h.dir (its postmaster is one of the harness's processes, so
// it is stopped by its process group with the others).
func (h *harness) postgresForBench() (string, error) {
	if base := os.Getenv(benchPostgresEnv); base != "" {
		psql, err := exec.LookPath("psql")
		if err != nil {
			return "", fmt.Errorf("%s is set but psql is not installed (apt-get install postgresql-client)", benchPostgresEnv)
		}
		q := fmt.Sprintf("DROP SCHEMA IF EXISTS %[1]s CASCADE; CREATE SCHEMA %[1]s", benchSchema)
		if out, err := exec.Command(psql, base, "-v", "ON_ERROR_STOP=1", "-q", "-c", q).CombinedOutput(); err != nil {
			return "", fmt.Errorf("create schema %s: %v\n%s", benchSchema, err, out)
		}
		u, err := url.Parse(base)
		if err != nil {
			return "", err
		}
		v := u.Query()
		v.Set("search_path", benchSchema)
		u.RawQuery = v.Encode()
		return u.String(), nil
	}
	bin := postgresBinaries()
	if bin == "" {
		return "", fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql), and %s is not set", benchPostgresEnv)
	}
	dir := filepath.Join(h.dir, "postgres")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// initdb refuses to run as root: the cluster then belongs to the
	// postgres user Debian's package creates.
	var as []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", errors.New("running as root and there is no postgres user to own the cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The scratch directories above are root's: let the postgres user in.
		for d := dir; strings.HasPrefix(d, h.o.workDir) && d != filepath.Dir(d); d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o755)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
		as = []string{"runuser", "-u", "postgres", "--"}
	}
	command := func(name string, args ...string) *exec.Cmd {
		full := append(append(append([]string{}, as...), filepath.Join(bin, name)), args...)
		cmd := exec.Command(full[0], full[1:]...)
		cmd.Dir = dir
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := command("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port := freePort()
	// The postmaster in the foreground, as one of the harness's processes;
	// fsync stays on, as in production. Small shared buffers: the 100,000
	// members take ~40 MB, the rest is the page cache.
	full := append(append([]string{}, as...), filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100", "-c", "shared_buffers=32MB")
	p := h.start("postgres", nil, full[0], full[1:]...)
	pgURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	isready := filepath.Join(bin, "pg_isready")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if exec.Command(isready, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres").Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("PostgreSQL did not accept connections within 30 s\n%s", p.tail())
		}
	}
	return pgURL, nil
}

// postgresBinaries is the newest /usr/lib/postgresql/N/bin with initdb.
func postgresBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestV := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if _, serr := os.Stat(filepath.Join(d, "initdb")); err == nil && serr == nil && v > bestV {
			best, bestV = d, v
		}
	}
	return best
}

// porteroReplicasRow: the store row's facts and users on PostgreSQL, two
// replicas, the load spread over both.
func (h *harness) porteroReplicasRow() (target, error) {
	pgURL, err := h.postgresForBench()
	if err != nil {
		return target{}, err
	}
	tenants := storeTenants
	if h.o.smoke {
		tenants = 1000
	}
	seed := filepath.Join(h.dir, "store-seed.jsonl")
	members, err := writeStoreSeed(seed, tenants)
	if err != nil {
		return target{}, err
	}
	start := time.Now()
	if out, err := exec.Command(filepath.Join(h.bin, "portero"), "admin", "--store", pgURL, "import", seed).CombinedOutput(); err != nil {
		return target{}, fmt.Errorf("import into PostgreSQL: %v\n%s", err, out)
	}
	importedPostgres = storeImport{members: members, took: time.Since(start)}

	var bases []string
	var replicas []*proc
	for i := range replicaCount {
		name := fmt.Sprintf("portero-replica-%d", i+1)
		extra := "access:\n  store: " + pgURL + "\n  pool: {max_open: 20, max_idle: 10}\n"
		cfg, public, ops := h.porteroConfigFor(name, true, "warn", "", extra)
		p := h.start(name, nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfg)
		if err := waitStatus(ops+"/readyz", 200); err != nil {
			return target{}, fmt.Errorf("%v\n%s", err, p.tail())
		}
		bases, replicas = append(bases, public), append(replicas, p)
	}
	// Each user signs in once, on the first replica; the cookie is sent to
	// both.
	var reqs []request
	for range storeUsers {
		cookie, body, err := sessionCookie(bases[0], "/.portero/login?rd=/.portero/userinfo")
		if err != nil {
			return target{}, fmt.Errorf("sign in: %v\n%s", err, replicas[0].tail())
		}
		var who struct{ Sub string }
		if err := json.Unmarshal(body, &who); err != nil || !strings.HasPrefix(who.Sub, "bench-user-") {
			return target{}, fmt.Errorf("userinfo after sign-in: %q (%v)", body, err)
		}
		var u int
		_, _ = fmt.Sscanf(who.Sub, "bench-user-%d", &u)
		tenant := benchUserTenant(u, tenants)
		for _, path := range []string{"/locations/l1/profile", "/locations", "/reviews"} {
			reqs = append(reqs, request{path: "/t/" + tenant + path, headers: []string{cookie}})
		}
	}
	// Both replicas serve every request of the rotation before the load.
	for _, base := range bases {
		for _, r := range reqs {
			r.path = base + r.path
			if code := doRequest(http.DefaultClient, r); code != 200 {
				return target{}, fmt.Errorf("%s answered %d before the load", r.path, code)
			}
		}
	}
	// The gateways are measured, not PostgreSQL: under the load it answers
	// nothing (every lookup after the first is cached until a write), and
	// RSS would count its shared buffers once per backend.
	return target{url: bases[0], requests: reqs, replicas: bases, measured: replicas}, nil
}

// spreadList is the rotation of a target spread over its replicas: each
// request in turn, alternating between them.
func spreadList(tg target) []request {
	out := make([]request, 0, len(tg.requests)*len(tg.replicas))
	for i, r := range tg.requests {
		for j := range tg.replicas {
			base := tg.replicas[(i+j)%len(tg.replicas)]
			r2 := r
			r2.path = base + r.path
			out = append(out, r2)
		}
	}
	return out
}

// wrkSpread loads every replica of tg at the same time, one wrk each with
// an equal share of the threads and connections, and returns what one wrk
// would print for the whole: requests/s summed, the slower replica's p50
// and p99 (wrk reports percentiles, which do not add up: the worse of two
// equal loads is the conservative figure), non-2xx answers summed.
func (h *harness) wrkSpread(tg target, dir string, d time.Duration) (string, error) {
	n := len(tg.replicas)
	outs, errs := make([]string, n), make([]error, n)
	share := h.o
	share.threads, share.conns = max(1, h.o.threads/n), max(1, h.o.conns/n)
	sub := &harness{o: share}
	var wg sync.WaitGroup
	for i, base := range tg.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := target{url: base, requests: tg.requests}
			wdir := filepath.Join(dir, fmt.Sprintf("replica-%d", i+1))
			_ = os.MkdirAll(wdir, 0o755)
			outs[i], errs[i] = sub.wrk(one, wdir, d)
		}()
	}
	wg.Wait()
	var total result
	for i := range n {
		if errs[i] != nil {
			return "", fmt.Errorf("replica %d: %w", i+1, errs[i])
		}
		var r result
		if err := parseWrk(outs[i], &r); err != nil {
			return "", err
		}
		total.rps += r.rps
		total.p50, total.p99 = max(total.p50, r.p50), max(total.p99, r.p99)
		total.non2xx += r.non2xx
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %d wrk processes, one per replica\n", n)
	fmt.Fprintf(&b, "    50%% %.2fus\n    99%% %.2fus\n", float64(total.p50)/float64(time.Microsecond), float64(total.p99)/float64(time.Microsecond))
	if total.non2xx > 0 {
		fmt.Fprintf(&b, "  Non-2xx or 3xx responses: %d\n", total.non2xx)
	}
	fmt.Fprintf(&b, "Requests/sec: %.2f\n", total.rps)
	return b.String(), nil
}

// importedPostgres is what seeding the replicas row took.
var importedPostgres storeImport

// replicasSummary compares the replicas row with the single gateway on a
// SQLite store, round by round, for the report.
func replicasSummary(rows []result) string {
	rep, one := find(rows, "Portero, two replicas on PostgreSQL"), find(rows, "Portero, cookie sessions, access store")
	if rep == nil {
		return ""
	}
	var b strings.Builder
	if one != nil {
		ratio, each := roundRatios(rep, one)
		fmt.Fprintf(&b, "- Two replicas on PostgreSQL behind one load at %.2f× the requests/s of one gateway on its SQLite store (same users, requests and policy, on the same two cores, which the replicas, PostgreSQL and wrk share). Round by round: %s.\n",
			ratio, strings.Join(each, "; "))
	}
	if importedPostgres.members > 0 {
		fmt.Fprintf(&b, "- Seeding the replicas row (`portero admin import` into PostgreSQL, one transaction): %d members in %.2f s.\n",
			importedPostgres.members, importedPostgres.took.Seconds())
	}
	return b.String()
}
