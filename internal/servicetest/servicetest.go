// Package servicetest starts the whole service for tests through the one
// wiring the binary uses (meshauth.New): a test changes the environment or
// the options, never the assembly.
package servicetest

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

// Test secrets, at least 32 bytes each and distinct.
const (
	JWTSecret     = "jwt-secret-jwt-secret-jwt-secret-jwt"
	RefreshSecret = "refresh-secret-refresh-secret-refresh-secret"
)

// Env is the baseline environment: production, the in-memory store, test
// secrets and debug-level JSON logs. Start overlays a test's own variables.
func Env() map[string]string {
	return map[string]string{
		"APP_ENV":              "production",
		"STORE":                "memory",
		"JWT_PRIVATE_KEY":      JWTSecret,
		"REFRESH_TOKEN_SECRET": RefreshSecret,
		"LOG_LEVEL":            "debug",
		"LOG_FORMAT":           "json",
	}
}

// Clock is a settable clock for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at now, truncated to the second.
func NewClock() *Clock { return &Clock{t: time.Now().Truncate(time.Second)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Logs collects log output safely from concurrent writers.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }

// String returns everything logged so far.
func (l *Logs) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// Service is a running service.
type Service struct {
	URL string
	// Handler is the service's handler, for callers that skip the network.
	Handler http.Handler
	Clock   *Clock
	Logs    *Logs
	// Metrics is the metrics listener's URL when METRICS_ADDR moves it.
	Metrics string
}

// Start assembles the service with meshauth.New from Env overlaid with env
// (a variable set to "" is removed) and serves it on a loopback port until
// the test ends. Unless o sets them, the clock is a Clock and the logs go to
// Logs.
func Start(t testing.TB, env map[string]string, o meshauth.Options) *Service {
	t.Helper()
	e := Env()
	maps.Copy(e, env)
	for k, v := range e {
		if v == "" {
			delete(e, k)
		}
	}
	s := &Service{Clock: NewClock(), Logs: &Logs{}}
	o.Getenv = func(k string) string { return e[k] }
	if o.Now == nil {
		o.Now = s.Clock.Now
	}
	if o.LogWriter == nil {
		o.LogWriter = s.Logs
	}
	svc, err := meshauth.New(context.Background(), o)
	if err != nil {
		t.Fatalf("meshauth.New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	s.URL, s.Handler = srv.URL, svc.Handler()
	if m := svc.MetricsHandler(); m != nil {
		ms := httptest.NewServer(m)
		t.Cleanup(ms.Close)
		s.Metrics = ms.URL
	}
	return s
}

// DynamoDBLocal returns DynamoDB Local's endpoint (storetest.DynamoDBLocal:
// it skips the test without one, or fails it under CI=true) with this
// process's AWS credentials set to DynamoDB Local's.
func DynamoDBLocal(t testing.TB) string {
	t.Helper()
	ep := storetest.DynamoDBLocal(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	return ep
}
