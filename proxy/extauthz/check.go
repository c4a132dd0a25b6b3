package extauthz

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"

	"github.com/portero-gateway/portero/internal/deny"
	"github.com/portero-gateway/portero/proxy"
)

// envoyOwn are the headers Envoy's HTTP connection manager sets on every
// request before any filter runs, replacing a client's copy, so the check
// sees Envoy's value and so does the app: neither refused nor removed. This
// holds for an edge Envoy (use_remote_address: true, xff_num_trusted_hops:
// 0): x-forwarded-proto is Envoy's own, x-request-id is generated for every
// external request, and x-forwarded-client-cert is removed unless
// forward_client_cert_details says otherwise. X-Forwarded-For keeps the
// client's entries with Envoy's appended last: the app must read it from
// the right, as Envoy's own xff_num_trusted_hops does. (Only names Portero
// controls matter here; X-Request-Id is listed because Envoy owns it.)
//
// Headers Envoy sets after ext_authz (the router's
// x-envoy-expected-rq-timeout-ms and x-envoy-original-path) are not here:
// a client's copy is removed and the router sets its own afterwards.
var envoyOwn = map[string]bool{
	"X-Forwarded-For":         true,
	"X-Forwarded-Proto":       true,
	"X-Forwarded-Client-Cert": true,
	"X-Request-Id":            true,
}

// via names this endpoint in the gateway's log and metrics.
const via = "envoy"

// partialBodyHeader is set by the ext_authz filter when it sends only the
// first max_request_bytes of the body (allow_partial_message: true).
const partialBodyHeader = "X-Envoy-Auth-Partial-Body"

// authorization is envoy.service.auth.v3.Authorization.
type authorization struct {
	authv3.UnimplementedAuthorizationServer
	gw     *proxy.Gateway
	trusts func(netip.Addr) bool
	log    *slog.Logger
}

// Check answers one ext_authz check.
func (a *authorization) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	defer func() {
		// Untrusted input meets the whole request path here: a panic is a
		// refusal, not a failed call that failure_mode_allow might pass.
		if p := recover(); p != nil {
			a.log.Error("ext_authz check panicked; denying", "panic", p)
			c := a.gw.Refuse(jsonRequest, via, deny.Denial{Status: http.StatusInternalServerError, Reason: "forward_auth.error"})
			resp, err = denied(c.Status, c.Header, c.Body), nil
		}
	}()
	remote, ok := peerAddr(ctx)
	if !ok || !a.trusts(remote.Addr()) {
		c := a.gw.Untrusted(jsonRequest, via, remote.String())
		return denied(c.Status, c.Header, c.Body), nil
	}
	r, withBody, d := originalRequest(ctx, req.GetAttributes().GetRequest().GetHttp(), remote)
	if d != nil {
		c := a.gw.Refuse(jsonRequest, via, *d)
		return denied(c.Status, c.Header, c.Body), nil
	}
	c := a.gw.Check(r, proxy.CheckOptions{Via: via, CanRemove: true, WithBody: withBody, Own: envoyOwn})
	if c.Allowed {
		return allowed(c), nil
	}
	return denied(c.Status, c.Header, c.Body), nil
}

// peerAddr is the address the check came from.
func peerAddr(ctx context.Context) (netip.AddrPort, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.AddrPort{}, false
	}
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		return tcp.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	return ap, err == nil
}

// originalRequest is the request Envoy asks about: method, request target
// (path with its query, as the client sent it), Host from :authority, the
// client's headers (pseudo-headers left out) and, when the check carries
// it, the body. withBody says whether the check carries the whole body or
// the request has none (see hasWholeBody).
func originalRequest(ctx context.Context, h *authv3.AttributeContext_HttpRequest, remote netip.AddrPort) (*http.Request, bool, *deny.Denial) {
	if h == nil || h.GetMethod() == "" || h.GetPath() == "" {
		return nil, false, &deny.Denial{Status: http.StatusBadRequest, Reason: "forward_auth.incomplete"}
	}
	uri := h.GetPath()
	u, d := proxy.OriginalTarget(uri)
	if d != nil {
		return nil, false, d
	}
	r, err := http.NewRequestWithContext(ctx, h.GetMethod(), "/", http.NoBody)
	if err != nil {
		return nil, false, &deny.Denial{Status: http.StatusBadRequest, Reason: "request.bad_method"}
	}
	r.URL = u
	r.RequestURI = uri
	r.Host = h.GetHost()
	r.RemoteAddr = remote.String()
	r.Header = clientHeaders(h)
	body := h.GetRawBody()
	if len(body) == 0 {
		body = []byte(h.GetBody())
	}
	withBody := hasWholeBody(r.Header, h.GetProtocol(), body)
	if len(body) > 0 && withBody {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	return r, withBody, nil
}

// clientHeaders are the request's headers under their canonical names:
// from header_map when Envoy sends raw headers (encode_raw_headers: true,
// one entry per value), else from headers (one value per name, repeated
// names joined with ','). Pseudo-headers (:authority, :path, …) are the
// request line, not headers.
func clientHeaders(h *authv3.AttributeContext_HttpRequest) http.Header {
	out := http.Header{}
	if raw := h.GetHeaderMap().GetHeaders(); len(raw) > 0 {
		for _, hv := range raw {
			if strings.HasPrefix(hv.GetKey(), ":") {
				continue
			}
			v := hv.GetValue()
			if hv.GetRawValue() != nil {
				v = string(hv.GetRawValue())
			}
			name := http.CanonicalHeaderKey(hv.GetKey())
			out[name] = append(out[name], v)
		}
		return out
	}
	for k, v := range h.GetHeaders() {
		if strings.HasPrefix(k, ":") {
			continue
		}
		name := http.CanonicalHeaderKey(k)
		out[name] = append(out[name], v)
	}
	return out
}

// hasWholeBody says whether the policy may decide on the body the check
// carries: the check carries all of it (Envoy's with_request_body, not
// cut at max_request_bytes, as long as Content-Length says), or the request
// has none; any value of X-Envoy-Auth-Partial-Body but "false" says the body
// was cut. A request without Content-Length and Transfer-Encoding has no
// body in HTTP/1.x only; over HTTP/2 and HTTP/3 it may still have one, so
// there only a Content-Length of 0 says so.
func hasWholeBody(h http.Header, protocol string, body []byte) bool {
	// Every value, not the first: Envoy drops a client's copy, but should
	// one get through, its "false" must not hide Envoy's "true".
	for _, v := range h.Values(partialBodyHeader) {
		if !strings.EqualFold(strings.TrimSpace(v), "false") {
			return false
		}
	}
	lengths := h.Values("Content-Length")
	switch {
	case len(lengths) > 1:
		return false
	case len(lengths) == 1:
		n, err := strconv.ParseInt(strings.TrimSpace(lengths[0]), 10, 64)
		return err == nil && n == int64(len(body))
	case len(body) > 0:
		return true // chunked or HTTP/2 without length, buffered whole by Envoy
	case len(h.Values("Transfer-Encoding")) > 0:
		return false
	default:
		return strings.HasPrefix(protocol, "HTTP/1.")
	}
}

// allowed is Envoy's OK answer: the headers the app receives set (each
// replacing the client's copy), the reserved headers the client sent
// removed, and any refreshed session cookie for the client.
//
// Envoy applies headers_to_remove after headers: a name in both would
// remove the value Portero sets, so a header the answer sets is not also
// removed (setting it already replaces the client's copy).
func allowed(c *proxy.Check) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{Headers: headerOptions(c.Upstream)}
	for _, name := range c.Remove {
		if _, set := c.Upstream[http.CanonicalHeaderKey(name)]; !set {
			ok.HeadersToRemove = append(ok.HeadersToRemove, strings.ToLower(name))
		}
	}
	if cookies := c.Header.Values("Set-Cookie"); len(cookies) > 0 {
		ok.ResponseHeadersToAdd = headerOptions(http.Header{"Set-Cookie": cookies})
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// denied is Envoy's denied answer, passed to the client as it is: the
// status (a sign-in redirect stays a 302 with its Location), headers and
// body Portero would have answered with.
func denied(status int, header http.Header, body []byte) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: headerOptions(header),
			Body:    string(body),
		}},
	}
}

// jsonRequest stands for the check in refusals made before the request
// is known: Envoy's clients get them as JSON, like every API refusal.
var jsonRequest = &http.Request{Header: http.Header{"Accept": {"application/json"}}}

// headerOptions are h as Envoy header options with lower-case names: a
// name's first value replaces any copy, the others are appended.
func headerOptions(h http.Header) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, name := range slices.Sorted(maps.Keys(h)) {
		for i, v := range h[name] {
			action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if i > 0 {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
			out = append(out, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(name), Value: v},
				AppendAction: action,
			})
		}
	}
	return out
}
