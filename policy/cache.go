package policy

import (
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/portero-gateway/portero/internal/cache"
)

// decisionCache memoises a policy's answers when they can only depend on
// parts of the input that repeat across requests: the identity, the access
// facts, the tenant and the route, each keyed by value. It is used only
// when the policy reads nothing else from the input and calls no
// non-deterministic builtin (time.now_ns, http.send, rand.intn, …), so a
// cached answer is exactly what evaluating again would give. Each loaded
// policy has its own cache, so a reload starts empty.
type decisionCache struct {
	// requestFields are the input.request fields the policy reads; their
	// values are part of the key.
	requestFields []string

	entries *cache.Bounded[decisionKey, *Decision] // by pointer: a hit copies less
}

type decisionKey struct {
	identity       ValueKey // Identity.Key: every identity field
	access         ValueKey // Access.Key: the whole of input.access
	api            bool     // beside the keys: the three are hashed as one block
	tenant, status string
	route          string
	request        string // the values of the request fields the policy reads
	management     string
}

// cacheableRequestFields may be part of a key: they repeat across requests.
// Headers and query values vary too much to be worth it, and so do bodies:
// a request with one is evaluated when the policy reads input.request.body.
// The body's shape (body_kind, body_keys: the names of the fields it
// changes) and the query's parameter names repeat, so a policy that reads
// those and not the body has its edits cached like reads.
var cacheableRequestFields = []string{"method", "host", "path", "segments", "app_segments", "body", "body_kind", "body_keys", "query_keys", "upgrade"}

// maxCachedDecisions bounds the cache (see cache.Bounded for which entry
// makes room).
const maxCachedDecisions = 50000

func newDecisionCache(modules map[string]*ast.Module, use inputUse) *decisionCache {
	if use.all {
		return nil
	}
	for key := range use.top {
		// input.subject, input.grant, input.grant_facts,
		// input.operation and input.operation_denial are the policy's own
		// stages
		// (see SubjectQuery): what they read is among the modules' reads
		// checked here. input.gateway is the same for every request.
		if !slices.Contains([]string{"identity", "tenant", "route", "access", "request", "management", "subject", "grant", "grant_facts", "operation", "operation_denial", "gateway"}, key) {
			return nil
		}
	}
	var fields []string
	if use.top["request"] {
		if use.reqAll {
			return nil
		}
		for f := range use.request {
			if !slices.Contains(cacheableRequestFields, f) {
				return nil
			}
		}
		for _, f := range cacheableRequestFields { // a fixed order
			if use.request[f] {
				fields = append(fields, f)
			}
		}
	}
	if !deterministic(slices.Collect(maps.Values(modules))) {
		return nil
	}
	return &decisionCache{requestFields: fields, entries: cache.New[decisionKey, *Decision](maxCachedDecisions)}
}

// keyFor returns the cache key for the input, or false when this request
// must be evaluated (it has a body the policy reads, or an identity or
// access not built by NewIdentity or NewAccess). Each request field's
// value is written so that no other value writes the same bytes, and
// 0xff (never in valid UTF-8) ends it.
func (c *decisionCache) keyFor(in *Input) (decisionKey, bool) {
	id, ok := in.Identity.cacheKey()
	if !ok {
		return decisionKey{}, false
	}
	acc, ok := in.Access.cacheKey()
	if !ok {
		return decisionKey{}, false
	}
	k := decisionKey{identity: id, access: acc, route: in.Route.Name, api: in.Route.API, management: in.Management.key()}
	if in.Tenant != nil {
		k.tenant, k.status = in.Tenant.ID, in.Tenant.Status
	}
	if len(c.requestFields) == 0 {
		return k, true
	}
	var stack [192]byte
	b := stack[:0]
	r := &in.Request
	for _, f := range c.requestFields {
		switch f {
		case "method":
			b = append(b, r.Method...)
		case "host":
			b = append(b, r.Host...)
		case "path":
			b = append(b, r.Path...)
		case "segments":
			b = appendList(b, r.Segments)
		case "app_segments":
			b = appendList(b, r.AppSegments)
		case "body":
			if r.Body != nil {
				return k, false
			}
		case "body_kind", "body_keys":
			// One shape covers both; a request without a body has none.
			if r.Body != nil {
				b = append(b, r.Body.shape...)
			}
		case "query_keys":
			// In the order the input holds them (a policy may index them):
			// nil (not an edit) and empty (an edit without a query) differ.
			if r.QueryKeys != nil {
				b = appendList(append(b, 'q'), r.QueryKeys)
			}
		case "upgrade":
			if r.Upgrade {
				b = append(b, "upgrade"...)
			}
		}
		b = append(b, 0xff) // ends each field: never in valid UTF-8 (method, host, path)
	}
	if len(b) > maxRequestKey {
		return k, false // evaluated: a key this long would hold the cache's memory
	}
	k.request = string(b)
	return k, true
}

// maxRequestKey bounds the request part of a decision key. Paths, body keys
// and query names are the client's; the cache is bounded by entries, so
// without this a caller could fill it with keys of kilobytes each. Real
// requests are well below it (a path and a form's field names).
const maxRequestKey = 2048

// get and put: a decision does not expire (the key holds everything it
// depends on).
func (c *decisionCache) get(k decisionKey) (Decision, bool) {
	if d, ok := c.entries.Get(k); ok {
		return *d, true
	}
	return Decision{}, false
}

func (c *decisionCache) put(k decisionKey, d Decision) { c.entries.Put(k, &d) }
