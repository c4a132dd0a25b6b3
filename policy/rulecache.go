package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ruleCache is the cache of rule values one evaluation keeps (OPA's
// topdown.VirtualCache): a rule is worked out once per evaluation, and
// every later reference to it reads the value.
//
// OPA's own cache is a trie of hash maps built anew for every evaluation:
// about 60 of the 430 allocations of an evaluated edit. This one keeps its
// entries in two slices that are reused from evaluation to evaluation (see
// ruleCaches), and finds an entry by a linear scan over its hash: an
// evaluation caches some tens of rules, fewer than it takes for a map to
// pay for itself.
//
// The semantics are OPA's: Get and Put see only the top frame (Push starts
// an empty one, used while a rule is evaluated `with` other input or data;
// Pop drops it and all it holds); a nil value records "undefined"; Keys
// lists the refs with a value.
type ruleCache struct {
	entries []ruleEntry
	terms   []*ast.Term // the entries' refs, end to end
	frames  []int       // where each frame's entries start
}

type ruleEntry struct {
	hash       int
	start, end int // the ref, in terms
	value      *ast.Term
	undefined  bool
}

// The largest cache kept for reuse: an evaluation that cached more than
// this (a policy with thousands of rules) leaves its cache to the
// collector rather than keep that memory for every later one.
const maxPooledRuleEntries = 4096

var ruleCaches = sync.Pool{New: func() any { return &ruleCache{frames: []int{0}} }}

// newRuleCache returns an empty cache for one evaluation; release it after.
func newRuleCache() *ruleCache { return ruleCaches.Get().(*ruleCache) }

// release empties the cache (it holds no terms of the finished
// evaluation after) and returns it for reuse.
func (c *ruleCache) release() {
	if len(c.entries) > maxPooledRuleEntries {
		return
	}
	clear(c.entries)
	clear(c.terms)
	c.entries, c.terms, c.frames = c.entries[:0], c.terms[:0], append(c.frames[:0], 0)
	ruleCaches.Put(c)
}

var _ topdown.VirtualCache = (*ruleCache)(nil)

func (c *ruleCache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *ruleCache) Pop() {
	top := c.frames[len(c.frames)-1]
	if len(c.frames) > 1 {
		c.frames = c.frames[:len(c.frames)-1]
	}
	if top < len(c.entries) {
		c.terms = c.terms[:c.entries[top].start]
		clear(c.entries[top:])
		c.entries = c.entries[:top]
	}
}

// find returns the index of ref's entry in the top frame, or -1.
func (c *ruleCache) find(ref ast.Ref, hash int) int {
	for i := len(c.entries) - 1; i >= c.frames[len(c.frames)-1]; i-- {
		e := &c.entries[i]
		if e.hash == hash && ast.Ref(c.terms[e.start:e.end]).Equal(ref) {
			return i
		}
	}
	return -1
}

func (c *ruleCache) Get(ref ast.Ref) (*ast.Term, bool) {
	i := c.find(ref, ref.Hash())
	if i < 0 {
		return nil, false
	}
	if e := &c.entries[i]; e.undefined {
		return nil, true
	} else {
		return e.value, false
	}
}

// Put records ref's value, or that it is undefined when value is nil. A
// value and "undefined" may both be recorded for one ref, as in OPA's
// cache; Get then answers "undefined".
func (c *ruleCache) Put(ref ast.Ref, value *ast.Term) {
	hash := ref.Hash()
	i := c.find(ref, hash)
	if i < 0 {
		// The ref is copied: the evaluator reuses its buffer.
		start := len(c.terms)
		c.terms = append(c.terms, ref...)
		c.entries = append(c.entries, ruleEntry{hash: hash, start: start, end: len(c.terms)})
		i = len(c.entries) - 1
	}
	if value != nil {
		c.entries[i].value = value
	} else {
		c.entries[i].undefined = true
	}
}

func (c *ruleCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			keys = append(keys, ast.Ref(c.terms[e.start:e.end]).Copy())
		}
	}
	return keys
}
