package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const wrkOutput = `Running 10s test @ http://127.0.0.1:40000/t/acme/items
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.52ms    4.10ms  61.33ms   81.22%
    Req/Sec     4.92k   412.11     5.81k    70.50%
  Latency Distribution
     50%    5.98ms
     75%    8.01ms
     90%   11.20ms
     99%   18.36ms
  97977 requests in 10.01s, 115.27MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   9789.21
Transfer/sec:     11.52MB
`

func TestParseWrk(t *testing.T) {
	var r result
	if err := parseWrk(wrkOutput, &r); err != nil {
		t.Fatal(err)
	}
	if r.rps != 9789.21 || r.p50 != 5980*time.Microsecond || r.p99 != 18360*time.Microsecond || r.non2xx != 12 {
		t.Fatalf("%+v", r)
	}
	if err := parseWrk("unable to connect", &result{}); err == nil {
		t.Fatal("parsed garbage")
	}
	for in, want := range map[string]time.Duration{"512.00us": 512 * time.Microsecond, "1.50s": 1500 * time.Millisecond, "2.00m": 2 * time.Minute, "x": 0} {
		if got := parseWrkDuration(in); got != want {
			t.Errorf("%s: %v", in, got)
		}
	}
}

func TestLuaStringEscapes(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:             `"plain"`,
		`say "hi"`:          `"say \"hi\""`,
		`back\slash`:        `"back\\slash"`,
		"new\nline\x00\xff": `"new\010line\000\255"`,
	} {
		if got := luaString(in); got != want {
			t.Errorf("luaString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWrkScriptListsEveryRequest(t *testing.T) {
	s := wrkScript([]request{{path: "/t/a/reviews", headers: []string{"Cookie: s=1"}}, {path: "/t/b/x"},
		{method: "PATCH", path: "/t/a/p", headers: []string{"Content-Type: application/json"}, body: `{"a":1}`}})
	for _, want := range []string{`{"GET", "/t/a/reviews", {["Cookie"] = "s=1", }, nil},`, `{"GET", "/t/b/x", {}, nil},`,
		`{"PATCH", "/t/a/p", {["Content-Type"] = "application/json", }, "{\"a\":1}"},`, "request = function()"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %s:\n%s", want, s)
		}
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd: %v", m)
	}
	if m := median([]time.Duration{4, 1, 3, 2}); m != 2 {
		t.Errorf("median even takes the lower middle: %v", m)
	}
	if m := median[int](nil); m != 0 {
		t.Errorf("median of none: %v", m)
	}
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i + 1)
	}
	if p := percentile(sorted, 0.99); p != 99 {
		t.Errorf("p99 of 1..100: %v", p)
	}
	if p := percentile(sorted, 0.5); p != 50 {
		t.Errorf("p50 of 1..100: %v", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("percentile of none: %v", p)
	}
}

func TestSummarizeTakesMediansAndKeepsFinishedRounds(t *testing.T) {
	rr := &rowRun{spec: rowSpec{name: "r"}, skipped: "round 3 failed", rounds: []result{
		{rps: 100, p50: 3, p99: 30, cpu: 1, non2xx: 1, fixed: fixedRate{rate: 1000, sent: 10, errors: 1, p50: 5, p99: 50}},
		{rps: 300, p50: 1, p99: 10, cpu: 2, non2xx: 2, fixed: fixedRate{rate: 1000, sent: 10, p50: 4, p99: 40}},
	}}
	res := summarize(rr)
	if res.skipped != "" || len(res.perRound) != 2 || res.rps != 100 || res.p99 != 10 || res.non2xx != 3 {
		t.Fatalf("%+v", res)
	}
	if res.fixed != (fixedRate{rate: 1000, sent: 20, errors: 1, p50: 4, p99: 40}) {
		t.Fatalf("fixed-rate summary %+v", res.fixed)
	}
	if res := summarize(&rowRun{skipped: "no nginx"}); res.skipped != "no nginx" {
		t.Fatalf("a row without rounds stays skipped: %+v", res)
	}
}

func TestRoundRatiosCompareWithinEachRound(t *testing.T) {
	portero := &result{perRound: []result{{rps: 8000}, {rps: 9000}, {rps: 4000}}}
	peer := &result{perRound: []result{{rps: 2000}, {rps: 3000}}} // failed in round 3
	ratio, each := roundRatios(portero, peer)
	if ratio != 3 || strings.Join(each, "; ") != "4.0×; 3.0×" {
		t.Fatalf("ratio %v, rounds %q", ratio, each)
	}
}

func TestFixedRateLoadCountsErrors(t *testing.T) {
	n := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if r.URL.Path == "/bad" && r.Method == "PUT" && r.ContentLength == 1 {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	tg := target{url: srv.URL, requests: []request{{path: "/ok"}, {method: "PUT", path: "/bad", body: "x"}}}
	fr := fixedRateLoad(tg, 200, time.Second)
	if fr.sent != 200 || n != 200 || fr.errors != 100 || fr.p99 < fr.p50 {
		t.Fatalf("%+v, server saw %d", fr, n)
	}
}
