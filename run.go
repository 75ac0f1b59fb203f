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
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/meshauth/meshauth/graph"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/config"
	"github.com/meshauth/meshauth/internal/legacy"
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

// Service is the assembled service: the one wiring every caller uses. Run
// serves it; tests serve Handler with httptest, configured by the same
// environment and Options as the binary.
type Service struct {
	cfg     config.Config
	log     *slog.Logger
	version string
	handler http.Handler
	// metrics is the /metrics handler when METRICS_ADDR gives it a listener
	// of its own; nil when it is served beside the API or off.
	metrics http.Handler
	closers []func() error
}

// New reads the configuration from o.Getenv (os.Getenv when nil) and
// assembles the service: store, login provider, identity exchange, signer,
// session rules, limits, metrics, tracing and every HTTP route. It returns
// configuration and startup errors, all at once where there are several.
// The caller must Close the Service.
func New(ctx context.Context, o Options) (_ *Service, err error) {
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
		return nil, err
	}
	metrics := telemetry.New()
	s := &Service{cfg: cfg, log: newLogger(cfg, o.LogWriter, metrics), version: o.Version}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	log := s.log
	if telemetry.TracingRequested(os.Getenv) {
		stopTracing, err := telemetry.StartTracing(ctx, o.Version)
		if err != nil {
			return nil, fmt.Errorf("OpenTelemetry: %w", err)
		}
		s.closers = append(s.closers, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return stopTracing(sctx)
		})
		log.Info("tracing to the OTLP endpoint of the OTEL_* environment")
	}
	if used, err := config.EnsureDevSecrets(&cfg); err != nil {
		return nil, err
	} else if used {
		log.Warn("development: secrets not set in the environment are kept in DATA_DIR", "file", config.DevSecretsFile)
	}

	backend, counters, table, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	var legacySessions *auth.Legacy
	if cfg.Legacy.Table != "" {
		verifier, err := legacy.NewVerifier(cfg.Legacy.Secret)
		if err != nil {
			return nil, err
		}
		// Config allows the legacy table only with STORE=dynamodb.
		legacySessions = &auth.Legacy{Verifier: verifier, Rows: table.Legacy(cfg.Legacy.Table)}
		log.Info("sessions of the GraphQL Mesh auth module continue from its table", "table", cfg.Legacy.Table)
	}
	s.closers = append(s.closers, backend.Close)
	st := metrics.Store(backend)
	ready := st.Ping
	if table != nil {
		keeper := &tableKeeper{store: table, name: cfg.Dynamo.Table, create: cfg.Dynamo.CreateTable, ping: st.Ping, log: log}
		s.closers = append(s.closers, keeper.close)
		ready = keeper.ready
	}

	// The identity mapper is passed on its own, taken from the provider
	// before metrics wrap it: a wrapper must never turn exchange off.
	provider, mapper := o.Login, o.Mapper
	if provider == nil {
		if provider, mapper, err = loginProvider(cfg, log, o.Now); err != nil {
			return nil, err
		}
	}
	var idTokens auth.IDTokenVerifier
	if len(cfg.IDTokens.Issuers) > 0 {
		v, err := oidc.New(oidc.Options{Issuers: cfg.IDTokens.Issuers, RequireVerifiedEmail: cfg.IDTokens.RequireVerifiedEmail})
		if err != nil {
			return nil, err
		}
		idTokens = auth.OIDC(v)
		if mapper == nil {
			log.Warn("identity exchange is configured but the login provider cannot map external identities: exchangeIdentityToken answers FORBIDDEN",
				"login_provider", cfg.LoginProvider)
		}
	}
	signer, err := newSigner(cfg.JWT)
	if err != nil {
		return nil, err
	}
	codec, err := token.NewCodec(cfg.RefreshSecret)
	if err != nil {
		return nil, fmt.Errorf("REFRESH_TOKEN_SECRET: %w", err)
	}
	var meteredMapper login.IdentityMapper
	if mapper != nil {
		meteredMapper = metrics.Mapper(mapper)
	}
	svc := auth.New(auth.Options{
		Rules:     cfg.Rules,
		DevTools:  cfg.Development(),
		Provider:  metrics.Login(provider),
		Mapper:    meteredMapper,
		Sessions:  st,
		Customers: st,
		Signer:    signer,
		Codec:     codec,
		Now:       o.Now,
		Log:       log,
		AuditKey:  token.DeriveKey(cfg.RefreshSecret, "audit email"),
		Counters:  metrics.Counters(counters),
		Limits:    cfg.LoginLimits,
		IDTokens:  idTokens,
		Legacy:    legacySessions,
	})
	gql := graph.NewHandler(graph.Options{
		Auth:          svc,
		Log:           log,
		Surface:       graph.Surface{DevTools: cfg.Development(), CustomerEntity: cfg.CustomerEntity},
		Introspection: cfg.Introspection,
		Operations:    metrics.Operations(),
		Limits: graph.Limits{
			MaxDepth: cfg.HTTP.MaxDepth, MaxAliases: cfg.HTTP.MaxAliases, MaxTokenFields: cfg.HTTP.MaxTokenFields,
		},
		MaxComplexity: cfg.HTTP.MaxComplexity,
		MaxTokens:     cfg.HTTP.MaxTokens,
		Cookie:        cfg.Cookie,
	})
	so := server.Options{
		GraphQL:        gql,
		Log:            log,
		Playground:     cfg.Development(),
		Ready:          ready,
		JWKS:           signer.JWKS(),
		MaxBodyBytes:   cfg.HTTP.MaxBodyBytes,
		CORSOrigins:    cfg.HTTP.CORSOrigins,
		TrustedProxies: cfg.HTTP.TrustedProxies,
	}
	switch cfg.MetricsAddr {
	case "":
		so.Metrics = metrics.Handler()
	case "off":
	default:
		s.metrics = metrics.Handler()
	}
	s.handler = server.Handler(so)
	log.Info("meshauth ready", "env", cfg.Env, "store", cfg.Store, "login_provider", cfg.LoginProvider,
		"jwt_algorithm", signer.Algorithm(), "version", o.Version)
	return s, nil
}

// Handler serves every route of the service port: /graphql, health, JWKS,
// /metrics unless METRICS_ADDR moves it, and GraphiQL in development.
func (s *Service) Handler() http.Handler { return s.handler }

// MetricsHandler serves /metrics when METRICS_ADDR gives metrics a listener
// of their own; nil otherwise.
func (s *Service) MetricsHandler() http.Handler { return s.metrics }

// Close releases the store and flushes traces. It is safe to call once.
func (s *Service) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Serve listens on LISTEN_ADDR and PORT (and METRICS_ADDR) and serves until ctx is done or
// the process receives SIGINT or SIGTERM. Then it stops accepting
// connections and lets requests in flight finish (up to 10 s).
func (s *Service) Serve(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, log := s.cfg, s.log
	timeouts := server.Timeouts{
		ReadHeader: cfg.HTTP.ReadHeaderTimeout, Read: cfg.HTTP.ReadTimeout,
		Write: cfg.HTTP.WriteTimeout, Idle: cfg.HTTP.IdleTimeout,
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	srv := server.New(ln.Addr().String(), s.handler, log, timeouts)
	log.Info("meshauth listening", "addr", ln.Addr().String(), "version", s.version)
	if cfg.Development() && cfg.ListenAddr == config.Loopback {
		log.Info("development: listening on loopback only, so the development tools stay off the network; LISTEN_ADDR=0.0.0.0 listens on every interface")
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if s.metrics != nil {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics)
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

// Run assembles the service with New and serves it until ctx is done or the
// process receives SIGINT or SIGTERM, then closes it. It returns
// configuration and startup errors, all at once where there are several.
func Run(ctx context.Context, o Options) error {
	s, err := New(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Serve(ctx)
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

// openStore opens the configured backend, the counters the login limits use
// (DynamoDB's own, shared by every instance, or this process's for the
// single-instance stores), and the DynamoDB store itself (nil for the
// others), whose table the readiness check looks after and beside which the
// legacy table is read.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, store.Counters, *dynamo.Store, error) {
	switch cfg.Store {
	case "dynamodb":
		s, err := openDynamo(ctx, cfg)
		if err != nil {
			return nil, nil, nil, err
		}
		if cfg.Dynamo.CreateTable {
			if err := s.Migrate(ctx); err != nil {
				return nil, nil, nil, dynamoError(cfg, "create DynamoDB table "+cfg.Dynamo.Table, err)
			}
			return s, s, s, nil
		}
		if err := s.Verify(ctx); errors.Is(err, store.ErrUnavailable) && !errors.Is(err, dynamo.ErrNoTable) {
			// Serve anyway: /readyz answers 503 until DynamoDB answers.
			log.Warn("DynamoDB is not reachable yet", "table", cfg.Dynamo.Table, "cause", err.Error())
		} else if err != nil {
			return nil, nil, nil, dynamoError(cfg, "DynamoDB table "+cfg.Dynamo.Table, err)
		}
		return s, s, s, nil
	case "memory":
		if !cfg.Development() {
			log.Warn("STORE=memory: sessions are lost when the process stops")
		}
		s := memory.New()
		return s, s, nil, nil
	default:
		s, err := embedded.Open(cfg.DataDir)
		if errors.Is(err, bolterrors.ErrTimeout) {
			// bbolt's lock on the file is held: another process has it open.
			return nil, nil, nil, fmt.Errorf("DATA_DIR: another meshauth process holds %s (the embedded store is for one process): stop it, or give this one a DATA_DIR of its own", filepath.Join(cfg.DataDir, "sessions.db"))
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("DATA_DIR: %w", err)
		}
		s.StartSweeper(sweepInterval, time.Now, func(err error) {
			log.Error("sweep expired sessions", "cause", err.Error())
		})
		return s, &memory.Counters{}, nil, nil
	}
}

// dynamoError says what to do about a DynamoDB error at startup or in
// meshauth migrate: provide credentials, or create the table; what names
// the step.
func dynamoError(cfg config.Config, what string, err error) error {
	switch {
	case errors.Is(err, dynamo.ErrNoCredentials):
		return fmt.Errorf("%s: no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile of the shared config files), or run with an instance or task role; against DynamoDB Local any value of the two keys will do (%w)", what, err)
	case errors.Is(err, dynamo.ErrNoTable):
		return fmt.Errorf("%s: the table does not exist (DYNAMO_DB_AUTH_TABLE=%s in DYNAMO_DB_REGION=%s): set DYNAMO_DB_CREATE_TABLE=true or run meshauth migrate to create it (%w)", what, cfg.Dynamo.Table, cfg.Dynamo.Region, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tableKeeper is the readiness check of the DynamoDB store. When the table
// has gone (DynamoDB Local in memory restarted, someone deleted it), it
// says so; with DYNAMO_DB_CREATE_TABLE it also creates the table again, in
// the background, one creation at a time.
type tableKeeper struct {
	store  *dynamo.Store
	name   string
	create bool
	ping   func(context.Context) error
	log    *slog.Logger

	mu       sync.Mutex
	creating bool
	closed   bool
	wg       sync.WaitGroup
	stop     context.CancelFunc
}

func (k *tableKeeper) ready(ctx context.Context) error {
	err := k.ping(ctx)
	if !errors.Is(err, dynamo.ErrNoTable) {
		return err
	}
	if !k.create {
		return fmt.Errorf("DynamoDB table %s is missing: create it with meshauth migrate (or set DYNAMO_DB_CREATE_TABLE=true and restart): %w", k.name, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.creating && !k.closed {
		k.creating = true
		var cctx context.Context
		cctx, k.stop = context.WithTimeout(context.Background(), dynamo.MigrateTimeout)
		k.log.Warn("DynamoDB table is missing; creating it again (DYNAMO_DB_CREATE_TABLE=true)", "table", k.name)
		k.wg.Go(func() {
			err := k.store.Migrate(cctx)
			k.mu.Lock()
			k.creating = false
			k.stop()
			k.mu.Unlock()
			if err != nil {
				k.log.Error("DynamoDB table could not be created again", "table", k.name, "cause", err.Error())
				return
			}
			k.log.Info("DynamoDB table created again", "table", k.name)
		})
	}
	return fmt.Errorf("DynamoDB table %s is missing; creating it again (DYNAMO_DB_CREATE_TABLE=true): %w", k.name, err)
}

// close stops a creation in progress and waits for it.
func (k *tableKeeper) close() error {
	k.mu.Lock()
	k.closed = true
	if k.creating {
		k.stop()
	}
	k.mu.Unlock()
	k.wg.Wait()
	return nil
}

func openDynamo(ctx context.Context, cfg config.Config) (*dynamo.Store, error) {
	return dynamo.New(ctx, dynamo.Options{Table: cfg.Dynamo.Table, Region: cfg.Dynamo.Region, Endpoint: cfg.Dynamo.Endpoint, CallTimeout: cfg.Dynamo.CallTimeout})
}

// Migrate creates the DynamoDB table, its index and its TTL setting if they
// are missing, as configured by the environment (STORE=dynamodb). It is
// idempotent, and reads only the store's variables: no secrets, no users
// file.
func Migrate(ctx context.Context, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := config.LoadStore(getenv)
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
	if err := s.Migrate(ctx); err != nil {
		return dynamoError(cfg, "create DynamoDB table "+cfg.Dynamo.Table, err)
	}
	return nil
}

// loginProvider returns the configured login provider and, for the
// providers that can name the customer of an external identity, the same
// provider as an IdentityMapper. A users file is read again when it
// changes (static.Watched); one that cannot be read stops the start.
func loginProvider(cfg config.Config, log *slog.Logger, now func() time.Time) (login.Service, login.IdentityMapper, error) {
	switch cfg.LoginProvider {
	case "http":
		p, err := httplogin.New(httplogin.Options{
			URL: cfg.HTTPLogin.URL, HeaderName: cfg.HTTPLogin.HeaderName, HeaderValue: cfg.HTTPLogin.HeaderValue,
			Timeout: cfg.LoginTimeout,
		})
		if err != nil {
			return nil, nil, err
		}
		return p, p, nil
	case "bigcommerce":
		b := cfg.BigCommerce
		p, err := bigcommerce.New(bigcommerce.Options{
			StoreHash: b.StoreHash, XAuthToken: b.XAuthToken, ChannelID: b.ChannelID,
			GraphQLURL: b.GraphQLURL, APIBase: b.APIBase, Timeout: cfg.LoginTimeout,
			TrustedProxySecret: b.TrustedProxySecret,
		})
		return p, nil, err
	}
	if cfg.StaticUsersFile != "" {
		p, err := static.Watch(cfg.StaticUsersFile, log, now)
		if err != nil {
			return nil, nil, fmt.Errorf("STATIC_USERS_FILE: %w", err)
		}
		return p, p, nil
	}
	p, err := demoProvider()
	if err != nil {
		return nil, nil, err
	}
	return p, p, nil
}

// demoProvider is the development default: one demo user.
func demoProvider() (*static.Provider, error) {
	hash, err := static.HashPassword(demoPassword)
	if err != nil {
		return nil, err
	}
	// Printed, not logged: these are the README's public demo credentials.
	fmt.Fprintf(os.Stderr, "development: no STATIC_USERS_FILE, so one demo user exists: %s / %s\n", demoEmail, demoPassword)
	return static.New([]static.User{{Email: demoEmail, CustomerID: demoCustomerID, PasswordHash: hash}})
}

func newSigner(j config.JWT) (*token.Signer, error) {
	var s *token.Signer
	var err error
	if j.Algorithm == "EdDSA" {
		s, err = token.NewEdDSA(j.Ed25519Key, j.KeyID, j.Issuer, j.Audience)
		if err == nil && len(j.ExtraKeys) > 0 {
			s, err = s.WithExtraKeys(j.ExtraKeys)
		}
	} else {
		s, err = token.NewHS256(j.Secret, j.Issuer, j.Audience)
	}
	if err != nil {
		return nil, err
	}
	return s.WithCustomerIDClaims(j.CustomerIDClaims)
}
