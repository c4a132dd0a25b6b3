package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/policy"
)

// Authenticator is the authenticate stage: a bearer token when the request
// carries one, else the browser session (when sign-in is configured).
type Authenticator struct {
	Bearer *Bearer
	// Sessions is nil unless browser sign-in is configured.
	Sessions *Sessions
	failures *prometheus.CounterVec
	log      *slog.Logger
}

// New builds the authenticator for a validated configuration and registers
// portero_auth_failures_total on reg.
func New(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger, now func() time.Time) (*Authenticator, error) {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{Bearer: NewBearer(cfg.OIDC, now), log: log}
	if cfg.BrowserLogin() {
		var err error
		if a.Sessions, err = NewSessions(cfg, a.Bearer, log, now); err != nil {
			return nil, err
		}
	}
	a.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_auth_failures_total",
		Help: "Rejected credentials by reason (missing, malformed, expired, invalid, unavailable, login).",
	}, []string{"reason"})
	reg.MustRegister(a.failures)
	return a, nil
}

// Start begins OIDC discovery in the background, retrying until it succeeds
// or ctx ends; nothing can be verified before that.
func (a *Authenticator) Start(ctx context.Context, client *http.Client) {
	go a.Bearer.DiscoverUntilReady(ctx, client, func(err error) {
		a.log.Warn("oidc discovery failed; will retry", "issuer", a.Bearer.Issuer(), "error", err.Error())
	})
}

// Failed counts a rejected credential or sign-in by reason.
func (a *Authenticator) Failed(reason string) { a.failures.WithLabelValues(reason).Inc() }

// Authenticate returns the caller's identity from a bearer token or, failing
// that, the browser session; nil for an anonymous request when api is false;
// or an error (missing credentials count when api is true). Failures are
// counted.
func (a *Authenticator) Authenticate(w http.ResponseWriter, r *http.Request, api bool) (*policy.Identity, *Error) {
	id, err := a.authenticate(w, r, api)
	if err != nil {
		a.Failed(err.Reason)
	}
	return id, err
}

func (a *Authenticator) authenticate(w http.ResponseWriter, r *http.Request, api bool) (*policy.Identity, *Error) {
	raw, err := BearerToken(r.Header)
	if err != nil {
		return nil, &Error{"malformed", err}
	}
	if raw == "" {
		if a.Sessions != nil {
			st, err := a.Sessions.CurrentOrErr(w, r)
			if err != nil {
				return nil, &Error{"unavailable", fmt.Errorf("session state: %w", err)}
			}
			if st != nil {
				return st.Identity, nil
			}
		}
		if api {
			return nil, &Error{"missing", errors.New("no bearer token")}
		}
		return nil, nil
	}
	id, err := a.Bearer.Authenticate(r.Context(), raw)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, &Error{"invalid", err}
	}
	return id, nil
}
