package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-gateway/portero/audit"
)

// notifier calls the master-access webhooks in the background: a bounded
// queue, one worker, a timeout per call and a few retries with backoff. It
// never blocks the caller; a full queue or a call that keeps failing is
// logged and counted in portero_notify_failures_total.
type notifier struct {
	global  string
	tenants map[string]string
	client  *http.Client
	queue   chan notification
	backoff []time.Duration
	fails   prometheus.Counter
	log     *slog.Logger
}

type notification struct {
	url string
	rec audit.Record
}

const notifyQueue = 1000

func newNotifier(global string, tenants map[string]string, timeout time.Duration, fails prometheus.Counter, log *slog.Logger) *notifier {
	return &notifier{global: global, tenants: tenants, client: &http.Client{Timeout: timeout},
		queue: make(chan notification, notifyQueue), backoff: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
		fails: fails, log: log}
}

// send queues the record for the tenant's webhook (or the global one).
func (n *notifier) send(tenant string, rec audit.Record) {
	if n == nil {
		return
	}
	url := n.tenants[tenant]
	if url == "" {
		url = n.global
	}
	if url == "" || (rec.Event != audit.EventStart && rec.Event != audit.EventEnd && rec.Event != audit.EventExpire && rec.Event != audit.EventRevoke) {
		return
	}
	select {
	case n.queue <- notification{url: url, rec: rec}:
	default:
		n.fails.Inc()
		n.log.Warn("master access webhook queue full; notification dropped", "id", rec.ID, "event", rec.Event)
	}
}

// run delivers queued notifications until ctx ends.
func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n.queue:
			n.deliver(ctx, msg)
		}
	}
}

func (n *notifier) deliver(ctx context.Context, msg notification) {
	body, _ := json.Marshal(map[string]any{
		"event": msg.rec.Event, "master_access_id": msg.rec.ID, "admin": msg.rec.Admin, "tenant": msg.rec.Tenant,
		"reason": msg.rec.Reason, "ticket": msg.rec.Ticket, "mode": msg.rec.Mode, "expires": msg.rec.Expires,
		"time": msg.rec.Time, "by": msg.rec.By,
	})
	var err error
	for attempt := 0; ; attempt++ {
		if err = n.post(ctx, msg.url, body); err == nil {
			return
		}
		if attempt >= len(n.backoff) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(n.backoff[attempt]):
		}
	}
	n.fails.Inc()
	n.log.Warn("master access webhook failed", "id", msg.rec.ID, "event", msg.rec.Event, "error", err.Error())
}

func (n *notifier) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "portero-master-access-webhook")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
