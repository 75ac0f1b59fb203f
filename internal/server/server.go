// Package server is the HTTP side: routes, middleware and the http.Server.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshauth/meshauth/graph"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/telemetry"
)

// MaxBodyBytes bounds a GraphQL request body.
const MaxBodyBytes = 64 << 10

// Options configure the HTTP handler.
type Options struct {
	Auth *auth.Service
	Log  *slog.Logger
	// Playground serves the GraphiQL page at / (development only).
	Playground bool
	// Introspection allows introspection queries.
	Introspection bool
	// Ready reports whether the service can serve (the store is reachable).
	Ready func(ctx context.Context) error
	// Metrics, when set, counts GraphQL operations; with MetricsRoute it is
	// also served at /metrics.
	Metrics      *telemetry.Metrics
	MetricsRoute bool
}

// GraphQL returns the GraphQL handler over the real schema.
func GraphQL(o Options) http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{Auth: o.Auth}}))
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(unsupported{})
	if o.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(graph.FederationSDL{})
	}
	srv.AroundFields(graph.PublicSchema(o.Auth.DevTools))
	if o.Metrics != nil {
		srv.AroundFields(o.Metrics.Operations())
	}
	srv.SetErrorPresenter(graph.ErrorPresenter(o.Log))
	srv.SetRecoverFunc(graph.Recover(o.Log))
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	return srv
}

// Handler returns every route of the service.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/graphql", withClient(http.MaxBytesHandler(GraphQL(o), MaxBodyBytes)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	jwks := o.Auth.Signer.JWKS()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(jwks)
	})
	if o.Ready != nil {
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "application/json")
			if err := o.Ready(ctx); err != nil {
				o.Log.LogAttrs(ctx, slog.LevelWarn, "not ready", slog.String("cause", err.Error()))
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"status":"unavailable"}`))
				return
			}
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		})
	}
	if o.Metrics != nil && o.MetricsRoute {
		mux.Handle("GET /metrics", o.Metrics.Handler())
	}
	if o.Playground {
		mux.Handle("GET /{$}", playground.Handler("meshauth", "/graphql"))
	}
	return withRequestID(mux)
}

// withRequestID gives every request an id: the caller's X-Request-Id when it
// is a short printable token, otherwise a random one. The id is echoed in the
// response header and carried in the context, so every log line of the
// request names it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(telemetry.WithRequestID(r.Context(), id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// withClient records the caller's user agent and address for the session,
// and the Authorization header for the operations that need an access token.
func withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		ctx := auth.WithClient(r.Context(), auth.Client{UserAgent: r.UserAgent(), IP: ip})
		next.ServeHTTP(w, r.WithContext(auth.WithAuthorization(ctx, r.Header.Get("Authorization"))))
	})
}

// New returns an http.Server with timeouts on every phase of a request.
func New(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// unsupported answers requests no other transport takes (a wrong method or
// content type) with a coded error instead of gqlgen's uncoded one.
type unsupported struct{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, _ *http.Request, _ graphql.GraphExecutor) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnsupportedMediaType)
	_, _ = w.Write([]byte(`{"errors":[{"message":"Send GraphQL as POST with Content-Type: application/json, or as GET with a query parameter.","extensions":{"code":"BAD_USER_INPUT","category":"graphql-input"}}]}`))
}
