// Command idleconns measures what idle keep-alive client connections cost
// the gateway: it starts `portero serve`, opens N connections that each
// make one request (the policy is evaluated: an anonymous request to a
// tenant page) and then stay open and idle, and samples the gateway's
// resident memory (VmRSS) before, with the connections open, and after
// they closed. Loopback only; bounded by -n and -timeout.
//
//	go -C bench build -o /tmp/idleconns ./idleconns && /tmp/idleconns -bin /tmp/portero -n 10000
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "portero", "the portero binary")
	cfg := flag.String("c", "bench/idleconns/gateway.yaml", "configuration (claims mode is enough; raise listen.client_connections)")
	n := flag.Int("n", 10000, "idle connections to open")
	settle := flag.Duration("settle", 15*time.Second, "how long to wait before sampling (the gateway's idle memory janitor runs meanwhile)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*bin, *cfg, *n, *settle, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func rssKB(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

func run(bin, cfg string, n int, settle, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	public, ops := freeAddr(), freeAddr()
	cmd := exec.Command(bin, "serve", "-c", cfg)
	cmd.Env = append(os.Environ(), "PORTERO_PUBLIC_ADDR="+public, "PORTERO_OPS_ADDR="+ops, "PORTERO_LOG_LEVEL=error")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for {
		if c, err := net.Dial("tcp", public); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway never listened on %s", public)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	request := "GET /t/acme/ HTTP/1.1\r\nHost: localhost\r\nUser-Agent: idleconns\r\n\r\n"
	// Warm up: one connection, a few requests.
	if err := oneRequest(public, request); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	before, err := rssKB(pid)
	if err != nil {
		return err
	}
	baseStack, baseHeap := goMemory(ops)
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", public)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte(request)); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable || resp.Close {
			return fmt.Errorf("connection %d was refused or closed (%s): raise listen.max_connections and listen.client_connections", i, resp.Status)
		}
		_ = c.SetDeadline(time.Time{})
		conns = append(conns, c)
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %d connections", i)
		}
	}
	peak, _ := rssKB(pid)
	time.Sleep(settle)
	open, err := rssKB(pid)
	if err != nil {
		return err
	}
	stack, heap := goMemory(ops)
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(settle)
	after, err := rssKB(pid)
	if err != nil {
		return err
	}
	out := map[string]any{
		"connections":               n,
		"rss_before_kb":             before,
		"rss_just_opened_kb":        peak,
		"rss_open_idle_kb":          open,
		"rss_after_close_kb":        after,
		"kb_per_idle_connection":    float64(open-before) / float64(n),
		"kb_per_connection_at_open": float64(peak-before) / float64(n),
		"kb_kept_after_close":       after - before,
		"settle_seconds":            settle.Seconds(),
		"stack_inuse_kb_per_conn":   (stack - baseStack) / 1024 / float64(n),
		"heap_inuse_kb_per_conn":    (heap - baseHeap) / 1024 / float64(n),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// goMemory reads the gateway's stack and heap in use from its metrics.
func goMemory(ops string) (stack, heap float64) {
	resp, err := http.Get("http://" + ops + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_memstats_stack_inuse_bytes":
			stack = v
		case "go_memstats_heap_inuse_bytes":
			heap = v
		}
	}
	return stack, heap
}

func oneRequest(addr, request string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for range 3 {
		if _, err := c.Write([]byte(request)); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
	}
	return nil
}
