package gatewaytest

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPReceiver is an OpenTelemetry collector's OTLP/HTTP traces endpoint
// (POST /v1/traces, protobuf, gzip or not) that keeps what it receives.
type OTLPReceiver struct {
	URL string // the base URL, for tracing.endpoint
	mu  sync.Mutex
	got []ExportedSpan
	hdr []http.Header
}

// ExportedSpan is a span as the receiver decoded it, with its resource's
// service.name.
type ExportedSpan struct {
	*tracepb.Span
	Service string
}

// Attr is the span's attribute key as a string ("" when absent); ints and
// bools are written in Go syntax.
func (s ExportedSpan) Attr(key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return anyValueString(kv.Value)
		}
	}
	return ""
}

func anyValueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		if x.BoolValue {
			return "true"
		}
		return "false"
	}
	return v.String()
}

// NewOTLPReceiver starts the receiver; it stops when the test ends.
func NewOTLPReceiver(t testing.TB) *OTLPReceiver {
	t.Helper()
	rcv := &OTLPReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			t.Errorf("OTLP receiver: %s %s, want POST /v1/traces", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			t.Errorf("OTLP receiver: not an ExportTraceServiceRequest: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		rcv.hdr = append(rcv.hdr, r.Header.Clone())
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					rcv.got = append(rcv.got, ExportedSpan{Span: s, Service: service})
				}
			}
		}
		rcv.mu.Unlock()
		resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	rcv.URL = srv.URL
	return rcv
}

// Spans are the spans received so far.
func (rcv *OTLPReceiver) Spans() []ExportedSpan {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]ExportedSpan(nil), rcv.got...)
}

// Headers are the HTTP headers of each export received so far.
func (rcv *OTLPReceiver) Headers() []http.Header {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]http.Header(nil), rcv.hdr...)
}
