package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const doc = `# Performance
<!-- bench:start (written by bench/run; edit outside these markers) -->
Run on 2026-12-02 03:30 UTC: 2 cores (AMD EPYC), 24 GiB, go1.26.8 linux/amd64.

| # | row | requests/s | p50 | p99 | CPU (cores) | peak RSS | p50 at 1000/s | p99 at 1000/s | notes |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
| 10 | Portero, two replicas on PostgreSQL behind one load | 2439 | 3.39 ms | 33.03 ms | 0.76 | 365.5 MiB | 2.50 ms | 41.08 ms | two gateways |

- Two replicas on PostgreSQL behind one load at 1.99× the requests/s of one gateway on its SQLite store. Round by round: 2.0×.
<!-- bench:end -->
`

func TestBenchRow(t *testing.T) {
	got := benchRow(doc)
	for _, want := range []string{"row 10", "run of 2026-12-02 03:30 UTC", "2439 requests/s, p50 3.39 ms, p99 33.03 ms", "2.50 ms and 41.08 ms at 1,000", "0.76 cores and 365.5 MiB", "at 1.99× the requests/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("benchRow: %q lacks %q", got, want)
		}
	}
	if got := benchRow(strings.Replace(doc, "| 10 | Portero, two replicas", "| 10 | Something else", 1)); !strings.Contains(got, "predates its row") {
		t.Errorf("without the row: %q", got)
	}
}

func TestSection(t *testing.T) {
	rep := `{"date": "2026-12-02", "mode": "full", "replicas": 3, "command": "c", "trials": 250, "revoke_p50_ms": 14.4, "revoke_p99_ms": 364.3,
"revoke_max_ms": 591.2, "kill_restart_ready_ms": 2300, "outages": [{"kind": "crash", "down_ms": 8004, "recover_ms": 1476, "answers_while_down": {"503": 11569}}],
"writes_acknowledged": 151, "audit_records": 666}`
	fig := Figures{Date: "2026-12-02", CPUs: 2, Replicas: json.RawMessage(rep), Lookups: []Lookup{
		{Bench: "ResolvePostgres/hit", NsPerOp: 106}, {Bench: "ResolvePostgres/miss", NsPerOp: 928777, BytesPerOp: 11512, AllocsPerOp: 262},
		{Bench: "ResolvePostgres/miss-parallel", NsPerOp: 400000}, {Bench: "ResolvePostgres/memory-per-entry", BytesEntry: 1657}, {Bench: "Resolve/miss", NsPerOp: 105000}}}
	got, err := section(fig, benchRow(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"250 trials): p50 14.4 ms, p99 364.3 ms", "(target p99 < 1 s: met)", "crashed (immediate shutdown", "11569 × 503",
		"151 member writes", "| `access.ResolvePostgres/miss` |", "| 929 µs | 1077 | 11512 | 262 |", "1657 bytes/entry", "2439 requests/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
}
