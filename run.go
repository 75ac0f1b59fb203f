package meshauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/meshauth/meshauth/graph"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/config"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/login/bigcommerce"
	"github.com/meshauth/meshauth/internal/login/httplogin"
	"github.com/meshauth/meshauth/internal/login/static"
	"github.com/meshauth/meshauth/internal/oidc"
	"github.com/meshauth/meshauth/internal/server"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/dynamo"
	"github.com/meshauth/meshauth/internal/store/embedded"
	"github.com/meshauth/meshauth/internal/store/memory"
	"github.com/meshauth/meshauth/internal/telemetry"
	"github.com/meshauth/meshauth/internal/token"
)

// The demo user seeded in development when no users file is set. Its
// credentials are public (README); it never exists outside development.
const (
	demoEmail      = "demo@example.com"
	demoPassword   = "demo-password"
	demoCustomerID = "1"
)

// sweepInterval is how often the embedded store deletes expired sessions.
const sweepInterval = time.Minute

// shutdownGrace is how long in-flight requests may take after SIGTERM.
const shutdownGrace = 10 * time.Second

// Run reads the configuration from o.Getenv (os.Getenv when nil), builds the
// service and serves HTTP until ctx is done or the process receives SIGINT or
// SIGTERM. Then it stops accepting connections, lets requests in flight finish
// (up to 10 s) and closes the store. It returns configuration and startup
// errors, all at once where there are several.
func Run(ctx context.Context, o Options) error {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var opts []config.Option
	if o.Login != nil {
		opts = append(opts, config.CustomLogin())
	}
	cfg, err := config.Load(getenv, opts...)
	if err != nil {
		return err
	}
	metrics := telemetry.New()
	log := newLogger(cfg, o.LogWriter, metrics)
	if telemetry.TracingRequested(os.Getenv) {
		stopTracing, err := telemetry.StartTracing(ctx, o.Version)
		if err != nil {
			return fmt.Errorf("OpenTelemetry: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = stopTracing(sctx)
		}()
		log.Info("tracing to the OTLP endpoint of the OTEL_* environment")
	}
	if used, err := config.EnsureDevSecrets(&cfg); err != nil {
		return err
	} else if used {
		log.Warn("development: secrets not set in the environment are kept in DATA_DIR", "file", config.DevSecretsFile)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	backend, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer backend.Close()
	st := metrics.Store(backend)
	// Login limits are counted where every instance can see them: in
	// DynamoDB beside the sessions, or in this process for the embedded store.
	var counters store.Counters = &memory.Counters{}
	if c, ok := backend.(store.Counters); ok {
		counters = c
	}
	counters = metrics.Counters(counters)

	provider := o.Login
	if provider == nil {
		if provider, err = loginProvider(cfg); err != nil {
			return err
		}
	}
	provider = metrics.Login(provider)
	var idTokens auth.IDTokenVerifier
	if len(cfg.IDTokens.Issuers) > 0 {
		v, err := oidc.New(oidc.Options{Issuers: cfg.IDTokens.Issuers, RequireVerifiedEmail: cfg.IDTokens.RequireVerifiedEmail})
		if err != nil {
			return err
		}
		idTokens = auth.OIDC(v)
	}
	signer, err := newSigner(cfg.JWT)
	if err != nil {
		return err
	}
	codec, err := token.NewCodec(cfg.RefreshSecret)
	if err != nil {
		return fmt.Errorf("REFRESH_TOKEN_SECRET: %w", err)
	}
	svc := auth.New(auth.Options{
		Rules:     cfg.Rules,
		DevTools:  cfg.Development(),
		Provider:  provider,
		Sessions:  st,
		Customers: st,
		Signer:    signer,
		Codec:     codec,
		Log:       log,
		AuditKey:  token.DeriveKey(cfg.RefreshSecret, "audit email"),
		Counters:  counters,
		Limits:    cfg.LoginLimits,
		IDTokens:  idTokens,
	})
	h := server.Handler(server.Options{
		Auth:          svc,
		Log:           log,
		Playground:    cfg.Development(),
		Introspection: cfg.Introspection,
		Ready:         st.Ping,
		Metrics:       metrics,
		MetricsRoute:  cfg.MetricsAddr == "",
		MaxBodyBytes:  cfg.HTTP.MaxBodyBytes,
		Limits: graph.Limits{
			MaxDepth: cfg.HTTP.MaxDepth, MaxAliases: cfg.HTTP.MaxAliases, MaxTokenFields: cfg.HTTP.MaxTokenFields,
		},
		MaxComplexity:  cfg.HTTP.MaxComplexity,
		MaxTokens:      cfg.HTTP.MaxTokens,
		CORSOrigins:    cfg.HTTP.CORSOrigins,
		TrustedProxies: cfg.HTTP.TrustedProxies,
		Cookie:         graph.RefreshCookie(cfg.Cookie),
	})
	timeouts := server.Timeouts{
		ReadHeader: cfg.HTTP.ReadHeaderTimeout, Read: cfg.HTTP.ReadTimeout,
		Write: cfg.HTTP.WriteTimeout, Idle: cfg.HTTP.IdleTimeout,
	}

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return err
	}
	srv := server.New(ln.Addr().String(), h, log, timeouts)
	log.Info("meshauth listening", "addr", ln.Addr().String(), "env", cfg.Env, "store", cfg.Store,
		"login_provider", cfg.LoginProvider, "jwt_algorithm", signer.Algorithm(), "version", o.Version)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" && cfg.MetricsAddr != "off" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		msrv := server.New(mln.Addr().String(), mux, log, timeouts)
		defer msrv.Close()
		go func() { errc <- msrv.Serve(mln) }()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "grace", shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer, metrics *telemetry.Metrics) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(metrics.LogHandler(h))
}

func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Store {
	case "dynamodb":
		s, err := openDynamo(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if cfg.Dynamo.CreateTable {
			if err := s.Migrate(ctx); err != nil {
				return nil, fmt.Errorf("create DynamoDB table %s: %w", cfg.Dynamo.Table, err)
			}
			return s, nil
		}
		if err := s.Verify(ctx); errors.Is(err, store.ErrUnavailable) {
			// Serve anyway: /readyz answers 503 until DynamoDB answers.
			log.Warn("DynamoDB is not reachable yet", "table", cfg.Dynamo.Table, "cause", err.Error())
		} else if err != nil {
			return nil, fmt.Errorf("DynamoDB table %s: %w (set DYNAMO_DB_CREATE_TABLE=true or run meshauth migrate to create it)", cfg.Dynamo.Table, err)
		}
		return s, nil
	default:
		s, err := embedded.Open(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.StartSweeper(sweepInterval, time.Now, func(err error) {
			log.Error("sweep expired sessions", "cause", err.Error())
		})
		return s, nil
	}
}

func openDynamo(ctx context.Context, cfg config.Config) (*dynamo.Store, error) {
	return dynamo.New(ctx, dynamo.Options{Table: cfg.Dynamo.Table, Region: cfg.Dynamo.Region, Endpoint: cfg.Dynamo.Endpoint, CallTimeout: cfg.Dynamo.CallTimeout})
}

// Migrate creates the DynamoDB table, its index and its TTL setting if they
// are missing, as configured by the environment (STORE=dynamodb). It is
// idempotent.
func Migrate(ctx context.Context, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := config.Load(getenv, config.CustomLogin())
	if err != nil {
		return err
	}
	if cfg.Store != "dynamodb" {
		return errors.New("migrate: only STORE=dynamodb has a schema to create; the embedded store needs none")
	}
	s, err := openDynamo(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Migrate(ctx)
}

func loginProvider(cfg config.Config) (login.Service, error) {
	switch cfg.LoginProvider {
	case "http":
		return httplogin.New(httplogin.Options{
			URL: cfg.HTTPLogin.URL, HeaderName: cfg.HTTPLogin.HeaderName, HeaderValue: cfg.HTTPLogin.HeaderValue,
			Timeout: cfg.LoginTimeout,
		})
	case "bigcommerce":
		b := cfg.BigCommerce
		return bigcommerce.New(bigcommerce.Options{
			StoreHash: b.StoreHash, XAuthToken: b.XAuthToken, ChannelID: b.ChannelID,
			GraphQLURL: b.GraphQLURL, APIBase: b.APIBase, Timeout: cfg.LoginTimeout,
		})
	}
	if cfg.StaticUsersFile != "" {
		return static.Load(cfg.StaticUsersFile)
	}
	hash, err := static.HashPassword(demoPassword)
	if err != nil {
		return nil, err
	}
	// Printed, not logged: these are the README's public demo credentials.
	fmt.Fprintf(os.Stderr, "development: no STATIC_USERS_FILE, so one demo user exists: %s / %s\n", demoEmail, demoPassword)
	return static.New([]static.User{{Email: demoEmail, CustomerID: demoCustomerID, PasswordHash: hash}})
}

func newSigner(j config.JWT) (*token.Signer, error) {
	if j.Algorithm == "EdDSA" {
		s, err := token.NewEdDSA(j.Ed25519Key, j.KeyID, j.Issuer, j.Audience)
		if err != nil || len(j.ExtraKeys) == 0 {
			return s, err
		}
		return s.WithExtraKeys(j.ExtraKeys)
	}
	return token.NewHS256(j.Secret, j.Issuer, j.Audience)
}
