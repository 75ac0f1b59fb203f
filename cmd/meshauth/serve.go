package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/config"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/login/static"
	"github.com/meshauth/meshauth/internal/server"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/embedded"
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

func serve(getenv func(string) string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	if used, err := config.EnsureDevSecrets(&cfg); err != nil {
		return err
	} else if used {
		log.Warn("development: secrets not set in the environment are kept in DATA_DIR", "file", config.DevSecretsFile)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	provider, err := loginProvider(cfg)
	if err != nil {
		return err
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
	})
	h := server.Handler(server.Options{
		Auth:          svc,
		Log:           log,
		Playground:    cfg.Development(),
		Introspection: cfg.Introspection,
		Ready:         st.Ping,
	})

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return err
	}
	srv := server.New(ln.Addr().String(), h, log)
	log.Info("meshauth listening", "addr", ln.Addr().String(), "env", cfg.Env, "store", cfg.Store,
		"login_provider", cfg.LoginProvider, "jwt_algorithm", signer.Algorithm(), "version", versionString())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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

func newLogger(cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

func openStore(_ context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Store {
	case "embedded":
		s, err := embedded.Open(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.StartSweeper(sweepInterval, time.Now, func(err error) {
			log.Error("sweep expired sessions", "cause", err.Error())
		})
		return s, nil
	}
	return nil, fmt.Errorf("STORE=%s is not available in this build", cfg.Store)
}

func loginProvider(cfg config.Config) (login.Service, error) {
	switch cfg.LoginProvider {
	case "static":
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
	return nil, fmt.Errorf("LOGIN_PROVIDER=%s is not available in this build", cfg.LoginProvider)
}

func newSigner(j config.JWT) (*token.Signer, error) {
	if j.Algorithm == "EdDSA" {
		return token.NewEdDSA(j.Ed25519Key, j.KeyID, j.Issuer, j.Audience)
	}
	return token.NewHS256(j.Secret, j.Issuer, j.Audience)
}
