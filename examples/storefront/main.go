// Command storefront serves the demo storefront page and proxies /graphql to
// meshauth, so that the page and the API share one origin: the SameSite=Strict
// refresh-token cookie then flows with no CORS setup. Standard library only.
//
//	APP_ENV=development REFRESH_TOKEN_COOKIE=true REFRESH_TOKEN_COOKIE_SECURE=false make run
//	go run ./examples/storefront -addr 127.0.0.1:8080 -meshauth http://127.0.0.1:4000
//
// then open http://127.0.0.1:8080/ (README.md beside this file).
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

//go:embed index.html app.js
var static embed.FS

// contentSecurityPolicy allows the page's own script and API only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; " +
	"style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

func main() {
	addr := flag.String("addr", envOr("STOREFRONT_ADDR", "127.0.0.1:8080"), "address to listen on (env STOREFRONT_ADDR)")
	upstream := flag.String("meshauth", envOr("MESHAUTH_URL", "http://127.0.0.1:4000"), "meshauth base URL; /graphql is proxied to it (env MESHAUTH_URL)")
	flag.Parse()
	if err := run(*addr, *upstream); err != nil {
		log.Fatalf("storefront: %v", err)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func run(addr, upstream string) error {
	target, err := parseUpstream(upstream)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           Handler(target),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	log.Printf("storefront: http://%s/ (proxying /graphql to %s)", ln.Addr(), target)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// parseUpstream accepts meshauth's base URL, with or without /graphql.
func parseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-meshauth %q: want an http(s) URL such as http://127.0.0.1:4000", s)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/graphql")
	u.RawPath = ""
	return u, nil
}

// Handler serves the page at / and /app.js, and proxies /graphql to meshauth
// at target. Cookie and Set-Cookie headers pass through unchanged, so the
// refresh-token cookie, host-only, belongs to the storefront's origin.
func Handler(target *url.URL) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)  // Host becomes meshauth's; path stays /graphql
			r.SetXForwarded() // believed only if meshauth lists this proxy in TRUSTED_PROXIES
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Printf("storefront: proxying %s %s: %v", r.Method, r.URL.Path, err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`{"errors":[{"message":"meshauth could not be reached.","extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]}`))
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/graphql", proxy)
	mux.Handle("GET /{$}", page(static, "index.html", "text/html; charset=utf-8"))
	mux.Handle("GET /app.js", page(static, "app.js", "text/javascript; charset=utf-8"))
	// No icon: 204 instead of a 404 that browsers would log as an error.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

// page serves one embedded file with headers that keep the page to itself.
func page(files fs.FS, name, contentType string) http.Handler {
	body, err := fs.ReadFile(files, name)
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		_, _ = w.Write(body)
	})
}
