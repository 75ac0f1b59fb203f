// Package server is the HTTP side: routes (GraphQL, health, JWKS, metrics,
// GraphiQL), CORS, the client's address and request ids, and the
// http.Server. Everything GraphQL is in package graph.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/meshauth/meshauth/graph"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/server/graphiql"
	"github.com/meshauth/meshauth/internal/telemetry"
)

// DefaultMaxBodyBytes bounds a GraphQL request body unless Options say otherwise.
const DefaultMaxBodyBytes = 64 << 10

// Options configure the HTTP handler.
type Options struct {
	// GraphQL serves /graphql (graph.NewHandler).
	GraphQL http.Handler
	Log     *slog.Logger
	// Playground serves the GraphiQL page at / and its files under
	// /graphiql/, all embedded in the binary (development only).
	Playground bool
	// Ready reports whether the service can serve (the store is reachable).
	Ready func(ctx context.Context) error
	// JWKS is the document served at /.well-known/jwks.json.
	JWKS []byte
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler

	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// CORSOrigins are the origins browsers may call from; none when empty.
	CORSOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

// Handler returns every route of the service.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	mux.Handle("/graphql", noStore(cors(o.CORSOrigins, withClient(o.TrustedProxies, limitBody(maxBody, o.GraphQL)))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	jwks := o.JWKS
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
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Playground {
		explorer := graphiql.Handler()
		mux.Handle("GET /{$}", explorer)
		mux.Handle("GET "+graphiql.Prefix, explorer)
	}
	return withRequestID(mux)
}

// noStore marks every answer as not to be stored by any cache (RFC 9111
// section 5.2.2.5): answers carry access and refresh tokens (RFC 6749
// section 5.1 asks the same of token responses) and per-customer data.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds the request body to max bytes. A body announced larger
// is answered 413 with a coded error at once, unread; one that turns out
// larger as it arrives is refused by the GraphQL transport as soon as the
// limit is passed (net/http then closes the connection after the answer).
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			graph.WriteBodyTooLarge(w, max)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
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
		ctx := telemetry.Propagated(r.Context(), propagation.HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(telemetry.WithRequestID(ctx, id)))
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
// the Authorization header for the operations that need an access token,
// and the request and response for the refresh-token cookie.
// The address is the connection's peer, unless that peer is a trusted proxy:
// then it is the right-most address in X-Forwarded-For that is not a trusted
// proxy itself, since only what trusted hops appended can be believed.
func withClient(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := auth.WithClient(r.Context(), auth.Client{UserAgent: r.UserAgent(), IP: clientIP(r, trusted)})
		ctx = auth.WithAuthorization(ctx, r.Header.Get("Authorization"))
		next.ServeHTTP(w, r.WithContext(graph.WithHTTP(ctx, w, r)))
	})
}

func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr) {
		return addr.String()
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: believe nothing before it
		}
		addr = a.Unmap()
		if !isTrusted(addr) {
			break
		}
	}
	return addr.String()
}

// cors answers browsers calling from an allowed origin (exact match) and
// their preflight requests. Other origins get no CORS headers, so browsers
// withhold the response from them.
func cors(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if !allowed[origin] {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "X-Request-Id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-Id, "+graph.CSRFHeader)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Timeouts bound the phases of a request.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are the HTTP server's timeouts unless configured.
var DefaultTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 15 * time.Second, Idle: 60 * time.Second}

// New returns an http.Server with timeouts on every phase of a request.
func New(addr string, h http.Handler, log *slog.Logger, t Timeouts) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
