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
// entries in slices that are reused from evaluation to evaluation (see
// ruleCaches): the entries, their refs end to end, and a hash table of
// entry chains.
//
// The semantics are OPA's: Get and Put see only the top frame (Push starts
// an empty one, used while a rule is evaluated `with` other input or data;
// Pop drops it and all it holds); a nil value records "undefined"; Keys
// lists the refs with a value.
type ruleCache struct {
	entries []ruleEntry
	terms   []*ast.Term // the entries' refs, end to end
	frames  []int       // where each frame's entries start
	// heads[h&(len-1)] is 1 + the newest entry whose hash is h, 0 for
	// none; each entry links to the next older one of its bucket. Entries
	// are only ever removed newest first (Pop), so a removed entry is
	// always its bucket's head.
	heads []int32
}

type ruleEntry struct {
	hash       int
	start, end int   // the ref, in terms
	next       int32 // 1 + the next older entry of the bucket, 0 for none
	value      *ast.Term
	undefined  bool
}

const ruleCacheBuckets = 64 // at first; doubled as entries outgrow it

// The largest cache kept for reuse: an evaluation that cached more than
// this (a policy with thousands of rules) leaves its cache to the
// collector rather than keep that memory for every later one.
const maxPooledRuleEntries = 4096

var ruleCaches = sync.Pool{New: func() any {
	return &ruleCache{frames: []int{0}, heads: make([]int32, ruleCacheBuckets)}
}}

// newRuleCache returns an empty cache for one evaluation; release it after.
func newRuleCache() *ruleCache { return ruleCaches.Get().(*ruleCache) }

// release empties the cache (it holds no terms of the finished
// evaluation after) and returns it for reuse.
func (c *ruleCache) release() {
	if cap(c.entries) > maxPooledRuleEntries {
		return
	}
	clear(c.entries[:cap(c.entries)])
	clear(c.terms[:cap(c.terms)])
	clear(c.heads)
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
	if top >= len(c.entries) {
		return
	}
	for i := len(c.entries) - 1; i >= top; i-- {
		c.heads[c.bucket(c.entries[i].hash)] = c.entries[i].next
	}
	start := c.entries[top].start
	clear(c.terms[start:])
	c.terms = c.terms[:start]
	clear(c.entries[top:])
	c.entries = c.entries[:top]
}

func (c *ruleCache) bucket(hash int) int { return hash & (len(c.heads) - 1) }

// find returns the index of ref's entry in the top frame, or -1.
func (c *ruleCache) find(ref ast.Ref, hash int) int {
	frame := c.frames[len(c.frames)-1]
	for i := int(c.heads[c.bucket(hash)]) - 1; i >= frame; i = int(c.entries[i].next) - 1 {
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
		if len(c.entries) >= len(c.heads) {
			c.grow()
		}
		// The ref is copied: the evaluator reuses its buffer.
		start := len(c.terms)
		c.terms = append(c.terms, ref...)
		b := c.bucket(hash)
		c.entries = append(c.entries, ruleEntry{hash: hash, start: start, end: len(c.terms), next: c.heads[b]})
		i = len(c.entries) - 1
		c.heads[b] = int32(i + 1)
	}
	if value != nil {
		c.entries[i].value = value
	} else {
		c.entries[i].undefined = true
	}
}

// grow doubles the hash table and chains every entry again, oldest first,
// so that each chain still runs newest to oldest.
func (c *ruleCache) grow() {
	c.heads = make([]int32, 2*len(c.heads))
	for i := range c.entries {
		b := c.bucket(c.entries[i].hash)
		c.entries[i].next = c.heads[b]
		c.heads[b] = int32(i + 1)
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
