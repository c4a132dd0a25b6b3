package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portero-gateway/portero/config"
	"github.com/portero-gateway/portero/internal/testlog"
)

func TestOffIsNil(t *testing.T) {
	p, err := New(config.Tracing{}, "v", slog.New(slog.DiscardHandler))
	if err != nil || p != nil {
		t.Fatalf("tracing off: %v, %v", p, err)
	}
	if p.TracerProvider() != nil || p.Shutdown(context.Background()) != nil {
		t.Error("a nil Provider is not tracing off")
	}
}

type syncBuffer = testlog.Buffer

// A collector that refuses the spans: the gateway's log says so (with the
// endpoint and the count, never the headers), and shutdown still returns.
func TestRefusedExportIsLogged(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad key", http.StatusBadRequest) // not retried
	}))
	defer collector.Close()
	logs := &syncBuffer{}
	cfg := config.Tracing{Endpoint: collector.URL + "/v1/traces", ServiceName: "portero", Timeout: 5 * time.Second,
		Headers: map[string]string{"X-Api-Key": "s3cret"}}
	p, err := New(cfg, "v", slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider().Tracer("test").Start(context.Background(), "request")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := logs.String()
	if !strings.Contains(got, "tracing: spans not exported") || !strings.Contains(got, `"spans":1`) || !strings.Contains(got, collector.URL) {
		t.Errorf("log: %s", got)
	}
	if strings.Contains(got, "s3cret") {
		t.Error("the export header's value was logged")
	}
}
