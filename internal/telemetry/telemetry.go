// Package telemetry is what operators see of the service: Prometheus
// metrics, and the request id and audit counting woven into the logs.
package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/store"
)

// Metrics holds the service's Prometheus metrics in a registry of its own.
type Metrics struct {
	registry *prometheus.Registry

	operations        *prometheus.CounterVec
	operationDuration *prometheus.HistogramVec
	storeCalls        *prometheus.CounterVec
	storeDuration     *prometheus.HistogramVec
	upstreamCalls     *prometheus.CounterVec
	upstreamDuration  prometheus.Histogram
	auditEvents       *prometheus.CounterVec
}

// New registers the metrics, the Go runtime's and the process's.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Latency buckets from 0.5 ms to 2.5 s: a refresh on the embedded store
	// takes well under a millisecond, a login with an upstream platform
	// hundreds of milliseconds.
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		registry: r,
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshauth_graphql_operations_total",
			Help: "GraphQL root fields resolved, by field and result code (OK or an error code).",
		}, []string{"operation", "code"}),
		operationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshauth_graphql_operation_duration_seconds", Help: "Time to resolve a GraphQL root field.", Buckets: buckets,
		}, []string{"operation"}),
		storeCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshauth_store_calls_total",
			Help: "Session store calls, by call and result (ok, not_found, conflict, exists, unavailable, error).",
		}, []string{"call", "result"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshauth_store_call_duration_seconds", Help: "Time of a session store call.", Buckets: buckets,
		}, []string{"call"}),
		upstreamCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshauth_login_upstream_calls_total",
			Help: "Credential checks with the login provider, by result (ok, invalid_credentials, error).",
		}, []string{"result"}),
		upstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshauth_login_upstream_duration_seconds", Help: "Time of a credential check with the login provider.", Buckets: buckets,
		}),
		auditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshauth_audit_events_total",
			Help: "Audit events by event: login.succeeded, login.failed, refresh, refresh.grace, refresh.reuse_detected, logout, sessions.revoked, login.rate_limited.",
		}, []string{"event"}),
	}
	r.MustRegister(m.operations, m.operationDuration, m.storeCalls, m.storeDuration, m.upstreamCalls, m.upstreamDuration, m.auditEvents)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Operations is a gqlgen field middleware that counts, times and traces the
// root fields of queries and mutations, by field name (a bounded set: unknown
// fields never pass validation) and result code.
func (m *Metrics) Operations() graphql.FieldMiddleware {
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || (fc.Object != "Query" && fc.Object != "Mutation") {
			return next(ctx)
		}
		name := fc.Field.Name
		start := time.Now()
		ctx, span := startSpan(ctx, "graphql.", name, "graphql.operation.field")
		defer span.End()
		res, err := next(ctx)
		code := "OK"
		if err != nil {
			code = string(auth.CodeOf(err))
		}
		if span.IsRecording() {
			if err != nil {
				span.SetStatus(codes.Error, code)
			}
			span.SetAttributes(attribute.String("meshauth.code", code))
		}
		m.operationDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		m.operations.WithLabelValues(name, code).Inc()
		return res, err
	}
}

// storeCall starts a store call: a span, and a clock for the metrics. done
// records the call's result.
func (m *Metrics) storeCall(ctx context.Context, call string) (context.Context, func(error)) {
	start := time.Now()
	ctx, span := startSpan(ctx, "store.", call, "store.call")
	return ctx, func(err error) {
		m.storeDuration.WithLabelValues(call).Observe(time.Since(start).Seconds())
		result := "ok"
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNotFound):
			result = "not_found"
		case errors.Is(err, store.ErrConflict):
			result = "conflict"
		case errors.Is(err, store.ErrAlreadyExists):
			result = "exists"
		case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			result = "unavailable"
		default:
			result = "error"
		}
		m.storeCalls.WithLabelValues(call, result).Inc()
		if span.IsRecording() {
			span.SetAttributes(attribute.String("store.result", result))
			if result == "unavailable" || result == "error" {
				span.SetStatus(codes.Error, result)
			}
		}
		span.End()
	}
}

// Store returns s with every call counted, timed and traced.
func (m *Metrics) Store(s store.Store) store.Store { return &meteredStore{Store: s, m: m} }

type meteredStore struct {
	store.Store
	m *Metrics
}

func (s *meteredStore) Create(ctx context.Context, sess store.Session) (err error) {
	ctx, done := s.m.storeCall(ctx, "create")
	defer func() { done(err) }()
	return s.Store.Create(ctx, sess)
}

func (s *meteredStore) Get(ctx context.Context, id string) (_ store.Session, err error) {
	ctx, done := s.m.storeCall(ctx, "get")
	defer func() { done(err) }()
	return s.Store.Get(ctx, id)
}

func (s *meteredStore) Rotate(ctx context.Context, id string, r store.Rotation) (_ store.Session, err error) {
	ctx, done := s.m.storeCall(ctx, "rotate")
	defer func() { done(err) }()
	return s.Store.Rotate(ctx, id, r)
}

func (s *meteredStore) Extend(ctx context.Context, id string, exp time.Time) (_ store.Session, err error) {
	ctx, done := s.m.storeCall(ctx, "extend")
	defer func() { done(err) }()
	return s.Store.Extend(ctx, id, exp)
}

func (s *meteredStore) Delete(ctx context.Context, id string) (_ store.Session, err error) {
	ctx, done := s.m.storeCall(ctx, "delete")
	defer func() { done(err) }()
	return s.Store.Delete(ctx, id)
}

func (s *meteredStore) ListByCustomer(ctx context.Context, customerID string) (_ []store.Session, err error) {
	ctx, done := s.m.storeCall(ctx, "list_by_customer")
	defer func() { done(err) }()
	return s.Store.ListByCustomer(ctx, customerID)
}

func (s *meteredStore) DeleteByCustomer(ctx context.Context, customerID string) (_ int, err error) {
	ctx, done := s.m.storeCall(ctx, "delete_by_customer")
	defer func() { done(err) }()
	return s.Store.DeleteByCustomer(ctx, customerID)
}

func (s *meteredStore) TrimByCustomer(ctx context.Context, customerID string, keep int) (_ int, err error) {
	ctx, done := s.m.storeCall(ctx, "trim_by_customer")
	defer func() { done(err) }()
	return s.Store.TrimByCustomer(ctx, customerID, keep)
}

// Login returns l with every credential check counted and timed.
func (m *Metrics) Login(l login.Service) login.Service { return meteredLogin{l: l, m: m} }

type meteredLogin struct {
	l login.Service
	m *Metrics
}

func (l meteredLogin) Login(ctx context.Context, email, password string) (login.Identity, error) {
	start := time.Now()
	id, err := l.l.Login(ctx, email, password)
	l.m.upstreamDuration.Observe(time.Since(start).Seconds())
	result := "ok"
	switch {
	case errors.Is(err, login.ErrInvalidCredentials):
		result = "invalid_credentials"
	case err != nil:
		result = "error"
	}
	l.m.upstreamCalls.WithLabelValues(result).Inc()
	return id, err
}

// Mapper returns m with every identity lookup counted and timed as a
// login upstream call.
func (m *Metrics) Mapper(im login.IdentityMapper) login.IdentityMapper {
	return meteredMapper{im: im, m: m}
}

type meteredMapper struct {
	im login.IdentityMapper
	m  *Metrics
}

func (mm meteredMapper) MapIdentity(ctx context.Context, ext login.External) (login.Identity, error) {
	start := time.Now()
	id, err := mm.im.MapIdentity(ctx, ext)
	mm.m.upstreamDuration.Observe(time.Since(start).Seconds())
	result := "ok"
	switch {
	case errors.Is(err, login.ErrUnknownCustomer):
		result = "unknown_customer"
	case err != nil:
		result = "error"
	}
	mm.m.upstreamCalls.WithLabelValues(result).Inc()
	return id, err
}

// LogHandler wraps h: every record gets the request id of its context, and
// every audit record ("audit" message) is counted by its event.
func (m *Metrics) LogHandler(h slog.Handler) slog.Handler { return &logHandler{Handler: h, m: m} }

type logHandler struct {
	slog.Handler
	m *Metrics
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if r.Message == "audit" && h.m != nil {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "event" {
				h.m.auditEvents.WithLabelValues(a.Value.String()).Inc()
				return false
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{Handler: h.Handler.WithAttrs(attrs), m: h.m}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{Handler: h.Handler.WithGroup(name), m: h.m}
}

type requestIDKey struct{}

// WithRequestID returns a context carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id of ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Counters returns c with every call counted, timed and traced, as
// "counter_add" and "counter_reserve" store calls.
func (m *Metrics) Counters(c store.Counters) store.Counters { return meteredCounters{c: c, m: m} }

type meteredCounters struct {
	c store.Counters
	m *Metrics
}

func (c meteredCounters) Add(ctx context.Context, l store.Limit, delta int64) (_ []int64, err error) {
	ctx, done := c.m.storeCall(ctx, "counter_add")
	defer func() { done(err) }()
	return c.c.Add(ctx, l, delta)
}

func (c meteredCounters) Reserve(ctx context.Context, l store.Limit) (_ []int64, _ bool, err error) {
	ctx, done := c.m.storeCall(ctx, "counter_reserve")
	defer func() { done(err) }()
	return c.c.Reserve(ctx, l)
}
