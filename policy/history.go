package policy

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// An engine keeps the last revisions it loaded, with what changed from one
// to the next, so that the console can show who/what changed the policy
// being served. It is kept in memory only: a restart starts a new history.

const (
	// maxRevisions is how many loaded revisions an engine remembers.
	maxRevisions = 10
	// maxDiffBytes bounds the diffs kept for one revision; past it the
	// remaining changed files are named without their diff.
	maxDiffBytes = 64 << 10
	// maxDiffCells bounds the work of diffing one file (lines × lines);
	// a larger change is reported as changed, without its diff.
	maxDiffCells = 4 << 20
	// diffContext is the lines of context around each change.
	diffContext = 3
)

// Revision is one policy revision an engine loaded and served.
type Revision struct {
	ID       string    `json:"revision"`
	LoadedAt time.Time `json:"loaded_at"`
	Source   string    `json:"source"`
	// Added, Removed and Changed name the files (tests included) that
	// differ from the revision loaded before; all empty for the first.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
	// Diffs are unified diffs of the added, removed and changed files, at
	// most maxDiffBytes in all; Truncated says some were left out.
	Diffs     []FileDiff `json:"diffs,omitempty"`
	Truncated bool       `json:"diff_truncated,omitempty"`
}

// FileDiff is a unified diff of one file between two revisions.
type FileDiff struct {
	File string `json:"file"`
	Diff string `json:"diff"`
}

// history is an engine's last loaded revisions, newest last.
type history struct {
	mu    sync.Mutex
	revs  []Revision
	files memFS // the files of the newest revision, to diff the next one against
}

// record adds a revision loaded from files, unless nothing changed since
// the last one (a reload of the same files).
func (h *history) record(source string, loaded *Loaded, files memFS) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rev := Revision{ID: loaded.Revision, LoadedAt: loaded.LoadedAt, Source: source}
	if h.files != nil {
		rev.Added, rev.Removed, rev.Changed = changedFiles(h.files, files)
		if len(rev.Added)+len(rev.Removed)+len(rev.Changed) == 0 && len(h.revs) > 0 && h.revs[len(h.revs)-1].ID == rev.ID {
			return
		}
		budget := maxDiffBytes
		for _, name := range slices.Sorted(slices.Values(slices.Concat(rev.Added, rev.Removed, rev.Changed))) {
			d := unifiedDiff(name, h.files[name], files[name])
			if len(d) > budget {
				rev.Truncated = true
				continue
			}
			budget -= len(d)
			rev.Diffs = append(rev.Diffs, FileDiff{File: name, Diff: d})
		}
	}
	h.files = files
	if len(h.revs) == maxRevisions {
		h.revs = slices.Delete(h.revs, 0, 1)
	}
	h.revs = append(h.revs, rev)
}

// list returns the revisions, newest first.
func (h *history) list() []Revision {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.revs)
	slices.Reverse(out)
	return out
}

// History returns the last revisions this engine loaded (at most 10),
// newest first: the one being served, then the ones before it.
func (e *Engine) History() []Revision { return e.history.list() }

// changedFiles compares two snapshots' files by name and content.
func changedFiles(old, cur memFS) (added, removed, changed []string) {
	for _, name := range slices.Sorted(maps.Keys(cur)) {
		prev, ok := old[name]
		switch {
		case !ok:
			added = append(added, name)
		case !bytes.Equal(prev, cur[name]):
			changed = append(changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[name]; !ok {
			removed = append(removed, name)
		}
	}
	return added, removed, changed
}

// unifiedDiff renders the change from a to b as a unified diff (a is nil
// for an added file, b for a removed one).
func unifiedDiff(name string, a, b []byte) string {
	from, to := "a/"+name, "b/"+name
	if a == nil {
		from = "/dev/null"
	}
	if b == nil {
		to = "/dev/null"
	}
	x, y := splitLines(a), splitLines(b)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", from, to)
	ops, ok := diffLines(x, y)
	if !ok {
		fmt.Fprintf(&out, "(%d lines → %d lines; too large a change to show)\n", len(x), len(y))
		return out.String()
	}
	writeHunks(&out, ops, x, y)
	return out.String()
}

func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.Split(s, "\n")
}

// diffOp is one line of an edit script: ' ' kept, '-' removed from x, '+'
// added from y; i and j are the line's index in x and y.
type diffOp struct {
	kind byte
	i, j int
}

// diffLines computes a shortest edit script from x to y by longest common
// subsequence, after trimming the common prefix and suffix; false when the
// remaining change is larger than maxDiffCells.
func diffLines(x, y []string) ([]diffOp, bool) {
	pre := 0
	for pre < len(x) && pre < len(y) && x[pre] == y[pre] {
		pre++
	}
	suf := 0
	for suf < len(x)-pre && suf < len(y)-pre && x[len(x)-1-suf] == y[len(y)-1-suf] {
		suf++
	}
	mx, my := x[pre:len(x)-suf], y[pre:len(y)-suf]
	n, m := len(mx), len(my)
	if (n+1)*(m+1) > maxDiffCells {
		return nil, false
	}
	// lcs[i][j] is the LCS length of mx[i:] and my[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if mx[i] == my[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	ops := make([]diffOp, 0, len(x)+len(y))
	for k := range pre {
		ops = append(ops, diffOp{' ', k, k})
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && mx[i] == my[j]:
			ops = append(ops, diffOp{' ', pre + i, pre + j})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// Removals before additions, as diff(1) writes them.
			ops = append(ops, diffOp{'-', pre + i, pre + j})
			i++
		default:
			ops = append(ops, diffOp{'+', pre + i, pre + j})
			j++
		}
	}
	for k := range suf {
		ops = append(ops, diffOp{' ', len(x) - suf + k, len(y) - suf + k})
	}
	return ops, true
}

// writeHunks writes the edit script as unified diff hunks with
// diffContext lines of context.
func writeHunks(out *strings.Builder, ops []diffOp, x, y []string) {
	for start := 0; start < len(ops); {
		// The next change, and the hunk around it.
		first := start
		for first < len(ops) && ops[first].kind == ' ' {
			first++
		}
		if first == len(ops) {
			return
		}
		lo := max(first-diffContext, start)
		hi := first
		for k := first; k < len(ops); k++ {
			if ops[k].kind != ' ' {
				hi = k
			} else if k-hi > 2*diffContext {
				break
			}
		}
		end := min(hi+diffContext+1, len(ops))
		var xn, yn int
		for _, op := range ops[lo:end] {
			if op.kind != '+' {
				xn++
			}
			if op.kind != '-' {
				yn++
			}
		}
		fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(ops[lo].i, xn), hunkRange(ops[lo].j, yn))
		for _, op := range ops[lo:end] {
			switch op.kind {
			case '-':
				out.WriteString("-" + x[op.i] + "\n")
			case '+':
				out.WriteString("+" + y[op.j] + "\n")
			default:
				out.WriteString(" " + x[op.i] + "\n")
			}
		}
		start = end
	}
}

// hunkRange is a unified diff's "start,count" (1-based; a range of no lines
// starts at the line before it).
func hunkRange(at, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", at)
	}
	if n == 1 {
		return fmt.Sprintf("%d", at+1)
	}
	return fmt.Sprintf("%d,%d", at+1, n)
}
