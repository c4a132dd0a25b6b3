package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/portero-gateway/portero/internal/cache"
)

// Input is the one document the policy sees for a request. It is plain data:
// the proxy fills it in, and the policy package knows nothing of HTTP.
type Input struct {
	Request  Request
	Route    Route
	Tenant   *Tenant   // nil when the request names no tenant
	Identity *Identity // nil when the request carries no credentials
	// Access holds the store's facts for (identity, tenant); nil when the
	// gateway has no access store or the request names no tenant or user.
	Access *Access
	// Management describes a management call (see Management); nil for
	// proxied requests.
	Management *Management
	// Gateway is input.gateway: the gateway's own settings the policy may
	// need (the header profile). The same for every request.
	Gateway *Gateway
	Now     time.Time
}

// Gateway is input.gateway, built once: {"header_profile": "portero" or
// "kubernetes"}.
type Gateway struct {
	value ast.Value
}

// NewGateway prepares input.gateway.
func NewGateway(headerProfile string) *Gateway {
	return &Gateway{value: ast.NewObject(item("header_profile", ast.StringTerm(headerProfile)))}
}

// Management is input.management: what a management call (the API, the
// console, master access) wants to do. A call is decided in two steps. The
// first names only the action and the tenant or partner, before anything is
// read from the store or decoded from the body, so a caller who may not act
// learns nothing about what exists. The second, for calls that change a
// member or grant a delegation, adds the record's current and new values
// (Target, Grant), so the policy decides who may climb.
type Management struct {
	Action, Tenant, Partner, UserPartner string
	// UserPartnerRole is the caller's role in their partner organisation
	// (admin or staff), set by the control plane for calls about a
	// partner's users; "" otherwise.
	UserPartnerRole string
	// Target is the member a members.write changes; nil in the first step.
	Target *MemberChange
	// Grant is what a delegations.write invitation grants; nil in the
	// first step and for other delegation changes.
	Grant *DelegationGrant
}

// MemberChange is input.management.target: {user, current, new}. Current
// is absent when the member does not exist yet; New is absent when the
// member is removed or deactivated (nothing is granted).
type MemberChange struct {
	User    string
	Current *MemberGrant
	New     *MemberGrant
}

// MemberGrant is what a membership grants: {role, profile, status,
// businesses, locations, rights, features, fields}.
type MemberGrant struct {
	Role, Profile, Status         string
	Businesses, Locations, Rights []string
	Features                      map[string]string
	Fields                        map[string][]string
}

// DelegationGrant is input.management.grant: {partner, scope, products,
// wallet}.
type DelegationGrant struct {
	Partner, Scope string
	Products       []string
	Wallet         bool
}

func (m *Management) value() ast.Value {
	items := [][2]*ast.Term{
		item("action", ast.StringTerm(m.Action)),
		item("tenant", ast.StringTerm(m.Tenant)),
		item("partner", ast.StringTerm(m.Partner)),
		item("user_partner", ast.StringTerm(m.UserPartner)),
	}
	if m.UserPartnerRole != "" {
		items = append(items, item("user_partner_role", ast.StringTerm(m.UserPartnerRole)))
	}
	if t := m.Target; t != nil {
		target := [][2]*ast.Term{item("user", ast.StringTerm(t.User))}
		if t.Current != nil {
			target = append(target, item("current", t.Current.term()))
		}
		if t.New != nil {
			target = append(target, item("new", t.New.term()))
		}
		items = append(items, item("target", ast.ObjectTerm(target...)))
	}
	if g := m.Grant; g != nil {
		items = append(items, item("grant", ast.ObjectTerm(
			item("partner", ast.StringTerm(g.Partner)),
			item("scope", ast.StringTerm(g.Scope)),
			item("products", stringArray(g.Products)),
			item("wallet", ast.BooleanTerm(g.Wallet)),
		)))
	}
	return ast.NewObject(items...)
}

func (g *MemberGrant) term() *ast.Term {
	features := make([][2]*ast.Term, 0, len(g.Features))
	for f, level := range g.Features {
		features = append(features, ast.Item(ast.StringTerm(f), ast.StringTerm(level)))
	}
	fields := make([][2]*ast.Term, 0, len(g.Fields))
	for f, names := range g.Fields {
		fields = append(fields, ast.Item(ast.StringTerm(f), stringArray(names)))
	}
	return ast.ObjectTerm(
		item("role", ast.StringTerm(g.Role)),
		item("profile", ast.StringTerm(g.Profile)),
		item("status", ast.StringTerm(g.Status)),
		item("businesses", stringArray(g.Businesses)),
		item("locations", stringArray(g.Locations)),
		item("rights", stringArray(g.Rights)),
		item("features", ast.ObjectTerm(features...)),
		item("fields", ast.ObjectTerm(fields...)),
	)
}

// key identifies the management part of a decision for the decision cache:
// every value the policy may read, maps in sorted order.
func (m *Management) key() string {
	if m == nil {
		return ""
	}
	b, _ := json.Marshal(m) // struct fields in order, map keys sorted
	return string(b)
}

// Access is input.access, built once per store lookup and reused while the
// lookup is cached. Build it with NewAccess.
type Access struct {
	value ast.Value
	key   ValueKey
}

// NewAccess prepares a JSON-like document as input.access, with its key.
func NewAccess(doc map[string]any) (*Access, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, err
	}
	return &Access{value: v, key: valueKey("access", v)}, nil
}

// Key names the document by its content (see ValueKey).
func (a *Access) Key() ValueKey { return a.key }

// ValueKey names a part of the input by value: the first 16 bytes of the
// SHA-256 of an encoding of its document in which every string, number
// and container is tagged and length-prefixed (object keys and sets in
// OPA's sorted order), so two parts share a key only when the policy sees
// the same document in both, whoever built them and however often. The
// policy's caches (decisions, memoised stages) are keyed on it, never on
// an address. The zero key belongs to an Identity or Access not built by
// NewIdentity or NewAccess; such an input is never cached.
type ValueKey [16]byte

// valueKey is v's key; kind keeps the keys of different parts apart.
func valueKey(kind string, v ast.Value) ValueKey {
	e := &keyEncoder{buf: make([]byte, 0, 512)}
	e.term = func(t *ast.Term) { e.value(t.Value) }
	e.pair = func(k, t *ast.Term) { e.value(k.Value); e.value(t.Value) }
	e.buf = append(append(append(e.buf, "portero "...), kind...), " v1\x00"...)
	e.value(v)
	sum := sha256.Sum256(e.buf)
	return ValueKey(sum[:16])
}

// keyEncoder encodes a document for valueKey. The encoding is prefix-free
// (a tag, then a length or count, then the contents), so different
// documents never encode alike, whatever order an object's entries come
// in; OPA's sorted order makes equal documents encode alike.
type keyEncoder struct {
	buf  []byte
	term func(*ast.Term)      // e.value of an element
	pair func(k, v *ast.Term) // e.value of an entry's key and value
}

func (e *keyEncoder) value(v ast.Value) {
	switch x := v.(type) {
	case ast.String:
		e.bytes('s', string(x))
	case ast.Number:
		e.bytes('n', string(x))
	case ast.Boolean:
		if x {
			e.buf = append(e.buf, 't')
		} else {
			e.buf = append(e.buf, 'f')
		}
	case ast.Null:
		e.buf = append(e.buf, 'z')
	case *ast.Array:
		e.buf = binary.AppendUvarint(append(e.buf, 'a'), uint64(x.Len()))
		for i := range x.Len() {
			e.value(x.Elem(i).Value)
		}
	case ast.Object:
		e.buf = binary.AppendUvarint(append(e.buf, 'o'), uint64(x.Len()))
		x.Foreach(e.pair)
	case ast.Set:
		e.buf = binary.AppendUvarint(append(e.buf, 'S'), uint64(x.Len()))
		x.Foreach(e.term)
	default: // not made from Go data; its text names it
		e.bytes('x', v.String())
	}
}

func (e *keyEncoder) bytes(tag byte, s string) {
	e.buf = append(binary.AppendUvarint(append(e.buf, tag), uint64(len(s))), s...)
}

// cacheKey returns the access's key and whether the input may be cached
// on it: absent access (nil) is a key of its own, the zero key.
func (a *Access) cacheKey() (ValueKey, bool) {
	if a == nil {
		return ValueKey{}, true
	}
	return a.key, a.key != ValueKey{}
}

// Request describes the (already sanitized and normalised) HTTP request.
type Request struct {
	Method   string
	Host     string
	Path     string
	Segments []string
	// AppSegments are the segments after the tenant's path prefix (all of
	// them when the tenant comes from the host): the path as the app sees it.
	AppSegments []string
	Query       map[string][]string
	// Headers are lower-cased; credentials (Authorization, Cookie) are never
	// included.
	Headers map[string]string
	// Body is the parsed body on routes that inspect bodies, else nil. It
	// is input.request.body, and its shape is input.request.body_kind and
	// body_keys (see Body).
	Body *Body
	// QueryKeys are the query's parameter names on edits (methods other
	// than GET, HEAD and OPTIONS), sorted, nil otherwise: frameworks merge
	// them with the body's fields (Rails params, Laravel input), so
	// per-field rights check them too.
	QueryKeys []string
	// Upgrade is true for a WebSocket handshake: after it the connection
	// carries whatever the app's protocol allows, so the policy treats it
	// as an edit.
	Upgrade bool
}

// Route names the route that matched.
type Route struct {
	Name string
	API  bool
}

// Tenant is the tenant the request is addressed to.
type Tenant struct {
	ID     string
	Status string
}

// tenantTerms holds input.tenant per tenant, made once: requests name the
// same tenants again and again, and an object costs about eight
// allocations to build, twice for a caller's first request (the subject
// stage's input and the decision's). Bounded, as a request may name any
// tenant; an input term is never changed, so evaluations share it.
var tenantTerms = cache.New[Tenant, *ast.Term](maxMemoised)

// maxTenantIDMemo is the longest tenant id memoised (a store's ids are at
// most 63 characters): a longer one, which only a caller's made-up path
// can name, is built for its request and not kept.
const maxTenantIDMemo = 63

// term is input.tenant.
func (t *Tenant) term() *ast.Term {
	if v, ok := tenantTerms.Get(*t); ok {
		return v
	}
	v := ast.ObjectTerm(
		item("id", ast.StringTerm(t.ID)),
		item("status", ast.InternedTerm(t.Status)),
	)
	if len(t.ID) <= maxTenantIDMemo && len(t.Status) <= maxTenantIDMemo {
		tenantTerms.Put(*t, v)
	}
	return v
}

// Identity is who the verified credentials say the caller is. Build it with
// NewIdentity: its AST form and its key are made once and reused for every
// request that presents the same credentials. Do not change a built
// Identity's fields: the policy sees the form made from them.
type Identity struct {
	Subject string
	Email   string
	Org     string
	Groups  []string
	Roles   []string
	// Memberships indexes the tenants the claims name: tenant id -> sorted
	// roles in that tenant, so the policy looks a tenant up by key.
	Memberships map[string][]string
	Claims      map[string]any
	Auth        string // "bearer" or "session"
	// Session names the sign-in session (a hash of its id) for browser
	// sessions; "" for bearer tokens. Master access is bound to one.
	Session string

	value ast.Value
	key   ValueKey
}

// Interned object keys save an allocation per key per request.
func init() {
	ast.InternStringTerm("request", "route", "tenant", "identity", "now", "method", "host", "path",
		"segments", "query", "headers", "body", "body_kind", "body_keys", "object", "array", "string", "number", "boolean", "null", "name", "api", "id", "status", "sub", "email", "org",
		"groups", "roles", "memberships", "access", "query_keys", "upgrade", "subject", "grant", "grant_facts", "operation", "operation_denial", "scope", "gateway", "header_profile", "app_segments", "management", "claims", "auth", "bearer", "session",
		"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "active")
}

// NewIdentity returns the identity with its policy form prepared.
func NewIdentity(id Identity) *Identity {
	claims, err := ast.InterfaceToValue(id.Claims)
	if err != nil || id.Claims == nil {
		claims = ast.NewObject()
	}
	id.value = ast.NewObject(
		item("sub", ast.StringTerm(id.Subject)),
		item("email", ast.StringTerm(id.Email)),
		item("org", ast.StringTerm(id.Org)),
		item("groups", stringArray(id.Groups)),
		item("roles", stringArray(id.Roles)),
		item("memberships", stringListObject(id.Memberships)),
		item("claims", ast.NewTerm(claims)),
		item("auth", ast.InternedTerm(id.Auth)),
		item("session", ast.StringTerm(id.Session)),
	)
	id.key = valueKey("identity", id.value)
	return &id
}

// Key names the identity by value: every field the policy can read
// (subject, email, org, groups, roles, memberships, claims, auth, session)
// is in it, so two identities share a key only when the policy cannot tell
// them apart (see ValueKey).
func (id *Identity) Key() ValueKey { return id.key }

// cacheKey returns the identity's key and whether the input may be cached
// on it: no identity (nil) is a key of its own, the zero key.
func (id *Identity) cacheKey() (ValueKey, bool) {
	if id == nil {
		return ValueKey{}, true
	}
	return id.key, id.key != ValueKey{}
}

// Value returns the whole input as an AST value for rego.EvalParsedInput,
// which skips the JSON round trip a map[string]any input would cost.
func (in *Input) Value() ast.Value { return in.valueFor(everything) }

// valueFor builds only the parts of the input the policy reads, followed by
// extra items (the results of the policy's stages, see SubjectQuery).
func (in *Input) valueFor(u inputUse, extra ...[2]*ast.Term) ast.Value {
	items := make([][2]*ast.Term, 0, 5+len(extra))
	if u.needs("request") {
		items = append(items, item("request", ast.NewTerm(in.Request.valueFor(u))))
	}
	if u.needs("route") {
		items = append(items, item("route", ast.ObjectTerm(
			item("name", ast.StringTerm(in.Route.Name)),
			item("api", ast.InternedTerm(in.Route.API)),
		)))
	}
	if u.needs("now") {
		items = append(items, item("now", ast.StringTerm(in.Now.UTC().Format(time.RFC3339))))
	}
	if in.Tenant != nil && u.needs("tenant") {
		items = append(items, item("tenant", in.Tenant.term()))
	}
	if in.Identity != nil && u.needs("identity") {
		items = append(items, item("identity", ast.NewTerm(in.Identity.value)))
	}
	if in.Access != nil && u.needs("access") {
		items = append(items, item("access", ast.NewTerm(in.Access.value)))
	}
	if in.Management != nil && u.needs("management") {
		items = append(items, item("management", ast.NewTerm(in.Management.value())))
	}
	if in.Gateway != nil && u.needs("gateway") {
		items = append(items, item("gateway", ast.NewTerm(in.Gateway.value)))
	}
	items = append(items, extra...)
	return ast.NewObject(items...)
}

func (r *Request) valueFor(u inputUse) ast.Value {
	items := make([][2]*ast.Term, 0, 7)
	if u.needsRequest("method") {
		items = append(items, item("method", ast.InternedTerm(r.Method)))
	}
	if u.needsRequest("host") {
		items = append(items, item("host", ast.StringTerm(r.Host)))
	}
	if u.needsRequest("path") {
		items = append(items, item("path", ast.StringTerm(r.Path)))
	}
	if u.needsRequest("segments") {
		items = append(items, item("segments", stringArray(r.Segments)))
	}
	if u.needsRequest("app_segments") {
		items = append(items, item("app_segments", stringArray(r.AppSegments)))
	}
	if len(r.Query) > 0 && u.needsRequest("query") {
		q := make([][2]*ast.Term, 0, len(r.Query))
		for k, vs := range r.Query {
			q = append(q, ast.Item(ast.StringTerm(k), stringArray(vs)))
		}
		items = append(items, item("query", ast.ObjectTerm(q...)))
	}
	if u.needsRequest("headers") {
		items = append(items, item("headers", stringObject(r.Headers)))
	}
	if r.QueryKeys != nil && u.needsRequest("query_keys") {
		items = append(items, item("query_keys", stringArray(r.QueryKeys)))
	}
	if r.Upgrade && u.needsRequest("upgrade") {
		items = append(items, item("upgrade", ast.InternedTerm(true)))
	}
	if r.Body != nil {
		if u.needsRequest("body") {
			items = append(items, item("body", ast.NewTerm(r.Body.value)))
		}
		if u.needsRequest("body_kind") {
			items = append(items, item("body_kind", ast.InternedTerm(r.Body.kind)))
		}
		if r.Body.keys != nil && u.needsRequest("body_keys") {
			items = append(items, item("body_keys", stringArray(r.Body.keys)))
		}
	}
	return ast.NewObject(items...)
}

func item(key string, value *ast.Term) [2]*ast.Term {
	return [2]*ast.Term{ast.InternedTerm(key), value}
}

// stringArray is a list of strings as an array. Its string terms are made
// in one block, an allocation for all of them rather than one each (a
// request's path segments and body keys, a member's scope and rights).
func stringArray(ss []string) *ast.Term {
	block := make([]ast.Term, len(ss))
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		block[i].Value = ast.String(s)
		terms[i] = &block[i]
	}
	return ast.ArrayTerm(terms...)
}

// stringObject and stringListObject are maps as objects (none: an empty
// one).
func stringObject(m map[string]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	return ast.ObjectTerm(items...)
}

func stringListObject(m map[string][]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, list := range m {
		items = append(items, ast.Item(ast.StringTerm(k), stringArray(list)))
	}
	return ast.ObjectTerm(items...)
}
