package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/policy"
)

const policyUsage = `Usage:
  portero policy replay --log decisions.jsonl [--json] [--examples N] CANDIDATE_DIR
      evaluate every policy input the decision log recorded (log.decision_inputs)
      against the policy in CANDIDATE_DIR and print the decisions that would change;
      exit 3 when an allowed request would be denied or a denied one allowed
`

// exitDecisionsChange is replay's exit status when an allow would become
// a deny or the other way round: CI fails the change.
const exitDecisionsChange = 3

// cmdPolicy runs `portero policy SUBCOMMAND`; it returns the exit status.
func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "replay" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, policyUsage)
			return 0
		}
		fmt.Fprint(stderr, "portero policy: give a subcommand\n\n"+policyUsage)
		return 2
	}
	code, err := cmdPolicyReplay(args[1:], stdout)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "portero:", err)
		}
		return 1
	}
	return code
}

func cmdPolicyReplay(args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("policy replay", flag.ContinueOnError)
	logPath := fs.String("log", "", "the decision log: JSON lines as the gateway writes them (- for standard input)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	examples := fs.Int("examples", 3, "example decisions shown for each group of changes")
	// Flags may come before or after the directory.
	var dirs []string
	for {
		if err := fs.Parse(args); err != nil {
			return 0, err
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *logPath == "" || len(dirs) != 1 {
		return 0, errors.New("policy replay: give --log FILE and one candidate policy directory, e.g. portero policy replay --log decisions.jsonl ./my-policy")
	}
	in := io.Reader(os.Stdin)
	if *logPath != "-" {
		f, err := os.Open(*logPath)
		if err != nil {
			return 0, fmt.Errorf("policy replay: %w", err)
		}
		defer f.Close()
		in = f
	}
	ctx := context.Background()
	engine, err := policy.NewEngine(ctx, policy.DirSource(dirs[0]), policy.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, fmt.Errorf("policy replay: %w", err)
	}
	rep, err := replay(ctx, engine, in, replayOptions{examples: max(*examples, 0), workers: runtime.GOMAXPROCS(0)})
	if err != nil {
		return 0, fmt.Errorf("policy replay: %s: %w", *logPath, err)
	}
	rep.Candidate = dirs[0]
	if rep.Replayed == 0 {
		return 0, fmt.Errorf("policy replay: %s holds no decision with a recorded input (%d decision lines without one); turn on log.decision_inputs in gateway.yaml", *logPath, rep.NoInput)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 0, err
		}
	} else {
		rep.writeText(stdout)
	}
	if rep.Changes[allowToDeny]+rep.Changes[denyToAllow] > 0 {
		return exitDecisionsChange, nil
	}
	return 0, nil
}

// The kinds of change, most serious first.
const (
	allowToDeny    = "allow_to_deny"
	denyToAllow    = "deny_to_allow"
	reasonChanged  = "reason_changed"
	headersChanged = "headers_changed"
)

var changeKinds = []string{allowToDeny, denyToAllow, reasonChanged, headersChanged}

var kindTitles = map[string]string{
	allowToDeny: "allow → deny", denyToAllow: "deny → allow", reasonChanged: "reason changed", headersChanged: "headers changed",
}

// loggedDecision is what replay reads from a decision log line.
type loggedDecision struct {
	Msg        string              `json:"msg"`
	DecisionID string              `json:"decision_id"`
	Route      string              `json:"route"`
	Method     string              `json:"method"`
	Host       string              `json:"host"`
	Path       string              `json:"path"`
	Tenant     string              `json:"tenant"`
	Sub        string              `json:"sub"`
	Allow      bool                `json:"allow"`
	Status     int                 `json:"status"`
	Reason     string              `json:"reason"`
	Revision   string              `json:"policy_revision"`
	Headers    map[string][]string `json:"decision_headers"`
	Assertion  *loggedAssertion    `json:"decision_assertion"`
	Input      json.RawMessage     `json:"input"`
}

// loggedAssertion is whom the decision's assertion names.
type loggedAssertion struct {
	Subject string   `json:"sub"`
	Actor   string   `json:"act"`
	Roles   []string `json:"roles"`
}

// assertionHeader names a change of the assertion's subject among the
// changed headers: the app receives it as the signed assertion.
const assertionHeader = "(assertion)"

// assertionValues is the assertion as header values, for diffHeaders.
func assertionValues(a *loggedAssertion) []string {
	if a == nil {
		return nil
	}
	return []string{"sub=" + a.Subject, "act=" + a.Actor, "roles=" + strings.Join(a.Roles, ",")}
}

// Report is what a replay found; --json prints it as it is.
type Report struct {
	Candidate string `json:"candidate"`
	Revision  string `json:"candidate_revision"`
	// Replayed counts the decisions evaluated again.
	Replayed int `json:"replayed"`
	// NoInput counts decision lines without a recorded input (sampled
	// out, or recorded before log.decision_inputs was on); Unreadable
	// lines that are not JSON or whose input could not be read.
	NoInput    int `json:"skipped_no_input"`
	Unreadable int `json:"unreadable"`
	// RecordedUnder counts the replayed decisions by the revision that
	// made them.
	RecordedUnder map[string]int `json:"recorded_under"`
	// CandidateErrors counts inputs on which the candidate failed to
	// decide (a denial, 500 policy.error); FirstError says why the first
	// time.
	CandidateErrors int            `json:"candidate_errors"`
	FirstError      string         `json:"first_error,omitempty"`
	Changes         map[string]int `json:"changes"`
	Groups          []*ChangeGroup `json:"groups"`
	Seconds         float64        `json:"seconds"`
	PerSecond       float64        `json:"inputs_per_second"`
}

// ChangeGroup is the changes of one kind on one route from one outcome to
// another.
type ChangeGroup struct {
	Kind  string  `json:"kind"`
	Route string  `json:"route"`
	From  Outcome `json:"from"`
	To    Outcome `json:"to"`
	// Headers names the headers that change (headers_changed only);
	// "(assertion)" when whom the signed assertion names changes.
	Headers  []string  `json:"headers,omitempty"`
	Count    int       `json:"count"`
	Examples []Example `json:"examples"`
}

// Outcome is a decision's allow, status and reason.
type Outcome struct {
	Allow  bool   `json:"allow"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
}

// Example is one changed decision: where to find it in the log, and its
// recorded input (for portero eval --input).
type Example struct {
	DecisionID string `json:"decision_id"`
	Method     string `json:"method"`
	Host       string `json:"host,omitempty"`
	Path       string `json:"path"`
	Tenant     string `json:"tenant,omitempty"`
	Sub        string `json:"sub,omitempty"`
	// HeaderChanges are the changed headers, recorded then candidate.
	HeaderChanges map[string][2][]string `json:"header_changes,omitempty"`
	Input         json.RawMessage        `json:"input"`
}

type replayOptions struct {
	examples int
	workers  int
}

// replayBatch lines are read, then evaluated by the workers together, so
// memory stays bounded whatever the log's size while the report keeps the
// log's order.
const replayBatch = 2048

// lineResult is one log line after replay.
type lineResult struct {
	skip       bool // not a decision line
	noInput    bool
	unreadable bool
	logged     loggedDecision
	now        policy.Evaluation
}

// replay evaluates every recorded input of the log against engine's policy
// and reports what would change.
func replay(ctx context.Context, engine *policy.Engine, log io.Reader, opts replayOptions) (*Report, error) {
	start := time.Now()
	rep := &Report{Revision: engine.Current().Revision, RecordedUnder: map[string]int{}, Changes: map[string]int{}}
	for _, k := range changeKinds {
		rep.Changes[k] = 0
	}
	groups := map[string]*ChangeGroup{}
	r := bufio.NewReaderSize(log, 1<<20)
	lines := make([][]byte, 0, replayBatch)
	results := make([]lineResult, replayBatch)
	for done := false; !done; {
		lines = lines[:0]
		for len(lines) < replayBatch {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				lines = append(lines, line)
			}
			if err == io.EOF {
				done = true
				break
			}
			if err != nil {
				return nil, err
			}
		}
		evaluate(ctx, engine, lines, results, opts.workers)
		for i := range lines {
			rep.add(&results[i], groups, opts.examples)
		}
	}
	rep.Groups = slices.Collect(maps.Values(groups))
	slices.SortFunc(rep.Groups, func(a, b *ChangeGroup) int {
		if c := slices.Index(changeKinds, a.Kind) - slices.Index(changeKinds, b.Kind); c != 0 {
			return c
		}
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.key(), b.key())
	})
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.PerSecond = float64(rep.Replayed) / rep.Seconds
	}
	return rep, nil
}

// evaluate fills results[i] for lines[i], with workers goroutines.
func evaluate(ctx context.Context, engine *policy.Engine, lines [][]byte, results []lineResult, workers int) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = replayLine(ctx, engine, lines[i])
			}
		}()
	}
	for i := range lines {
		next <- i
	}
	close(next)
	wg.Wait()
}

func replayLine(ctx context.Context, engine *policy.Engine, line []byte) lineResult {
	var res lineResult
	if len(strings.TrimSpace(string(line))) == 0 {
		res.skip = true
		return res
	}
	if err := json.Unmarshal(line, &res.logged); err != nil {
		res.unreadable = true
		return res
	}
	switch {
	case res.logged.Msg != "decision":
		res.skip = true // another log line
	case len(res.logged.Input) == 0:
		res.noInput = true
	default:
		ev, err := engine.DecideRecorded(ctx, res.logged.Input)
		res.now, res.unreadable = ev, err != nil
	}
	return res
}

// add counts one line and files its change, if any.
func (rep *Report) add(res *lineResult, groups map[string]*ChangeGroup, examples int) {
	switch {
	case res.skip:
		return
	case res.unreadable:
		rep.Unreadable++
		return
	case res.noInput:
		rep.NoInput++
		return
	}
	rep.Replayed++
	was := &res.logged
	rep.RecordedUnder[was.Revision]++
	now := res.now.Decision
	if res.now.Err != nil {
		rep.CandidateErrors++
		if rep.FirstError == "" {
			rep.FirstError = fmt.Sprintf("%s (decision %s)", res.now.Err, was.DecisionID)
		}
	}
	g := &ChangeGroup{Route: was.Route,
		From: Outcome{Allow: was.Allow, Status: was.Status, Reason: was.Reason},
		To:   Outcome{Allow: now.Allow, Status: now.Status, Reason: now.Reason}}
	var headerChanges map[string][2][]string
	switch {
	case was.Allow && !now.Allow:
		g.Kind = allowToDeny
	case !was.Allow && now.Allow:
		g.Kind = denyToAllow
	case was.Reason != now.Reason || was.Status != now.Status:
		g.Kind = reasonChanged
	case was.Allow:
		// Headers and the assertion reach the app on an allow only.
		wasHeaders, nowHeaders := maps.Clone(was.Headers), maps.Clone(now.Headers)
		if a := now.Assertion; a != nil {
			nowHeaders = addHeader(nowHeaders, assertionHeader, assertionValues(&loggedAssertion{a.Subject, a.Actor, a.Roles}))
		}
		if was.Assertion != nil {
			wasHeaders = addHeader(wasHeaders, assertionHeader, assertionValues(was.Assertion))
		}
		if headerChanges = diffHeaders(wasHeaders, nowHeaders); len(headerChanges) == 0 {
			return
		}
		g.Kind = headersChanged
		g.Headers = slices.Sorted(maps.Keys(headerChanges))
	default:
		return
	}
	rep.Changes[g.Kind]++
	if prev, ok := groups[g.key()]; ok {
		g = prev
	} else {
		groups[g.key()] = g
	}
	g.Count++
	if len(g.Examples) < examples {
		g.Examples = append(g.Examples, Example{DecisionID: was.DecisionID, Method: was.Method, Host: was.Host, Path: was.Path,
			Tenant: was.Tenant, Sub: was.Sub, HeaderChanges: headerChanges, Input: was.Input})
	}
}

func (g *ChangeGroup) key() string {
	return fmt.Sprintf("%s\x00%s\x00%v\x00%d\x00%s\x00%v\x00%d\x00%s\x00%s", g.Kind, g.Route, g.From.Allow, g.From.Status, g.From.Reason,
		g.To.Allow, g.To.Status, g.To.Reason, strings.Join(g.Headers, "\x00"))
}

func addHeader(h map[string][]string, name string, vals []string) map[string][]string {
	if h == nil {
		h = map[string][]string{}
	}
	h[name] = vals
	return h
}

// diffHeaders returns the headers whose values differ: name -> [was, now].
func diffHeaders(was, now map[string][]string) map[string][2][]string {
	var out map[string][2][]string
	for _, hs := range []map[string][]string{was, now} {
		for name := range hs {
			if _, seen := out[name]; !seen && !slices.Equal(was[name], now[name]) {
				if out == nil {
					out = map[string][2][]string{}
				}
				out[name] = [2][]string{was[name], now[name]}
			}
		}
	}
	return out
}

func (o Outcome) String() string {
	verb := "deny"
	if o.Allow {
		verb = "allow"
	}
	return fmt.Sprintf("%s %d %s", verb, o.Status, o.Reason)
}

func (rep *Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "replayed %d recorded decisions against %s (revision %s) in %.2fs, %.0f a second\n",
		rep.Replayed, rep.Candidate, rep.Revision, rep.Seconds, rep.PerSecond)
	revs := slices.Sorted(maps.Keys(rep.RecordedUnder))
	parts := make([]string, len(revs))
	for i, r := range revs {
		parts[i] = fmt.Sprintf("%s (%d)", r, rep.RecordedUnder[r])
	}
	fmt.Fprintf(w, "recorded under revision %s\n", strings.Join(parts, ", "))
	if rep.NoInput+rep.Unreadable > 0 {
		fmt.Fprintf(w, "skipped: %d decision lines without a recorded input, %d unreadable lines\n", rep.NoInput, rep.Unreadable)
	}
	if rep.CandidateErrors > 0 {
		fmt.Fprintf(w, "the candidate failed to decide %d inputs (denied with policy.error); the first: %s\n", rep.CandidateErrors, rep.FirstError)
	}
	total := 0
	for _, k := range changeKinds {
		total += rep.Changes[k]
	}
	if total == 0 {
		fmt.Fprintln(w, "no decision would change")
		return
	}
	fmt.Fprintf(w, "%d decisions would change: %d allow → deny, %d deny → allow, %d reason changed, %d headers changed\n",
		total, rep.Changes[allowToDeny], rep.Changes[denyToAllow], rep.Changes[reasonChanged], rep.Changes[headersChanged])
	for _, g := range rep.Groups {
		fmt.Fprintf(w, "\n%s on route %s: %d\n    was: %s\n    now: %s\n", kindTitles[g.Kind], g.Route, g.Count, g.From, g.To)
		if len(g.Headers) > 0 {
			fmt.Fprintf(w, "    headers: %s\n", strings.Join(g.Headers, ", "))
		}
		for _, e := range g.Examples {
			who := ""
			if e.Sub != "" || e.Tenant != "" {
				who = fmt.Sprintf(" (sub %s, tenant %s)", orNone(e.Sub), orNone(e.Tenant))
			}
			fmt.Fprintf(w, "    e.g. %s %s %s%s\n", e.DecisionID, e.Method, e.Path, who)
			for _, name := range slices.Sorted(maps.Keys(e.HeaderChanges)) {
				c := e.HeaderChanges[name]
				fmt.Fprintf(w, "         %s: %q → %q\n", name, c[0], c[1])
			}
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
