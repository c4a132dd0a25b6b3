package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

const (
	markStart = "<!-- bench:start (written by bench/run; edit outside these markers) -->"
	markEnd   = "<!-- bench:end -->"
)

func find(rows []result, prefix string) *result {
	for i := range rows {
		if strings.HasPrefix(rows[i].name, prefix) && rows[i].skipped == "" {
			return &rows[i]
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// render writes the generated part of docs/performance.md.
func render(o options, rows []result, ex extras, versions map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run on %s: %d cores (%s), %.0f GiB, %s %s/%s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), cpuModel(), memTotalGiB(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cmd := "bench/run"
	if o.smoke {
		cmd = "bench/run --smoke"
	}
	fmt.Fprintf(&b, "Command: `%s` — every row set up first, then loaded in %d interleaved round(s) (row 1, 2, …, then again) with wrk, %d threads, %d keep-alive connections, %s per round "+
		"after a %s warm-up, over loopback; each round also offers every row %d requests/s at a fixed rate for %s from 32 keep-alive connections, "+
		"latency counted from when each request was handed to the connections; the table shows each row's median round. The same 1 KiB upstream for every row. The load generator shares the machine's cores with the proxy, so compare rows, not absolute numbers.\n\n",
		cmd, o.rounds, o.threads, o.conns, o.duration, o.warmup, o.fixedRate, o.fixedDuration)
	fmt.Fprintf(&b, "| # | row | requests/s | p50 | p99 | CPU (cores) | peak RSS | p50 at %[1]d/s | p99 at %[1]d/s | notes |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n", o.fixedRate)
	for i, r := range rows {
		if r.skipped != "" {
			fmt.Fprintf(&b, "| %d | %s | skipped | | | | | | | %s |\n", i+1, r.name, strings.SplitN(r.skipped, "\n", 2)[0])
			continue
		}
		note := r.note
		if r.non2xx > 0 || r.fixed.errors > 0 {
			note += fmt.Sprintf(" — %d non-2xx answers!", r.non2xx+r.fixed.errors)
		}
		fmt.Fprintf(&b, "| %d | %s | %.0f | %s | %s | %.2f | %.1f MiB | %s | %s | %s |\n", i+1, r.name, r.rps, ms(r.p50), ms(r.p99), r.cpu, r.peakMiB, ms(r.fixed.p50), ms(r.fixed.p99), note)
	}
	b.WriteString("\n![requests per second by row](performance.png)\n\n### Targets\n\n")
	bare, port := find(rows, "bare Go"), find(rows, "Portero, bearer JWT, default policy")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	if bare != nil && port != nil {
		// Compare within each round (the two runs were seconds apart), then
		// take the median of those comparisons.
		var ratios []float64
		var diffs []time.Duration
		var each []string
		for i := range min(len(bare.perRound), len(port.perRound)) {
			r := port.perRound[i].rps / bare.perRound[i].rps
			d := port.perRound[i].p99 - bare.perRound[i].p99
			ratios, diffs = append(ratios, r), append(diffs, d)
			each = append(each, fmt.Sprintf("%.0f %% / %+.2f ms", r*100, float64(d)/float64(time.Millisecond)))
		}
		ratio, diff := median(ratios), median(diffs)
		fmt.Fprintf(&b, "- Portero (bearer) at %.0f %% of the bare Go proxy's requests/s (target ≥ 85 %%): %s.\n", ratio*100, verdict(ratio >= 0.85))
		fmt.Fprintf(&b, "- Portero's p99 under the full load is %s above the bare proxy's (target ≤ 1 ms): %s.\n", ms(diff), verdict(diff <= time.Millisecond))
		fmt.Fprintf(&b, "  Round by round (requests/s ratio / p99 difference): %s.\n", strings.Join(each, "; "))
		if port.fixed.sent > 0 && bare.fixed.sent > 0 {
			var fds []time.Duration
			var fEach []string
			for i := range min(len(bare.perRound), len(port.perRound)) {
				fd := port.perRound[i].fixed.p99 - bare.perRound[i].fixed.p99
				fds = append(fds, fd)
				fEach = append(fEach, fmt.Sprintf("%+.2f ms", float64(fd)/float64(time.Millisecond)))
			}
			fd := median(fds)
			fmt.Fprintf(&b, "- At a fixed %d requests/s, Portero's p99 is %s above the bare proxy's (same target): %s. Round by round: %s.\n",
				port.fixed.rate, ms(fd), verdict(fd <= time.Millisecond), strings.Join(fEach, "; "))
		}
	}
	for _, stack := range []string{"nginx auth_request → OPA", "Caddy forward_auth → adapter"} {
		if s := find(rows, stack); s != nil && port != nil {
			ratio := port.rps / s.rps
			fmt.Fprintf(&b, "- Portero at %.1f× the requests/s of %s (target ≥ 3×): %s.\n", ratio, s.name, verdict(ratio >= 3))
		}
	}
	// The peer users would pick instead. It authenticates only, so its
	// rows do less per request than Portero's; compared round by round
	// like the bare proxy.
	for _, pair := range []struct{ portero, peer, mode string }{
		{"Portero, bearer JWT, default policy", "oauth2-proxy, bearer JWT", "bearer JWT"},
		{"Portero, cookie session, default policy", "oauth2-proxy, cookie session", "cookie session"},
	} {
		p, peer := find(rows, pair.portero), find(rows, pair.peer)
		if p == nil || peer == nil {
			continue
		}
		ratio, each := roundRatios(p, peer)
		fmt.Fprintf(&b, "- Portero at %.1f× oauth2-proxy's requests/s, both with a %s (oauth2-proxy authenticates only: no per-tenant authorisation). Round by round: %s.\n",
			ratio, pair.mode, strings.Join(each, "; "))
	}
	// Edits with a JSON body are evaluated every time (never from the
	// decision cache); the reads of the same gateway and users mostly are
	// not. Compared round by round.
	if reads, edits := find(rows, "Portero, cookie sessions, access store"), find(rows, "Portero, access store, edits"); reads != nil && edits != nil {
		ratio, each := roundPercents(edits, reads)
		fmt.Fprintf(&b, "- Edits with a JSON body (checked field by field) at %.0f %% of the reads' requests/s on the same gateway and users (target ≥ 75 %%): %s. Round by round: %s.\n",
			ratio*100, verdict(ratio >= 0.75), strings.Join(each, "; "))
	}
	// Every request a caller's first: the same edits with no memo to
	// answer them.
	if first, edits := find(rows, "Portero, access store, every request a caller's first"), find(rows, "Portero, access store, edits"); first != nil && edits != nil {
		ratio, each := roundPercents(first, edits)
		fmt.Fprintf(&b, "- Every request a caller's first (store lookup and subject stage worked out; the grant's levels and the operation's refusal from the memos): %.0f requests/s, %.0f %% of the edits row's; p50 %s, p99 %s. Round by round: %s.\n",
			first.rps, ratio*100, ms(first.p50), ms(first.p99), strings.Join(each, "; "))
	}
	// Behind nginx (forward-auth), against the same nginx asking OPA.
	if fa, opa := find(rows, "nginx auth_request → Portero"), find(rows, "nginx auth_request → OPA"); fa != nil && opa != nil {
		fmt.Fprintf(&b, "- nginx auth_request → Portero (forward-auth) at %.1f× the requests/s of %s", fa.rps/opa.rps, opa.name)
		if port != nil {
			fmt.Fprintf(&b, ", and at %.0f %% of Portero as the proxy", 100*fa.rps/port.rps)
		}
		b.WriteString(".\n")
	}
	if ex.reloadErr == "" {
		fmt.Fprintf(&b, "- A policy change served %s after the file was written (target ≤ 1 s): %s.\n", ms(ex.reload), verdict(ex.reload <= time.Second))
	} else {
		fmt.Fprintf(&b, "- Policy change: %s.\n", ex.reloadErr)
	}
	fmt.Fprintf(&b, "\n### Portero apart from the load\n\n- Start-up to ready (policy compiled, IdP discovery read): %s.\n- Resident memory idle: %.1f MiB; peak under the bearer load: ", ms(ex.startup), ex.idleMiB)
	if port != nil {
		fmt.Fprintf(&b, "%.1f MiB.\n", port.peakMiB)
	} else {
		b.WriteString("n/a.\n")
	}
	if ex.imported.members > 0 {
		fmt.Fprintf(&b, "- Seeding the store row (`portero admin import`, one transaction): %d members in %.2f s.\n", ex.imported.members, ex.imported.took.Seconds())
	}
	b.WriteString(replicasSummary(rows))
	b.WriteString("\n### Tool versions\n\n")
	keys := make([]string, 0, len(versions))
	for k := range versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: `%s`\n", k, versions[k])
	}
	return b.String()
}

// roundRatios compares a's requests/s with b's within each round (the two
// runs were seconds apart) and returns the median ratio and each round's.
func roundRatios(a, b *result) (float64, []string) {
	var ratios []float64
	var each []string
	for i := range min(len(a.perRound), len(b.perRound)) {
		r := a.perRound[i].rps / b.perRound[i].rps
		ratios = append(ratios, r)
		each = append(each, fmt.Sprintf("%.1f×", r))
	}
	return median(ratios), each
}

// roundPercents is roundRatios as percentages.
func roundPercents(a, b *result) (float64, []string) {
	var ratios []float64
	var each []string
	for i := range min(len(a.perRound), len(b.perRound)) {
		r := a.perRound[i].rps / b.perRound[i].rps
		ratios = append(ratios, r)
		each = append(each, fmt.Sprintf("%.0f %%", r*100))
	}
	return median(ratios), each
}

// writeReadmeSummary puts this run's targets and the access-store rows into
// README.md's bench-summary block: the README quotes the latest run and
// nothing else.
func writeReadmeSummary(path, report string, rows []result) error {
	i, j := strings.Index(report, "### Targets\n\n"), strings.Index(report, "\n### Portero apart from the load")
	if i < 0 || j < i {
		return fmt.Errorf("the report has no targets section")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From the latest `bench/run` (%s; the table, the chart and how rows are made comparable are in\n`docs/performance.md`):\n\n", time.Now().UTC().Format("2006-01-02"))
	b.WriteString(report[i+len("### Targets\n\n") : j])
	for _, name := range []string{"Portero, cookie sessions, access store, full default policy", "Portero, access store, edits with a JSON body"} {
		if r := find(rows, name); r != nil && r.skipped == "" {
			fmt.Fprintf(&b, "- %s: %.0f requests/s, p99 %s.\n", r.name, r.rps, ms(r.p99))
		}
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- bench-summary:begin -->\n", "<!-- bench-summary:end -->"
	k, l := strings.Index(string(old), begin), strings.Index(string(old), end)
	if k < 0 || l < k {
		return fmt.Errorf("%s has no %s … %s markers", path, strings.TrimSpace(begin), end)
	}
	return os.WriteFile(path, []byte(string(old)[:k+len(begin)]+b.String()+string(old)[l:]), 0o644)
}

// writeReport replaces the generated part of path, keeping what people wrote
// around the markers.
func writeReport(path, generated string) error {
	block := markStart + "\n" + generated + markEnd + "\n"
	old, err := os.ReadFile(path)
	if err != nil {
		return os.WriteFile(path, []byte("# Performance\n\n"+block), 0o644)
	}
	s := string(old)
	i, j := strings.Index(s, markStart), strings.Index(s, markEnd)
	if i < 0 || j < i {
		return os.WriteFile(path, []byte(s+"\n"+block), 0o644)
	}
	return os.WriteFile(path, []byte(s[:i]+block+s[j+len(markEnd)+1:]), 0o644)
}

// drawChart draws requests/s per row as a horizontal bar chart.
func drawChart(path string, rows []result) error {
	var vals plotter.Values
	var names []string
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].skipped != "" {
			continue
		}
		vals = append(vals, rows[i].rps)
		names = append(names, fmt.Sprintf("%d. %s", i+1, shorten(rows[i].name)))
	}
	p := plot.New()
	p.Title.Text = "Requests per second (higher is better)"
	bars, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return err
	}
	bars.Horizontal = true
	p.Add(bars)
	p.NominalY(names...)
	p.X.Min = 0
	return p.Save(11*vg.Inch, vg.Length(1.2+0.45*float64(len(vals)))*vg.Inch, path)
}

func shorten(s string) string {
	if len(s) > 48 {
		return s[:47] + "…"
	}
	return s
}
