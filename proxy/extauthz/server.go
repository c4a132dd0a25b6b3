// Package extauthz answers Envoy's external authorization checks
// (envoy.service.auth.v3.Authorization over gRPC, the ext_authz filter)
// with the gateway's Check: the same stages as the proxy path, with the
// forwarding left to Envoy.
//
// A check is believed only from forward_auth.trusted_proxies. Every answer
// is a CheckResponse, never a gRPC error: Envoy treats an error as a failed
// call and lets failure_mode_allow decide, so a refusal (an untrusted
// peer, a malformed check) is a denied response that Envoy passes to the
// client as it is.
package extauthz

import (
	"context"
	"log/slog"
	"net"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/proxy"
)

// Limits of the gRPC server. A check carries the request's headers and, with
// Envoy's with_request_body, at most max_request_bytes of its body.
const (
	// maxMessageBytes bounds a check (and an answer, which may hold an
	// error page).
	maxMessageBytes = 4 << 20
	// keepaliveMinTime is the shortest keepalive ping interval a client may
	// use (Envoy's connection_keepalive.interval): a client that pings more
	// often is disconnected.
	keepaliveMinTime = 10 * time.Second
	// keepaliveTime and keepaliveTimeout: the server pings an idle
	// connection after keepaliveTime and closes it when the ping is not
	// answered within keepaliveTimeout (Envoy gone without a FIN).
	keepaliveTime    = 2 * time.Minute
	keepaliveTimeout = 20 * time.Second
	// maxStreams bounds the concurrent checks on one connection.
	maxStreams = 1024
)

// Server is the gRPC endpoint on forward_auth.envoy.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
}

// New builds the server for gw; cfg is the validated forward_auth.
func New(gw *proxy.Gateway, cfg config.ForwardAuth, log *slog.Logger) *Server {
	s := &Server{
		grpc: grpc.NewServer(
			grpc.MaxRecvMsgSize(maxMessageBytes),
			grpc.MaxSendMsgSize(maxMessageBytes),
			grpc.MaxConcurrentStreams(maxStreams),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		),
		// Envoy's grpc_health_check on the cluster reads this.
		health: health.NewServer(),
	}
	authv3.RegisterAuthorizationServer(s.grpc, &authorization{gw: gw, trusts: cfg.Trusts, log: log})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return s
}

// Serve answers checks on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// Shutdown stops accepting connections and checks, waits for the checks
// under way to be answered and, when ctx ends first, closes every
// connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown() // health checks now answer NOT_SERVING
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return ctx.Err()
	}
}
