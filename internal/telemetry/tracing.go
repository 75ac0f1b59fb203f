package telemetry

import (
	"context"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

var (
	tracer = otel.Tracer("github.com/meshauth/meshauth")
	// tracing is set once StartTracing has installed an exporter; until
	// then starting a span costs nothing.
	tracing atomic.Bool
	noSpan  = trace.SpanFromContext(context.Background())
)

// TracingRequested reports whether the standard OpenTelemetry environment
// asks for traces: an OTLP endpoint, or OTEL_TRACES_EXPORTER=otlp, and not
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func TracingRequested(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// StartTracing installs an OTLP/HTTP trace exporter configured by the
// standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout),
// sampling by OTEL_TRACES_SAMPLER, and the W3C trace-context propagator. The
// returned function flushes and stops it. Without tracing, every span the
// service starts is a no-op.
func StartTracing(ctx context.Context, version string) (func(context.Context) error, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("meshauth"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, err
	}
	// resource.Default reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
	// set last, they win over the defaults above.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracing.Store(true)
	return tp.Shutdown, nil
}

// Propagated returns ctx carrying the caller's trace context (traceparent)
// from header, when tracing is on.
func Propagated(ctx context.Context, header propagation.TextMapCarrier) context.Context {
	if !tracing.Load() {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, header)
}

// startSpan starts the span prefix+name, with name as the attribute key;
// with tracing off it returns ctx and the no-op span, allocating nothing.
func startSpan(ctx context.Context, prefix, name string, key attribute.Key) (context.Context, trace.Span) {
	if !tracing.Load() {
		// The no-op span, never the caller's (which its owner ends).
		return ctx, noSpan
	}
	return tracer.Start(ctx, prefix+name, trace.WithAttributes(key.String(name)))
}
