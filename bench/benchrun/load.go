package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// target is what a row loads — one URL with extra request headers, or a
// list of requests made in turn — and the processes whose CPU and memory
// count.
type target struct {
	url      string
	headers  []string
	requests []request // when set, url is the base (scheme://host)
	measured []*proc
	replicas []string // when set, requests go to each of these bases in turn (replicas.go)
}

// request is one request of a target's rotation.
type request struct {
	method  string // GET when empty
	path    string
	headers []string // "Name: value"
	body    string
}

// list returns the requests the target makes in turn, with full URLs.
func (tg target) list() []request {
	if len(tg.requests) == 0 {
		return []request{{path: tg.url, headers: tg.headers}}
	}
	if len(tg.replicas) > 0 {
		return spreadList(tg)
	}
	out := make([]request, len(tg.requests))
	for i, r := range tg.requests {
		out[i] = r
		out[i].path = tg.url + r.path
	}
	return out
}

// wrk runs wrk against the target for d and returns its output. A rotation
// of requests becomes a Lua script that pre-formats each request once per
// thread, so the script costs wrk little per request.
func (h *harness) wrk(tg target, dir string, d time.Duration) (string, error) {
	if len(tg.replicas) > 0 {
		return h.wrkSpread(tg, dir, d)
	}
	args := []string{"-t", strconv.Itoa(h.o.threads), "-c", strconv.Itoa(h.o.conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", "--timeout", "5s"}
	if len(tg.requests) == 0 {
		for _, hd := range tg.headers {
			args = append(args, "-H", hd)
		}
	} else {
		script := filepath.Join(dir, "requests.lua")
		text := wrkScript(tg.requests)
		if len(tg.requests) > maxInlineRequests {
			var err error
			if text, err = wrkScriptFile(tg.requests, filepath.Join(dir, "requests.tsv")); err != nil {
				return "", err
			}
		}
		if err := os.WriteFile(script, []byte(text), 0o644); err != nil {
			return "", err
		}
		args = append(args, "-s", script)
	}
	args = append(args, tg.url)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %v: %s", err, out)
	}
	return string(out), nil
}

// wrkScript is a wrk Lua script making the requests round robin, each
// thread starting at a random place.
func wrkScript(reqs []request) string {
	var b strings.Builder
	b.WriteString("-- written by bench/benchrun\nlocal list = {\n")
	for _, r := range reqs {
		fmt.Fprintf(&b, "  {%s, %s, {", luaString(cmp.Or(r.method, "GET")), luaString(r.path))
		for _, hd := range r.headers {
			name, value, _ := strings.Cut(hd, ": ")
			fmt.Fprintf(&b, "[%s] = %s, ", luaString(name), luaString(value))
		}
		body := "nil"
		if r.body != "" {
			body = luaString(r.body)
		}
		fmt.Fprintf(&b, "}, %s},\n", body)
	}
	b.WriteString(`}
local reqs = {}
local i = 0
init = function(args)
  for _, r in ipairs(list) do
    reqs[#reqs + 1] = wrk.format(r[1], r[2], r[3], r[4])
  end
  i = math.random(#reqs)
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
`)
	return b.String()
}

// luaString quotes s for Lua: printable ASCII, with \ and " escaped, other
// bytes as decimal escapes.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// fixedRate is the latency at a fixed offered rate, measured from when
// each request was handed to the pool of connections (so a stalled proxy
// shows as late answers, not as fewer requests).
type fixedRate struct {
	rate     int // requests per second offered
	sent     int
	errors   int // failed or non-2xx
	p50, p99 time.Duration
}

// fixedRateLoad offers rate requests per second for d, spread evenly, from
// a pool of keep-alive connections, and records each latency from the
// moment the request was handed to the pool. Below saturation this is the latency a user
// sees; wrk's closed loop at 64 connections measures queueing instead.
func fixedRateLoad(tg target, rate int, d time.Duration) fixedRate {
	const workers = 32
	reqs := tg.list()
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, DisableCompression: true},
		Timeout:   5 * time.Second,
	}
	defer client.CloseIdleConnections()
	n := int(d.Seconds() * float64(rate))
	type job struct {
		req     request
		handout time.Time
	}
	due := make(chan job, n)
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	errs := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range due {
				ok := doRequest(client, j.req)/100 == 2
				took := time.Since(j.handout)
				mu.Lock()
				lat = append(lat, took)
				if !ok {
					errs++
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		// The schedule is absolute, so the rate holds; but a sleep here
		// overshoots by up to a millisecond, so each request's clock starts
		// when it is handed to the workers, not at its nominal slot: what is
		// counted is the wait for a free connection plus the request.
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		due <- job{req: reqs[i%len(reqs)], handout: time.Now()}
	}
	close(due)
	wg.Wait()
	slices.Sort(lat)
	return fixedRate{rate: rate, sent: n, errors: errs, p50: percentile(lat, 0.50), p99: percentile(lat, 0.99)}
}

// doRequest makes one request (r.path a full URL) and returns its status
// code, 0 when it failed.
func doRequest(client *http.Client, r request) int {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(cmp.Or(r.method, "GET"), r.path, body)
	if err != nil {
		return 0
	}
	for _, hd := range r.headers {
		name, value, _ := strings.Cut(hd, ": ")
		req.Header.Set(name, value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median of values (the lower middle for an even count keeps it a value
// that was measured).
func median[T int | float64 | time.Duration](vs []T) T {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
