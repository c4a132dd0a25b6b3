// Package opamgmt connects Portero to OPA's management APIs, with OPA's own
// machinery: policy from a bundle server (download.Downloader: ETag
// polling, long polling, signature verification), decision logs to a
// collector (the decision_logs plugin: batched, gzipped, bounded buffer)
// and status reports (the status plugin), all on one plugins.Manager that
// holds the services, their credentials, the signing keys and the labels.
//
// OPA's machinery fetches and reports; it never activates a policy. A
// downloaded bundle's modules and data are offered to policy.Engine, which
// compiles them completely, runs their tests (policy.require_tests) and
// swaps them in atomically, or refuses them and keeps serving the last
// good policy, as it does for a directory.
package opamgmt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/plugins/status"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/policy"
)

// Service is one OPA service: a base URL and its credentials.
type Service struct {
	URL string
	// Token is sent as "Authorization: Bearer <token>"; empty sends none.
	Token string
	// CAFile, when set, is the only CA trusted for the service's TLS.
	CAFile string
}

// Options configure the management APIs; each of Bundle, DecisionLogs and
// Status is off when nil.
type Options struct {
	// ID labels this gateway in status reports and decision logs
	// (labels.id); empty: random per process, as OPA's.
	ID string
	// Version is Portero's version (labels.portero_version; labels.version
	// is OPA's, as collectors expect).
	Version      string
	Bundle       *BundleOptions
	DecisionLogs *LogsOptions
	Status       *StatusOptions
	Registry     prometheus.Registerer
	Log          *slog.Logger

	// manual turns off every loop (tests drive downloads, uploads and
	// reports themselves).
	manual bool
}

// Client is Portero's side of OPA's management APIs.
type Client struct {
	o       Options
	manager *plugins.Manager
	log     *slog.Logger
	bundle  *bundleClient // nil without Bundle
	logs    *logs.Plugin  // nil without DecisionLogs
	status  *status.Plugin
	metrics metrics.Metrics // OPA's, reported in status and read by the drop counter
	// queue holds decisions for the decision_logs plugin (logs.go);
	// queueDrops counts those it had no room for.
	queue      chan queued
	queueDrops atomic.Int64

	stopOnce sync.Once
	stop     context.CancelFunc
	done     sync.WaitGroup
}

// Service names in the manager's configuration.
const (
	bundleService = "bundle"
	logsService   = "decision_logs"
	statusService = "status"
)

// New builds the manager and the plugins the options ask for; nothing is
// contacted until NewEngine (the first bundle) or Start.
func New(o Options) (*Client, error) {
	if o.ID == "" {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		o.ID = hex.EncodeToString(id)
	}
	raw, err := managerConfig(o)
	if err != nil {
		return nil, err
	}
	l := &opaLogger{log: o.Log}
	m, err := plugins.New(raw, o.ID, inmem.New(), plugins.Logger(l), plugins.ConsoleLogger(l),
		plugins.WithParserOptions(parserOptions))
	if err != nil {
		return nil, fmt.Errorf("opa management: %w", err)
	}
	c := &Client{o: o, manager: m, log: o.Log, metrics: metrics.New()}
	if o.Status != nil {
		cfg, err := status.NewConfigBuilder().WithBytes(mustJSON(map[string]any{"service": statusService})).
			WithServices(m.Services()).WithTriggerMode(c.trigger()).Parse()
		if err != nil {
			return nil, fmt.Errorf("opa management: status: %w", err)
		}
		c.status = status.New(cfg, m).WithMetrics(c.metrics)
		m.Register(status.Name, c.status)
	}
	if o.DecisionLogs != nil {
		if c.logs, err = newLogsPlugin(m, *o.DecisionLogs, c.trigger()); err != nil {
			return nil, err
		}
		c.logs.WithMetrics(c.metrics)
		c.queue = make(chan queued, recordQueue)
		m.Register(logs.Name, c.logs)
		o.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portero_decision_logs_dropped_total",
			Help: "Decisions not sent to the decision-log collector (policy.decision_logs): the buffer was full (the collector down or slow), or a rate limit.",
		}, c.dropped))
	}
	if o.Bundle != nil {
		if c.bundle, err = newBundleClient(c, *o.Bundle); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// trigger is OPA's trigger mode for every plugin: periodic, or manual in
// tests.
func (c *Client) trigger() *plugins.TriggerMode {
	t := plugins.TriggerPeriodic
	if c.o.manual {
		t = plugins.TriggerManual
	}
	return &t
}

// managerConfig is the manager's configuration (OPA's config file format):
// the services with their credentials, the bundle signing key, the labels.
func managerConfig(o Options) ([]byte, error) {
	services := map[string]any{}
	add := func(name string, s Service) {
		svc := map[string]any{"url": s.URL}
		if s.Token != "" {
			svc["credentials"] = map[string]any{"bearer": map[string]any{"token": s.Token}}
		}
		if s.CAFile != "" {
			svc["tls"] = map[string]any{"ca_cert": s.CAFile}
		}
		services[name] = svc
	}
	cfg := map[string]any{"labels": map[string]string{"portero_version": o.Version}}
	if b := o.Bundle; b != nil {
		add(bundleService, b.Service)
		if b.Signing != nil {
			cfg["keys"] = map[string]any{b.Signing.KeyID: map[string]any{
				"key": string(b.Signing.PublicKey), "algorithm": b.Signing.Algorithm, "scope": b.Signing.Scope}}
		}
	}
	if o.DecisionLogs != nil {
		add(logsService, o.DecisionLogs.Service)
	}
	if o.Status != nil {
		add(statusService, o.Status.Service)
	}
	if len(services) == 0 {
		return nil, errors.New("opa management: nothing configured")
	}
	cfg["services"] = services
	return json.Marshal(cfg)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Start starts the plugins (decision logs, status) and, with a bundle,
// polling the bundle server. NewEngine must have run first when there is
// a bundle.
func (c *Client) Start(ctx context.Context) error {
	if err := c.manager.Start(ctx); err != nil {
		return fmt.Errorf("opa management: start: %w", err)
	}
	ctx, c.stop = context.WithCancel(ctx)
	if c.queue != nil {
		c.done.Add(1)
		go c.handOver(ctx)
	}
	if c.bundle != nil {
		c.bundle.mu.Lock()
		c.bundle.reportStatus() // the first report names the bundle served
		c.bundle.mu.Unlock()
		c.bundle.start(ctx)
	}
	if c.status != nil && c.o.Status.Interval > 0 && !c.o.manual {
		c.done.Add(1)
		go func() {
			defer c.done.Done()
			c.reportEvery(ctx, c.o.Status.Interval)
		}()
	}
	return nil
}

// reportEvery sends a status report every interval, besides those on every
// bundle change.
func (c *Client) reportEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.status.Trigger(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("opa status report failed", "service", c.o.Status.Service.URL, "error", err.Error())
			}
		}
	}
}

// Stop stops polling, uploads the decisions still buffered and sends a
// last status report, within ctx's deadline.
func (c *Client) Stop(ctx context.Context) {
	c.stopOnce.Do(func() {
		if c.queue != nil && c.stop != nil {
			_ = c.handedOver(ctx) // what the gateway recorded before it drained
		}
		if c.stop != nil {
			c.stop()
		}
		if c.bundle != nil {
			c.bundle.stopPolling(ctx)
		}
		c.done.Wait()
		c.manager.Stop(ctx) // uploads what the plugin buffered, within ctx
	})
}

// Labels are the labels sent with every report and decision ({id,
// version, portero_version}).
func (c *Client) Labels() map[string]string { return c.manager.Labels() }

// opaLogger writes OPA's log lines to Portero's log: OPA's routine lines
// ("Logs uploaded successfully.") at debug, its errors as warnings (Portero
// logs the failures that matter itself, with their context).
type opaLogger struct {
	log    *slog.Logger
	fields []any
}

func (l *opaLogger) Debug(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...), l.fields...) }
func (l *opaLogger) Info(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...), l.fields...) }
func (l *opaLogger) Warn(f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...), l.fields...) }
func (l *opaLogger) Error(f string, a ...any) { l.log.Warn(fmt.Sprintf(f, a...), l.fields...) }

func (l *opaLogger) WithFields(fields map[string]any) logging.Logger {
	out := &opaLogger{log: l.log, fields: append([]any{}, l.fields...)}
	for k, v := range fields {
		out.fields = append(out.fields, "opa_"+k, v)
	}
	return out
}

func (l *opaLogger) GetLevel() logging.Level {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return logging.Debug
	}
	return logging.Warn
}

func (l *opaLogger) SetLevel(logging.Level) {}

var _ policy.DecisionRecorder = (*Client)(nil)
