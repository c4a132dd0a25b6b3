package main

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The first-request row: every request is a caller's first, as after their
// facts changed. firstUsers callers (three members of every tenant of the
// store row's store: 30,000, or 3,000 in the smoke run) PATCH a location
// profile round robin, so the decision cache never answers, and the
// gateway's access cache (firstCacheSize lookups) and the policy's memos
// (20,000 callers) are smaller than the rotation: each request looks the
// caller up in the store, prepares input.access, works out the caller's
// subject stage, then decides (the callers' four grants, one per role, keep
// their levels and the operation's refusal in the memos). Their tokens are
// verified once (the token cache holds them all), so the row measures the
// access path, not signatures.
const (
	firstMembersPerTenant = 3 // members 1, 2 and 3 of each tenant (0 is the owner)
	firstCacheSize        = 10000
	firstTokenCache       = 65536
)

// maxInlineRequests is the largest rotation written into the wrk script
// itself (LuaJIT refuses a function with more than 65,536 constants); a
// larger one is read from a file when each wrk thread starts.
const maxInlineRequests = 4000

// porteroFirstRequestRow starts a gateway on the store row's store with a
// small access cache and loads it with first requests.
func (h *harness) porteroFirstRequestRow() (target, error) {
	if h.storeDB == "" {
		return target{}, errors.New("needs the access-store row's store, which was not seeded")
	}
	tenants, cacheSize := storeTenants, firstCacheSize
	if h.o.smoke {
		tenants, cacheSize = 1000, 1000
	}
	var subs []string
	var tenantOf []string
	for m := 1; m <= firstMembersPerTenant; m++ {
		for t := range tenants {
			subs = append(subs, fmt.Sprintf("u%05d-%d", t, m))
			tenantOf = append(tenantOf, fmt.Sprintf("t%05d", t))
		}
	}
	tokens, err := h.mintTokens(subs)
	if err != nil {
		return target{}, err
	}
	db := h.storeDB
	pub, opsPort := freePort(), freePort()
	cfg := fmt.Sprintf(porteroConfig, hostport(pub), hostport(opsPort), h.issuer, fmt.Sprintf("  token_cache_size: %d", firstTokenCache), h.upstream, true,
		"    body:\n      json: true\n      max_bytes: 65536", "warn") +
		fmt.Sprintf("access:\n  store: %s\n  cache_size: %d\n", db, cacheSize)
	cfgPath := filepath.Join(h.dir, "portero-first.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return target{}, err
	}
	public, ops := "http://"+hostport(pub), "http://"+hostport(opsPort)
	p := h.start("portero-first", nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfgPath)
	if err := waitStatus(ops+"/readyz", 200); err != nil {
		return target{}, fmt.Errorf("%v\n%s", err, p.tail())
	}
	reqs := make([]request, len(subs))
	for i := range subs {
		reqs[i] = request{method: "PATCH", path: "/t/" + tenantOf[i] + "/locations/l1/profile",
			headers: []string{"Authorization: Bearer " + tokens[i], "Content-Type: application/json"}, body: `{"phone": "+1 555 0100", "hours": "9-17"}`}
	}
	// The edits are decided field by field for these callers too.
	bad := reqs[0]
	bad.body, bad.path = `{"name": "Renamed"}`, public+bad.path
	if code := doRequest(http.DefaultClient, bad); code != http.StatusForbidden {
		return target{}, fmt.Errorf("an edit of a field the caller may not edit answered %d, want 403\n%s", code, p.tail())
	}
	good := reqs[len(reqs)-1]
	good.path = public + good.path
	if code := doRequest(http.DefaultClient, good); code/100 != 2 {
		return target{}, fmt.Errorf("a first request answered %d\n%s", code, p.tail())
	}
	return target{url: public, requests: reqs, measured: []*proc{p}}, nil
}

// mintTokens asks the bench issuer for a bearer token for each subject.
func (h *harness) mintTokens(subs []string) ([]string, error) {
	start := time.Now()
	resp, err := http.Post(h.issuer+"/tokens", "text/plain", strings.NewReader(strings.Join(subs, "\n")+"\n"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("issuer /tokens: %s", resp.Status)
	}
	var tokens []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		tokens = append(tokens, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(tokens) != len(subs) {
		return nil, fmt.Errorf("issuer /tokens: %d tokens for %d subjects", len(tokens), len(subs))
	}
	log.Printf("  minted %d tokens in %s", len(tokens), time.Since(start).Round(time.Millisecond))
	return tokens, nil
}

// wrkScriptFile is wrkScript for a long rotation: the requests go to data
// (one a line: method, path, body, then header names and values, separated
// by tabs), which each wrk thread reads when it starts.
func wrkScriptFile(reqs []request, data string) (string, error) {
	var b strings.Builder
	for _, r := range reqs {
		fields := []string{r.method, r.path, r.body}
		if fields[0] == "" {
			fields[0] = "GET"
		}
		for _, hd := range r.headers {
			name, value, _ := strings.Cut(hd, ": ")
			fields = append(fields, name, value)
		}
		for _, f := range fields {
			if strings.ContainsAny(f, "\t\n\r") {
				return "", fmt.Errorf("request %s %s: a tab or a line break in %q", r.method, r.path, f)
			}
		}
		b.WriteString(strings.Join(fields, "\t"))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return `-- written by bench/benchrun
local reqs = {}
local i = 0
local function split(s)
  local out, start = {}, 1
  while true do
    local j = string.find(s, "\t", start, true)
    if not j then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, j - 1)
    start = j + 1
  end
end
init = function(args)
  for line in io.lines(` + luaString(data) + `) do
    local f = split(line)
    local headers = {}
    for k = 4, #f - 1, 2 do
      headers[f[k]] = f[k + 1]
    end
    local body = nil
    if f[3] ~= "" then
      body = f[3]
    end
    reqs[#reqs + 1] = wrk.format(f[1], f[2], headers, body)
  end
  i = math.random(#reqs)
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
`, nil
}
