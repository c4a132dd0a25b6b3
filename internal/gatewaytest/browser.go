package gatewaytest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
	"github.com/portero-gateway/portero/control"
)

// Clock is a settable time source shared by the gateway and the issuer.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Browser carries cookies between requests to the in-process gateway.
type Browser struct {
	t       testing.TB
	h       *Harness
	Cookies map[string]*http.Cookie
}

// NewBrowser is a browser without cookies in front of h.
func NewBrowser(t testing.TB, h *Harness) *Browser {
	return &Browser{t: t, h: h, Cookies: map[string]*http.Cookie{}}
}

// NewLogin is a gateway with browser sign-in on a settable clock, and a
// browser in front of it.
func NewLogin(t testing.TB) (*Harness, *Clock, *Browser) {
	clk := NewClock(time.Now().Truncate(time.Second))
	h := NewWith(t, nil, Options{Login: true, Now: clk.Now})
	h.Iss.TokenTTL = 5 * time.Minute
	return h, clk, NewBrowser(t, h)
}

// Do sends a request with the browser's cookies (and form as an
// url-encoded body when not nil) and keeps the cookies the answer sets.
func (b *Browser) Do(method, target string, form url.Values, hdr http.Header) *httptest.ResponseRecorder {
	b.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	for _, c := range b.Cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	b.h.Gateway.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.Cookies, c.Name)
		} else {
			b.Cookies[c.Name] = c
		}
	}
	return rec
}

// SignIn walks the whole code flow from a protected page and returns where
// the browser lands.
func (b *Browser) SignIn(page string, claims map[string]any) *httptest.ResponseRecorder {
	b.t.Helper()
	rec := b.Do("GET", page, nil, nil)
	if rec.Code != http.StatusFound || !strings.HasPrefix(rec.Header().Get("Location"), "http://localhost/.portero/login?rd=") {
		b.t.Fatalf("protected page: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = b.Do("GET", rec.Header().Get("Location"), nil, nil)
	if rec.Code != http.StatusFound || !strings.HasPrefix(rec.Header().Get("Location"), b.h.Iss.URL+"/auth?") {
		b.t.Fatalf("login: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	code, state := b.h.Iss.Authorize(b.t, rec.Header().Get("Location"), claims)
	return b.Do("GET", "http://localhost/.portero/callback?code="+code+"&state="+url.QueryEscape(state), nil, nil)
}

// AliceClaims are an acme administrator's ID token claims.
func AliceClaims() map[string]any {
	return map[string]any{"sub": "alice", "email": "alice@example.com", "roles": []string{"acme:administrator"}}
}

// SamClaims are a system admin's.
func SamClaims() map[string]any {
	return map[string]any{"sub": "sam", "email": "sam@portero.example", "groups": []string{"system-admins"}}
}

// Master is a gateway with browser sign-in, a real SQLite store with acme
// (which allows master access) and locked (which does not), and an audit
// export.
type Master struct {
	*Harness
	Clock     *Clock
	B         *Browser
	Store     *access.Store
	AuditPath string
	DBPath    string
}

// NewMaster builds it; extra is appended to the configuration.
func NewMaster(t testing.TB, extra string) *Master {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	dbPath := filepath.Join(dir, "access.db")
	store, err := access.Open(ctx, dbPath, access.WithActors(control.ActorOf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// Fixtures go in beside the store's API, so the trail holds only what
	// the tests do: acme allows master access, locked does not.
	SeedSQL(t, dbPath, `INSERT INTO tenants (id, name, owner, master_access, created_at) VALUES
		('acme', 'Acme', 'olivia', 1, '2026-01-01T00:00:00Z'), ('locked', 'Locked', 'lee', 0, '2026-01-01T00:00:00Z')`)
	auditPath := filepath.Join(dir, "audit.jsonl")
	log, err := audit.OpenExport(ctx, auditPath, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	store.OnCommit(func(recs []audit.Record) { log.Mirror(ctx, store, slog.New(slog.DiscardHandler), recs...) })
	t.Cleanup(func() { log.Close() })
	clk := NewClock(time.Now().Truncate(time.Second))
	h := NewWith(t, nil, Options{Login: true, Now: clk.Now, Store: store, Audit: log, Extra: `
access:
  store: ` + dbPath + `
master_access:
  audit_log: ` + auditPath + `
  admin_url: /admin/
` + extra})
	h.Iss.TokenTTL = 5 * time.Minute
	return &Master{Harness: h, Clock: clk, B: NewBrowser(t, h), Store: store, AuditPath: auditPath, DBPath: dbPath}
}

// CSRFField finds a form's CSRF token.
var CSRFField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Start submits the master-access form and returns the answer.
func (m *Master) Start(t testing.TB, tenant, reason, mode, duration string) *httptest.ResponseRecorder {
	t.Helper()
	page := m.B.Do("GET", "http://localhost/.portero/master-access", nil, nil)
	match := CSRFField.FindStringSubmatch(page.Body.String())
	if page.Code != 200 || match == nil {
		t.Fatalf("master-access page: %d %s", page.Code, page.Body)
	}
	return m.B.Do("POST", "http://localhost/.portero/master-access", url.Values{
		"csrf": {match[1]}, "tenant": {tenant}, "reason": {reason}, "ticket": {"SUP-42"}, "mode": {mode}, "duration": {duration},
	}, http.Header{"Origin": {"http://localhost"}})
}

// MustStart starts master access and fails the test unless it was started.
func (m *Master) MustStart(t testing.TB, tenant, reason, mode, duration string) {
	t.Helper()
	if rec := m.Start(t, tenant, reason, mode, duration); rec.Code != http.StatusSeeOther {
		t.Fatalf("start %s for %q (%s, %s): %d %s", mode, tenant, reason, duration, rec.Code, rec.Body)
	}
}

// End ends the browser's master-access session through the end page.
func (m *Master) End(t testing.TB) *httptest.ResponseRecorder {
	t.Helper()
	page := m.B.Do("GET", "http://localhost/.portero/master-access/end", nil, nil)
	match := CSRFField.FindStringSubmatch(page.Body.String())
	if page.Code != 200 || match == nil {
		t.Fatalf("end page: %d %s", page.Code, page.Body)
	}
	return m.B.Do("POST", "http://localhost/.portero/master-access/end", url.Values{"csrf": {match[1]}}, nil)
}

// Hostile are client-sent copies of every impersonation header, in the
// spellings an upstream stack might merge with the real ones.
func Hostile() http.Header {
	return http.Header{
		"X-Portero-Impersonator":             {"mallory"},
		"X-Portero-Impersonation-Id":         {"ma_forged"},
		"X_portero_impersonation_reason":     {"forged"},
		"Impersonate-User":                   {"root"},
		"Impersonate-Group":                  {"system:masters"},
		"Impersonate_extra_impersonator":     {"mallory"},
		"IMPERSONATE-EXTRA-REASON":           {"forged"},
		"X-Portero-User":                     {"olivia"},
		"X-Portero-Impersonation-Expires":    {"never"},
		"Impersonate-Extra-Impersonation-Id": {"ma_forged"},
	}
}

// ImpersonationHeaders are h's impersonation headers.
func ImpersonationHeaders(h http.Header) map[string][]string {
	out := map[string][]string{}
	for name, v := range h {
		n := strings.ToLower(name)
		if strings.HasPrefix(n, "impersonate-") || strings.HasPrefix(n, "x-portero-impersonat") {
			out[name] = v
		}
	}
	return out
}
