package faults

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver, to copy the store as a backup would

	"github.com/portero-gateway/portero/internal/testissuer"
)

// admin runs portero admin on a store file.
func admin(t *testing.T, db string, args ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "portero"), append([]string{"admin", "--store", db}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("portero admin %v: %v\n%s", args, err, out)
	}
}

// backup copies a live store to a new file, consistently (VACUUM INTO).
func backup(t *testing.T, db, to string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = os.Remove(to)
	if _, err := conn.Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatalf("backup %s: %v", db, err)
	}
}

func removeStore(t *testing.T, db string) {
	t.Helper()
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

// timedLoad sends GET path with token from workers clients until ctx ends,
// noting when each request began and what it got (0: no answer).
type timedLoad struct {
	mu   sync.Mutex
	seen []sample
	wait sync.WaitGroup
}

type sample struct {
	at     time.Time
	status int
}

func startTimedLoad(ctx context.Context, addr, path, token string, workers int) *timedLoad {
	l := &timedLoad{}
	for range workers {
		l.wait.Add(1)
		go func() {
			defer l.wait.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				at := time.Now()
				status := 0
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				l.mu.Lock()
				l.seen = append(l.seen, sample{at, status})
				l.mu.Unlock()
				if status == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

// between counts answers by status for requests begun in [from, to).
func (l *timedLoad) between(from, to time.Time) map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int]int{}
	for _, s := range l.seen {
		if !s.at.Before(from) && s.at.Before(to) {
			out[s.status]++
		}
	}
	return out
}

// firstAfter is when the first request begun after from got status (zero
// time if none did).
func (l *timedLoad) firstAfter(from time.Time, status int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, s := range l.seen {
		if s.status == status && s.at.After(from) && (first.IsZero() || s.at.Before(first)) {
			first = s.at
		}
	}
	return first
}

// lastIn is when the last request begun in [from, to) got status.
func (l *timedLoad) lastIn(from, to time.Time, status int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last time.Time
	for _, s := range l.seen {
		if s.status == status && !s.at.Before(from) && s.at.Before(to) && s.at.After(last) {
			last = s.at
		}
	}
	return last
}

func (g *gateway) readyz() (int, string) {
	resp, err := http.Get("http://" + g.ops + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitReadyz polls /readyz until it answers want, and returns how long it
// took (or fails after limit).
func (g *gateway) waitReadyz(t *testing.T, want int, limit time.Duration) (time.Duration, string) {
	t.Helper()
	begin := time.Now()
	for {
		code, body := g.readyz()
		if code == want {
			return time.Since(begin), body
		}
		if time.Since(begin) > limit {
			t.Fatalf("readyz did not answer %d within %v (last: %d %s)", want, limit, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The store file is replaced, corrupted and deleted under load. While it
// cannot be used, /readyz answers 503 with the reason, metrics say so and
// requests are refused with 503 (never served from cached facts); a
// replaced file's facts are the ones served once it is seen (never the old
// file's); and the gateway recovers by itself when a good file is back.
func TestStoreReplacedAndCorruptedUnderLoad(t *testing.T) {
	need(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "portero.db")
	admin(t, db, "tenant", "create", "acme", "--name", "Acme", "--owner", "olivia")
	admin(t, db, "member", "put", "acme", "alice", "--role", "administrator")
	policyDir := filepath.Join(dir, "policy")
	_ = os.Mkdir(policyDir, 0o755)
	rego := `package portero.authz

default decision := {"allow": false, "status": 403, "reason": "member.inactive"}

decision := {"allow": true, "status": 200, "reason": "ok", "headers": {"X-Portero-User": input.identity.sub}} if {
	input.access.membership.status == "active"
}
`
	if err := os.WriteFile(filepath.Join(policyDir, "authz.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	const watch = 100 * time.Millisecond
	grace := 1 * time.Second // detection (watch interval) plus reopening, with room for a loaded machine
	iss := testissuer.New(t)
	up := startUpstream(t, "")
	g := startGateway(t, iss, up.addr, fmt.Sprintf("access:\n  store: %s\n  watch_interval: %v\npolicy:\n  dir: %s\n  watch: false\n", db, watch, policyDir))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	token := member(t, iss) // alice
	l := startTimedLoad(ctx, g.public, "/t/acme/x", token, 8)
	phase := pick(3*time.Second, 20*time.Second)
	var report []string
	note := func(format string, args ...any) { report = append(report, fmt.Sprintf(format, args...)) }

	// Healthy.
	t0 := time.Now()
	time.Sleep(phase)
	if got := l.between(t0, time.Now()); len(got) != 1 || got[200] == 0 {
		t.Fatalf("healthy store: %v", got)
	}
	if up := g.metric("portero_access_store_up"); up != 1 {
		t.Fatalf("portero_access_store_up = %v", up)
	}

	// Replaced: a copy where alice is deactivated is put in place of the
	// file (deleted with its -wal and -shm). Her requests must turn 403.
	copyPath := filepath.Join(dir, "copy.db")
	backup(t, db, copyPath)
	admin(t, copyPath, "member", "deactivate", "acme", "alice")
	removeStore(t, db)
	if err := os.Rename(copyPath, db); err != nil {
		t.Fatal(err)
	}
	tReplaced := time.Now()
	time.Sleep(phase)
	after := l.between(tReplaced.Add(grace), time.Now())
	stale := l.lastIn(tReplaced, time.Now(), 200)
	note("replaced: answers after %v: %v; last 200 (old file's facts) began %v after the replacement", grace, after, durationOr(stale, tReplaced))
	if after[200] != 0 || after[403] == 0 || len(after) != 1 {
		t.Fatalf("after the file was replaced: %v (200 = the old file's facts served)", after)
	}
	if code, body := g.readyz(); code != 200 {
		t.Fatalf("readyz with the replaced file reopened: %d %s", code, body)
	}

	// Alice active again (a write by portero admin to the running file),
	// and a good backup of that.
	admin(t, db, "member", "reactivate", "acme", "alice")
	good := filepath.Join(dir, "good.db")
	backup(t, db, good)
	tReactivated := time.Now()
	time.Sleep(phase / 2)
	if got := l.between(tReactivated.Add(grace), time.Now()); got[200] == 0 || len(got) != 1 {
		t.Fatalf("after reactivation: %v", got)
	}

	// Corrupted in place: fail closed, readyz 503 with the reason.
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*31 + 7)
	}
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	tCorrupt := time.Now()
	took, body := g.waitReadyz(t, http.StatusServiceUnavailable, 5*time.Second)
	note("corrupted: readyz 503 after %v: %s", took.Round(time.Millisecond), body)
	if !strings.Contains(body, "access store") {
		t.Fatalf("readyz reason: %s", body)
	}
	time.Sleep(phase)
	if up := g.metric("portero_access_store_up"); up != 0 {
		t.Fatalf("portero_access_store_up while corrupted = %v", up)
	}
	after = l.between(tCorrupt.Add(grace), time.Now())
	note("corrupted: answers after %v: %v", grace, after)
	if after[200] != 0 || after[503] == 0 {
		t.Fatalf("while the store is corrupted: %v (want 503 only)", after)
	}

	// Put back (a good copy moved into place): recovers by itself.
	tmp := filepath.Join(dir, "restore.db")
	backup(t, good, tmp)
	if err := os.Rename(tmp, db); err != nil {
		t.Fatal(err)
	}
	tRestored := time.Now()
	took, _ = g.waitReadyz(t, http.StatusOK, 5*time.Second)
	time.Sleep(phase / 2)
	first := l.firstAfter(tRestored, 200)
	note("restored after corruption: readyz 200 after %v, first 200 %v after", took.Round(time.Millisecond), durationOr(first, tRestored))
	if first.IsZero() || first.Sub(tRestored) > 5*time.Second {
		t.Fatalf("no recovery after the file was restored: %v", l.between(tRestored, time.Now()))
	}

	// Deleted: fail closed until a file is put back.
	removeStore(t, db)
	tDeleted := time.Now()
	took, body = g.waitReadyz(t, http.StatusServiceUnavailable, 5*time.Second)
	note("deleted: readyz 503 after %v: %s", took.Round(time.Millisecond), body)
	time.Sleep(phase)
	after = l.between(tDeleted.Add(grace), time.Now())
	note("deleted: answers after %v: %v", grace, after)
	if after[200] != 0 || after[503] == 0 {
		t.Fatalf("while the store is deleted: %v (want 503 only)", after)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("the gateway created a store at the path while it was gone: %v", err)
	}
	backup(t, good, tmp)
	if err := os.Rename(tmp, db); err != nil {
		t.Fatal(err)
	}
	tBack := time.Now()
	took, _ = g.waitReadyz(t, http.StatusOK, 5*time.Second)
	time.Sleep(phase / 2)
	first = l.firstAfter(tBack, 200)
	note("put back after deletion: readyz 200 after %v, first 200 %v after", took.Round(time.Millisecond), durationOr(first, tBack))
	if first.IsZero() {
		t.Fatalf("no recovery after the file was put back: %v", l.between(tBack, time.Now()))
	}
	cancel()
	l.wait.Wait()
	all := l.between(t0, time.Now())
	note("all answers: %v", all)
	for _, line := range report {
		t.Log(line)
	}
	if all[500] != 0 || all[502] != 0 {
		t.Fatalf("5xx other than 503: %v", all)
	}
}

// durationOr is t - from, or "none" when t is zero.
func durationOr(t, from time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}
