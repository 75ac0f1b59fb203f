package telemetry

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTracingRequested(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set: off", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"exporter otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, false},
		{"SDK disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TracingRequested(func(k string) string { return tc.env[k] }); got != tc.want {
				t.Fatalf("TracingRequested = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSpansWithTracingOff: with tracing off, a store call makes no span of
// its own and leaves a span the caller owns alone (neither ended nor
// given a status), even one that records.
func TestSpansWithTracingOff(t *testing.T) {
	if tracing.Load() {
		t.Skip("tracing was started in this process")
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ctx, parent := tp.Tracer("caller").Start(context.Background(), "caller")

	inner, done := New().storeCall(ctx, "rotate")
	if trace.SpanFromContext(inner) != parent {
		t.Fatal("the store call put a span of its own in the context")
	}
	done(errors.New("boom"))
	if !parent.IsRecording() {
		t.Fatal("the store call ended the caller's span")
	}
	parent.End()
	ended := rec.Ended()
	if len(ended) != 1 || ended[0].Status().Code != codes.Unset || len(ended[0].Attributes()) != 0 {
		t.Fatalf("the caller's span was changed: %d spans ended, status %v, attributes %v", len(ended), ended[0].Status(), ended[0].Attributes())
	}
}
