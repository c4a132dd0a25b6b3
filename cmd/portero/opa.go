package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/policy"
	"github.com/portero-gateway/portero/policy/opamgmt"
	"github.com/portero-gateway/portero/proxy"
)

// newPolicyEngine builds the policy engine as o says, or, with
// policy.bundle, from the bundle server (o's source aside). It also
// returns the client of OPA's management APIs when policy.bundle,
// policy.decision_logs or policy.status is set (else nil), which
// startOPAManagement starts once the gateway exists.
func newPolicyEngine(ctx context.Context, cfg *config.Config, o policy.EngineOptions, reg prometheus.Registerer, log *slog.Logger) (*policy.Engine, *opamgmt.Client, error) {
	p := cfg.Policy
	if !p.OPAManagement() {
		e, err := policy.NewEngineWith(ctx, o)
		return e, nil, err
	}
	mo := opaOptions(cfg, o, reg, log)
	m, err := opamgmt.New(mo)
	if err != nil {
		return nil, nil, err
	}
	var e *policy.Engine
	if mo.Bundle != nil {
		e, err = m.NewEngine(ctx)
	} else {
		e, err = policy.NewEngineWith(ctx, o)
	}
	if err != nil {
		return nil, nil, err
	}
	return e, m, nil
}

// offlinePolicySource is the policy the commands that load it without
// serving read (check, eval, explain, admin): policy.dir or the embedded
// one, or with policy.bundle the bundle a gateway last served and
// persisted.
func offlinePolicySource(cfg *config.Config) (policy.Source, error) {
	if cfg.Policy.Bundle == nil {
		return policySource(cfg), nil
	}
	o := opaOptions(cfg, policy.EngineOptions{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	o.DecisionLogs, o.Status = nil, nil
	m, err := opamgmt.New(o)
	if err != nil {
		return policy.Source{}, err
	}
	return m.PersistedSource()
}

// opaOptions are the options of OPA's management APIs gateway.yaml sets.
func opaOptions(cfg *config.Config, o policy.EngineOptions, reg prometheus.Registerer, log *slog.Logger) opamgmt.Options {
	p := cfg.Policy
	mo := opamgmt.Options{Version: version(), Registry: reg, Log: log}
	if b := p.Bundle; b != nil {
		bo := &opamgmt.BundleOptions{
			Service:  opamgmt.Service{URL: b.URL, Token: b.Token, CAFile: b.CAFile},
			Resource: b.Resource, MinDelay: b.MinDelay, MaxDelay: b.MaxDelay, LongPollTimeout: b.LongPollingTimeout,
			PersistDir: b.PersistDir, StartTimeout: b.StartTimeout, Engine: o,
		}
		if s := b.Signing; s != nil {
			bo.Signing = &opamgmt.SigningKey{KeyID: s.KeyID, PublicKey: s.PublicKey, Algorithm: s.Algorithm, Scope: s.Scope}
		}
		mo.Bundle = bo
	}
	if d := p.DecisionLogs; d != nil {
		mo.DecisionLogs = &opamgmt.LogsOptions{Service: opamgmt.Service{URL: d.URL, Token: d.Token, CAFile: d.CAFile},
			Resource: d.Resource, MinDelay: d.MinDelay, MaxDelay: d.MaxDelay, BufferEvents: d.BufferEvents, UploadBytes: d.UploadBytes}
	}
	if s := p.Status; s != nil {
		mo.Status = &opamgmt.StatusOptions{Service: opamgmt.Service{URL: s.URL, Token: s.Token, CAFile: s.CAFile}, Interval: s.Interval}
	}
	return mo
}

// startOPAManagement starts polling the bundle server, the decision-log
// uploads and the status reports, and hands the gateway's decisions to
// the collector with policy.decision_logs. It returns how to stop them,
// after the servers have drained: the last decisions uploaded and a last
// status report sent, within grace.
func startOPAManagement(ctx context.Context, m *opamgmt.Client, cfg *config.Config, gw *proxy.Gateway, log *slog.Logger) (stop func(), err error) {
	if m == nil {
		return func() {}, nil
	}
	if cfg.Policy.DecisionLogs != nil {
		gw.SetDecisionRecorder(m)
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	log.Info("opa management on", "labels", m.Labels(), "bundle", cfg.Policy.Bundle != nil,
		"decision_logs", cfg.Policy.DecisionLogs != nil, "status", cfg.Policy.Status != nil)
	grace := cfg.Listen.ShutdownTimeout
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		start := time.Now()
		m.Stop(sctx)
		log.Info("opa management stopped", "ms", time.Since(start).Milliseconds())
	}, nil
}
