package main

import (
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
