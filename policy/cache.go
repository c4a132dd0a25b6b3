package policy

import (
	"maps"
	"slices"
	"strings"

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
// Headers and query strings vary too much to be worth it; a body is never
// cached (a request with one is evaluated).
var cacheableRequestFields = []string{"method", "host", "path", "segments", "app_segments", "body", "query_keys", "upgrade"}

// maxCachedDecisions bounds the cache (see cache.Bounded for which entry
// makes room).
const maxCachedDecisions = 50000

func newDecisionCache(modules map[string]*ast.Module, use inputUse) *decisionCache {
	if use.all {
		return nil
	}
	for key := range use.top {
		// input.subject, input.operation and input.operation_denial are
		// the policy's own stages
		// (see SubjectQuery): what they read is among the modules' reads
		// checked here. input.gateway is the same for every request.
		if !slices.Contains([]string{"identity", "tenant", "route", "access", "request", "management", "subject", "operation", "operation_denial", "gateway"}, key) {
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
// access not built by NewIdentity or NewAccess).
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
	var b strings.Builder
	r := &in.Request
	for _, f := range c.requestFields {
		switch f {
		case "method":
			b.WriteString(r.Method)
		case "host":
			b.WriteString(r.Host)
		case "path":
			b.WriteString(r.Path)
		case "segments":
			b.WriteString(strings.Join(r.Segments, "\x00"))
		case "app_segments":
			b.WriteString(strings.Join(r.AppSegments, "\x00"))
		case "body":
			if r.Body != nil {
				return k, false
			}
		case "query_keys":
			if r.QueryKeys != nil {
				return k, false
			}
		case "upgrade":
			if r.Upgrade {
				b.WriteString("upgrade")
			}
		}
		b.WriteByte(0xff) // not valid UTF-8: cannot occur in the values
	}
	k.request = b.String()
	return k, true
}

// get and put: a decision does not expire (the key holds everything it
// depends on).
func (c *decisionCache) get(k decisionKey) (Decision, bool) {
	if d, ok := c.entries.Get(k); ok {
		return *d, true
	}
	return Decision{}, false
}

func (c *decisionCache) put(k decisionKey, d Decision) { c.entries.Put(k, &d) }
