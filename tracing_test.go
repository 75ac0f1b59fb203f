package meshauth

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestTracing runs the service with the standard OTEL_* variables pointing
// at an in-process OTLP/HTTP receiver, and finds the spans of a login: the
// GraphQL operation, the store call under it, and the caller's trace id.
func TestTracing(t *testing.T) {
	var (
		mu    sync.Mutex
		spans = map[string][]byte{} // name -> trace id
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[s.Name] = s.TraceId
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer receiver.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

	base, stop := startRun(t, map[string]string{"APP_ENV": "development", "DATA_DIR": t.TempDir(), "LOG_LEVEL": "error"})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"query":"mutation { generateCustomerToken(email: \"` + demoEmail + `\", password: \"` + demoPassword + `\") { token } }"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := stop(); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"graphql.generateCustomerToken", "store.create"} {
		id, ok := spans[name]
		if !ok {
			t.Errorf("no %s span among %d", name, len(spans))
			continue
		}
		if got := hex.EncodeToString(id); got != traceID {
			t.Errorf("%s in trace %s, want the caller's %s", name, got, traceID)
		}
	}
}
