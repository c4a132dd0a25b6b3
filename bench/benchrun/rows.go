package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const page = "/t/acme/items"

func (h *harness) rows() []rowSpec {
	return []rowSpec{
		{name: "upstream directly (ceiling)", note: "the tiny Go origin, no proxy", setup: func() (target, error) {
			return target{url: h.upstream + page, headers: []string{"Authorization: " + h.auth}, measured: h.procs[:1]}, nil
		}},
		{name: "bare Go httputil.ReverseProxy", note: "the floor for any Go proxy; GOGC=400 like Portero", setup: h.bareProxy},
		{name: "nginx proxy_pass", note: "2 workers, upstream keep-alive", setup: h.nginxRow(false)},
		{name: "Portero, bearer JWT, default policy", note: "decision log off (log.level warn)", setup: h.porteroRow(false, "warn")},
		{name: "Portero, bearer JWT, default policy, decision log on", note: "one JSON line per request to a file", setup: h.porteroRow(false, "info")},
		{name: "Portero, bearer JWT, policy that reads the request", note: "no decision cache: every request is evaluated", setup: h.porteroUncachedRow},
		{name: "Portero, cookie session, default policy", note: "signed in through the real code flow; membership from token claims", setup: h.porteroRow(true, "warn")},
		{name: "Portero, cookie sessions, access store, full default policy", note: "64 users signed in through the code flow, round robin over 3 classified pages each; 100,000 members in SQLite (10,000 in the smoke run)", setup: h.porteroStoreRow},
		{name: "Portero, access store, edits with a JSON body", note: "the same gateway and users, each PATCHing a location profile with bodies of three shapes (phone and hours, phone, hours) and varying values: checked per field on the body's keys, a shape decided for the user before answered from the decision cache", setup: h.porteroStoreEditsRow},
		{name: "Portero, access store, every request a caller's first", note: "30,000 callers (3,000 in the smoke run: the memos then hold them) of the same store PATCHing a location profile round robin, bearer tokens verified once; access cache 10,000 and the policy's memos 20,000, both below the rotation: each request a store lookup and the caller's subject stage worked out, then the decision (the callers have four grants, one per role, so their levels and the operation's refusal come from the memos)", setup: h.porteroFirstRequestRow},
		{name: "Portero, two replicas on PostgreSQL behind one load", note: "the access-store row's users, requests and members on one PostgreSQL (a throwaway cluster, or PORTERO_BENCH_POSTGRES), two gateways, one wrk per replica at once with half the connections each (p50/p99: the slower replica's); CPU and RSS of both gateways (PostgreSQL is idle under the load: facts are cached until a write)", setup: h.porteroReplicasRow},
		{name: "nginx auth_request → OPA (njs)", note: "njs ngx.fetch to `opa run --server`, same Rego + JWT verification in Rego", setup: h.nginxRow(true)},
		{name: "nginx auth_request → Portero", note: "Portero's forward_auth.listen, same token and default policy; nginx copies the decision's headers and the assertion", setup: h.nginxPorteroRow},
		{name: "Caddy forward_auth → adapter → OPA", note: "forward_auth needs 2xx/403, so a 40-line Go adapter asks OPA", setup: h.caddyRow},
		{name: "oauth2-proxy, bearer JWT", note: "bearer JWT verified, no per-tenant authorisation (authentication only); --skip-jwt-bearer-tokens, --set-xauthrequest, request log off", setup: h.oauth2ProxyRow(false)},
		{name: "oauth2-proxy, cookie session", note: "signed in through the real code flow, no per-tenant authorisation (authentication only); session in the cookie, request log off", setup: h.oauth2ProxyRow(true)},
	}
}

func (h *harness) bareProxy() (target, error) {
	port := freePort()
	p := h.start("bareproxy", []string{"GOGC=400"}, filepath.Join(h.bin, "bareproxy"), "-listen", hostport(port), "-upstream", h.upstream)
	url := fmt.Sprintf("http://%s", hostport(port))
	return target{url: url + page, headers: []string{"Authorization: " + h.auth}, measured: []*proc{p}}, waitStatus(url+"/", 200)
}

const porteroConfig = `
listen:
  public: %s
  ops: %s
  client_connections: {per_minute: 1000000, burst: 100000}  # every load client is 127.0.0.1
limits:  # the store row signs many users in from one address
  sign_in: {per_minute: 1000000, burst: 100000}
  callback: {per_minute: 1000000, burst: 100000}
tenant:
  path: /t/{tenant}/
oidc:
  issuer: %s
  audiences: [portero]
%s
routes:
  - name: app
    upstream: %s
    api: %v
%s
log:
  level: %s
`

// porteroConfigFor writes a gateway.yaml for the bench and returns its path
// and the public and ops URLs. route is added to the route's settings,
// extra to the top level.
func (h *harness) porteroConfigFor(name string, session bool, level, route, extra string) (cfgPath, public, ops string) {
	pub, opsPort := freePort(), freePort()
	login := ""
	if session {
		login = fmt.Sprintf(`  client_id: bench
  client_secret: bench
  redirect_url: http://%s/.portero/callback
session:
  keys: ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]`, hostport(pub))
	}
	cfg := fmt.Sprintf(porteroConfig, hostport(pub), hostport(opsPort), h.issuer, login, h.upstream, !session, route, level) + extra
	cfgPath = filepath.Join(h.dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		panic(err)
	}
	return cfgPath, "http://" + hostport(pub), "http://" + hostport(opsPort)
}

func (h *harness) porteroRow(session bool, level string) func() (target, error) {
	return func() (target, error) {
		cfg, public, ops := h.porteroConfigFor("portero", session, level, "", "")
		p := h.start("portero", nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfg)
		if err := waitStatus(ops+"/readyz", 200); err != nil {
			return target{}, fmt.Errorf("%v\n%s", err, p.tail())
		}
		header := "Authorization: " + h.auth
		if session {
			c, _, err := sessionCookie(public, page)
			if err != nil {
				return target{}, fmt.Errorf("sign in: %v\n%s", err, p.tail())
			}
			header = c
		}
		return target{url: public + page, headers: []string{header}, measured: []*proc{p}}, nil
	}
}

const readsRequestRego = `package portero.bench_reads_request

get if input.request.method == "GET"
`

// porteroUncachedRow serves the default policy plus one rule that reads the
// request, which makes every decision depend on the request: the decision
// cache is off and each request is evaluated.
func (h *harness) porteroUncachedRow() (target, error) {
	dir := filepath.Join(h.dir, "policy-uncached")
	_ = os.MkdirAll(dir, 0o755)
	for _, f := range []string{"authz.rego", "membership.rego"} {
		b, err := os.ReadFile(filepath.Join(h.o.repo, "rego", f))
		if err != nil {
			return target{}, err
		}
		_ = os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	_ = os.WriteFile(filepath.Join(dir, "reads_request.rego"), []byte(readsRequestRego), 0o644)
	cfg, public, ops := h.porteroConfigFor("portero-uncached", false, "warn", "", "policy:\n  dir: "+dir+"\n  watch: false\n")
	p := h.start("portero-uncached", nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfg)
	if err := waitStatus(ops+"/readyz", 200); err != nil {
		return target{}, fmt.Errorf("%v\n%s", err, p.tail())
	}
	return target{url: public + page, headers: []string{"Authorization: " + h.auth}, measured: []*proc{p}}, nil
}

// startOPA runs `opa run --server` on the default policy plus the bench's
// entry point, which verifies the token in Rego.
func (h *harness) startOPA() (*proc, string, error) {
	opa := h.o.opa
	if opa == "" {
		var err error
		if opa, err = exec.LookPath("opa"); err != nil {
			return nil, "", errors.New("opa is not installed (bench/run builds it with go install)")
		}
	}
	dir := filepath.Join(h.dir, "opa-policy")
	_ = os.MkdirAll(dir, 0o755)
	for _, src := range []string{"rego/authz.rego", "rego/membership.rego", "bench/opa/bench.rego"} {
		b, err := os.ReadFile(filepath.Join(h.o.repo, src))
		if err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
			return nil, "", err
		}
	}
	data, _ := json.Marshal(map[string]any{"bench": map[string]any{"jwks": string(h.jwks), "issuer": h.issuer}})
	if err := os.WriteFile(filepath.Join(dir, "data.json"), data, 0o644); err != nil {
		return nil, "", err
	}
	port := freePort()
	p := h.start("opa", nil, opa, "run", "--server", "--addr", hostport(port), "--log-level", "error", dir)
	url := fmt.Sprintf("http://%s", hostport(port))
	if err := waitStatus(url+"/health", 200); err != nil {
		return nil, "", fmt.Errorf("%v\n%s", err, p.tail())
	}
	return p, url + "/v1/data/portero/bench/allow", nil
}

const nginxConfig = `
%s
worker_processes 2;
daemon off;
user root;
pid %s/nginx.pid;
error_log %s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %s/nginx-body;
  proxy_temp_path %s/nginx-proxy;
  %s
  upstream backend { server %s; keepalive 128; }
  server {
    listen %s;
    location / {
      %s
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location = /_authz {
      internal;
      set $opa_url "%s";
      js_content authz.check;
    }
  }
}
`

func (h *harness) nginxRow(withOPA bool) func() (target, error) {
	return func() (target, error) {
		nginx, err := exec.LookPath("nginx")
		if err != nil {
			return target{}, errors.New("nginx is not installed (apt-get install nginx)")
		}
		var measured []*proc
		module, jsImport, authReq, opaURL := "", "", "", ""
		if withOPA {
			const mod = "/usr/lib/nginx/modules/ngx_http_js_module.so"
			if _, err := os.Stat(mod); err != nil {
				return target{}, errors.New("nginx's njs module is not installed (apt-get install libnginx-mod-http-js)")
			}
			opa, url, err := h.startOPA()
			if err != nil {
				return target{}, err
			}
			measured = append(measured, opa)
			module = "load_module " + mod + ";"
			jsImport = "js_import authz from " + filepath.Join(h.o.repo, "bench/nginx/authz.js") + ";"
			authReq = "auth_request /_authz;"
			opaURL = url
		}
		port := freePort()
		wd := h.dir
		up := strings.TrimPrefix(h.upstream, "http://")
		conf := fmt.Sprintf(nginxConfig, module, wd, wd, wd, wd, jsImport, up, hostport(port), authReq, opaURL)
		if !withOPA {
			conf = strings.Replace(conf, "js_content authz.check;", "return 404;", 1)
		}
		path := filepath.Join(wd, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return target{}, err
		}
		p := h.start("nginx", nil, nginx, "-c", path, "-e", filepath.Join(wd, "nginx-error.log"))
		measured = append(measured, p)
		url := fmt.Sprintf("http://%s", hostport(port))
		if err := waitStatusWith(url+page, 200, "Authorization: "+h.auth); err != nil {
			return target{}, fmt.Errorf("%v\n%s", err, p.tail())
		}
		return target{url: url + page, headers: []string{"Authorization: " + h.auth}, measured: measured}, nil
	}
}

// nginxPorteroConfig is docs/forward-auth.md's nginx configuration cut to
// the bench's headers, with keep-alive to Portero and the upstream.
const nginxPorteroConfig = `
worker_processes 2;
daemon off;
user root;
pid %[1]s/nginx-portero.pid;
error_log %[1]s/nginx-portero-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-body;
  proxy_temp_path %[1]s/nginx-proxy;
  upstream backend { server %[2]s; keepalive 128; }
  upstream portero { server %[3]s; keepalive 128; }
  server {
    listen %[4]s;
    location / {
      auth_request /_portero_check;
      auth_request_set $portero_user $upstream_http_x_portero_user;
      auth_request_set $portero_tenant $upstream_http_x_portero_tenant;
      auth_request_set $portero_roles $upstream_http_x_portero_roles;
      auth_request_set $portero_assertion $upstream_http_x_portero_assertion;
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Portero-User $portero_user;
      proxy_set_header X-Portero-Tenant $portero_tenant;
      proxy_set_header X-Portero-Roles $portero_roles;
      proxy_set_header X-Portero-Assertion $portero_assertion;
    }
    location = /_portero_check {
      internal;
      proxy_pass http://portero;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-Uri $request_uri;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`

// nginxPorteroRow: nginx asks Portero's forward-auth listener about every
// request (auth_request) and forwards it to the upstream itself.
func (h *harness) nginxPorteroRow() (target, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		return target{}, errors.New("nginx is not installed (apt-get install nginx)")
	}
	checkPort, port := freePort(), freePort()
	extra := fmt.Sprintf("forward_auth:\n  listen: %s\n  trusted_proxies: [127.0.0.1/32]\n", hostport(checkPort))
	cfg, _, ops := h.porteroConfigFor("portero-forward-auth", false, "warn", "", extra)
	portero := h.start("portero-forward-auth", nil, filepath.Join(h.bin, "portero"), "serve", "-c", cfg)
	if err := waitStatus(ops+"/readyz", 200); err != nil {
		return target{}, fmt.Errorf("%v\n%s", err, portero.tail())
	}
	conf := fmt.Sprintf(nginxPorteroConfig, h.dir, strings.TrimPrefix(h.upstream, "http://"), hostport(checkPort), hostport(port))
	path := filepath.Join(h.dir, "nginx-portero.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return target{}, err
	}
	p := h.start("nginx", nil, nginx, "-c", path, "-e", filepath.Join(h.dir, "nginx-portero-error.log"))
	url := fmt.Sprintf("http://%s", hostport(port))
	if err := waitStatusWith(url+page, 200, "Authorization: "+h.auth); err != nil {
		return target{}, fmt.Errorf("%v\n%s\n%s", err, p.tail(), portero.tail())
	}
	return target{url: url + page, headers: []string{"Authorization: " + h.auth}, measured: []*proc{p, portero}}, nil
}

const caddyfile = `{
	admin off
	auto_https off
}
http://%s {
	forward_auth %s {
		uri /authz
	}
	reverse_proxy %s
}
`

func (h *harness) caddyRow() (target, error) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		return target{}, errors.New("caddy is not installed (apt-get install caddy)")
	}
	opa, opaURL, err := h.startOPA()
	if err != nil {
		return target{}, err
	}
	adapterPort, port := freePort(), freePort()
	adapter := h.start("opa-adapter", nil, filepath.Join(h.bin, "opa-adapter"), "-listen", hostport(adapterPort), "-opa", opaURL)
	path := filepath.Join(h.dir, "Caddyfile")
	conf := fmt.Sprintf(caddyfile, hostport(port), hostport(adapterPort), strings.TrimPrefix(h.upstream, "http://"))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return target{}, err
	}
	p := h.start("caddy", []string{"HOME=" + h.dir, "XDG_DATA_HOME=" + h.dir, "XDG_CONFIG_HOME=" + h.dir}, caddy, "run", "--config", path, "--adapter", "caddyfile")
	url := fmt.Sprintf("http://%s", hostport(port))
	if err := waitStatusWith(url+page, 200, "Authorization: "+h.auth); err != nil {
		return target{}, fmt.Errorf("%v\n%s", err, p.tail())
	}
	return target{url: url + page, headers: []string{"Authorization: " + h.auth}, measured: []*proc{p, adapter, opa}}, nil
}

func (h *harness) versions() map[string]string {
	v := map[string]string{}
	for name, args := range map[string][]string{"nginx": {"-v"}, "caddy": {"version"}, "wrk": {"-v"}} {
		if out, err := exec.Command(name, args...).CombinedOutput(); err == nil || len(out) > 0 {
			v[name] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	opa := h.o.opa
	if opa == "" {
		opa = "opa"
	}
	if out, err := exec.Command(opa, "version").Output(); err == nil {
		v["opa"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if o2p := h.oauth2ProxyVersion(); o2p != "" {
		v["oauth2-proxy"] = o2p
	}
	return v
}
