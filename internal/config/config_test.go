package config_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/config"
	"github.com/meshauth/meshauth/internal/token"
)

const (
	jwtSecret     = "jwt-secret-0123456789abcdef-0123456789"
	refreshSecret = "refresh-secret-0123456789abcdef-012345"
)

// env is a map-backed getenv.
type env map[string]string

func (e env) get(name string) string { return e[name] }

// with returns a copy of e with kv applied; an empty value unsets the name.
func (e env) with(kv ...string) env {
	out := maps.Clone(e)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// production is a minimal valid production environment.
var production = env{
	"APP_ENV":              "production",
	"STATIC_USERS_FILE":    "/etc/meshauth/users.json",
	"JWT_PRIVATE_KEY":      jwtSecret,
	"REFRESH_TOKEN_SECRET": refreshSecret,
}

// edKeyPEM returns a fixed Ed25519 key and its PKCS #8 PEM.
func edKeyPEM(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	b, err := token.MarshalEd25519PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(b)
}

// problems returns the lines of a Load error after its heading.
func problems(err error) []string {
	lines := strings.Split(err.Error(), "\n")
	return lines[1:]
}

var (
	defaultLoginLimits = auth.Limits{
		Account: []auth.Window{{Max: 5, Length: time.Minute}, {Max: 20, Length: time.Hour}},
		IP:      []auth.Window{{Max: 20, Length: time.Minute}, {Max: 200, Length: time.Hour}},
	}
	defaultCookie = config.Cookie{Name: "meshauth_refresh", Path: "/graphql", Secure: true, SameSite: http.SameSiteStrictMode}
	defaultHTTP   = config.HTTP{
		MaxBodyBytes: 64 << 10, MaxTokens: 2000, MaxDepth: 12, MaxAliases: 15, MaxComplexity: 200, MaxTokenFields: 1,
		TrustedProxies:    config.DefaultTrustedProxies,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: time.Minute,
	}
)

func TestLoadDevelopmentDefaults(t *testing.T) {
	got, err := config.Load(env{"APP_ENV": "development"}.get)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Env: "development", ListenAddr: "127.0.0.1", Port: 4000, DataDir: "./data",
		Store: "embedded", Dynamo: config.Dynamo{CallTimeout: 2 * time.Second}, LoginProvider: "static", LoginTimeout: 10 * time.Second,
		LoginLimits: defaultLoginLimits, HTTP: defaultHTTP, Cookie: defaultCookie,
		IDTokens: config.IDTokens{RequireVerifiedEmail: true},
		JWT:      config.JWT{Algorithm: "HS256", Issuer: "meshauth", Audience: "meshauth", CustomerIDClaims: []string{"customer_id"}},
		Rules: auth.Rules{
			AccessTTL: 10 * time.Minute, IdleTTL: 15 * time.Minute, RememberTTL: 43200 * time.Minute,
			MaxLifetime: 0, ReuseInterval: 30 * time.Second, MaxSessions: 50,
		},
		LogLevel: slog.LevelInfo, LogFormat: "text", Introspection: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
	if !got.Development() {
		t.Error("Development() = false")
	}
}

func TestLoadDefaultEnvIsProduction(t *testing.T) {
	if _, err := config.Load(env{}.get); err == nil {
		t.Fatal("Load with nothing set succeeded; production must need explicit configuration")
	}
	got, err := config.Load(production.with("APP_ENV", "").get)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Env != config.EnvProduction || got.Development() || got.LogFormat != "json" || got.Introspection {
		t.Errorf("Env %q, Development %v, LogFormat %q, Introspection %v; want production, false, json, false",
			got.Env, got.Development(), got.LogFormat, got.Introspection)
	}
}

func TestLoadExplicitValues(t *testing.T) {
	e := production.with(
		"APP_ENV", "staging", "LISTEN_ADDR", "10.0.0.7", "PORT", " 8080 ", "DATA_DIR", "/var/lib/meshauth",
		"LOG_LEVEL", "debug", "LOG_FORMAT", "text", "GRAPHQL_INTROSPECTION", "true",
		"STORE", "dynamodb", "DYNAMO_DB_AUTH_TABLE", "sessions", "DYNAMO_DB_REGION", "eu-west-1",
		"DYNAMO_DB_ENDPOINT", "http://localhost:8000", "DYNAMO_DB_CREATE_TABLE", "1",
		"JWT_ISSUER", "https://auth.example", "JWT_AUDIENCE", "gateway", "JWT_KEY_ID", "k1",
		"ACCESS_TOKEN_EXPIRY_IN_MINUTES", "5", "NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "60",
		"EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "1440", "SESSION_MAX_LIFETIME_IN_MINUTES", "2880",
		"REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS", "0",
	)
	got, err := config.Load(e.get)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Env: "staging", ListenAddr: "10.0.0.7", Port: 8080, DataDir: "/var/lib/meshauth",
		Store:         "dynamodb",
		Dynamo:        config.Dynamo{Table: "sessions", Region: "eu-west-1", Endpoint: "http://localhost:8000", CreateTable: true, CallTimeout: 2 * time.Second},
		LoginProvider: "static", StaticUsersFile: "/etc/meshauth/users.json", LoginTimeout: 10 * time.Second,
		LoginLimits: defaultLoginLimits, HTTP: defaultHTTP, Cookie: defaultCookie,
		IDTokens:      config.IDTokens{RequireVerifiedEmail: true},
		JWT:           config.JWT{Algorithm: "HS256", Secret: []byte(jwtSecret), KeyID: "k1", Issuer: "https://auth.example", Audience: "gateway", CustomerIDClaims: []string{"customer_id"}},
		RefreshSecret: []byte(refreshSecret),
		Rules: auth.Rules{
			AccessTTL: 5 * time.Minute, IdleTTL: time.Hour, RememberTTL: 24 * time.Hour,
			MaxLifetime: 48 * time.Hour, ReuseInterval: 0, MaxSessions: 50,
		},
		LogLevel: slog.LevelDebug, LogFormat: "text", Introspection: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadLogLevel(t *testing.T) {
	for level, want := range map[string]slog.Level{
		"": slog.LevelInfo, "debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		t.Run("level "+level, func(t *testing.T) {
			got, err := config.Load(production.with("LOG_LEVEL", level).get)
			if err != nil || got.LogLevel != want {
				t.Errorf("LOG_LEVEL=%q: LogLevel %v, err %v; want %v", level, got.LogLevel, err, want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		env  env
		// want has one variable name per expected problem line.
		want []string
	}{
		{"nothing set in production", env{}, []string{"STATIC_USERS_FILE", "JWT_PRIVATE_KEY", "REFRESH_TOKEN_SECRET"}},
		{"nothing set in staging", env{"APP_ENV": "staging"}, []string{"STATIC_USERS_FILE", "JWT_PRIVATE_KEY", "REFRESH_TOKEN_SECRET"}},
		{
			"bad server values",
			production.with("PORT", "0", "LOG_LEVEL", "loud", "LOG_FORMAT", "xml", "GRAPHQL_INTROSPECTION", "maybe", "STORE", "postgres"),
			[]string{"PORT", "LOG_LEVEL", "LOG_FORMAT", "GRAPHQL_INTROSPECTION", "STORE"},
		},
		{
			"bad numbers",
			production.with("PORT", "65536", "ACCESS_TOKEN_EXPIRY_IN_MINUTES", "ten", "SESSION_MAX_LIFETIME_IN_MINUTES", "-1",
				"REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS", "301"),
			[]string{"PORT", "ACCESS_TOKEN_EXPIRY_IN_MINUTES", "SESSION_MAX_LIFETIME_IN_MINUTES", "REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS"},
		},
		{
			"out of range expiries",
			production.with("NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "0", "EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "5256001",
				"ACCESS_TOKEN_EXPIRY_IN_MINUTES", "1441"),
			[]string{"NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "ACCESS_TOKEN_EXPIRY_IN_MINUTES"},
		},
		{
			"incomplete dynamodb and bad boolean",
			production.with("STORE", "dynamodb", "DYNAMO_DB_CREATE_TABLE", "yes please"),
			[]string{"DYNAMO_DB_AUTH_TABLE", "DYNAMO_DB_REGION", "DYNAMO_DB_CREATE_TABLE"},
		},
		{
			"unknown provider, algorithm and environment",
			production.with("LOGIN_PROVIDER", "ldap", "JWT_ALGORITHM", "RS256", "APP_ENV", "prod"),
			[]string{"APP_ENV", "LOGIN_PROVIDER", "JWT_ALGORITHM"},
		},
		{
			"legacy table without DynamoDB",
			production.with("LEGACY_DYNAMO_DB_AUTH_TABLE", "auth-module-sessions"),
			[]string{"LEGACY_DYNAMO_DB_AUTH_TABLE"},
		},
		{
			"customer-id claims that the service owns",
			production.with("JWT_CUSTOMER_ID_CLAIMS", "customer_id,sub,bc_customer_id,exp"),
			[]string{"JWT_CUSTOMER_ID_CLAIMS", "JWT_CUSTOMER_ID_CLAIMS"},
		},
		{
			"equal secrets beside a bad port",
			production.with("REFRESH_TOKEN_SECRET", jwtSecret, "PORT", "0"),
			[]string{"PORT", "JWT_PRIVATE_KEY and REFRESH_TOKEN_SECRET"},
		},
		{
			"URLs without a scheme or a host",
			production.with("STORE", "dynamodb", "DYNAMO_DB_AUTH_TABLE", "t", "DYNAMO_DB_REGION", "us-east-1", "DYNAMO_DB_ENDPOINT", "127.0.0.1:4999"),
			[]string{"DYNAMO_DB_ENDPOINT"},
		},
		{
			"bigcommerce URLs without a scheme",
			production.with("LOGIN_PROVIDER", "bigcommerce", "STORE_HASH", "abc", "X_AUTH_TOKEN", "x", "BC_GRAPHQL_API", "store-abc.mybigcommerce.com/graphql", "BC_API_URL", "ftp://api.bigcommerce.com"),
			[]string{"BC_GRAPHQL_API", "BC_API_URL"},
		},
		{
			"http login URL without a host",
			production.with("LOGIN_PROVIDER", "http", "LOGIN_HTTP_URL", "https:///login"),
			[]string{"LOGIN_HTTP_URL"},
		},
		{
			"CORS for every origin, and an origin with a path",
			production.with("CORS_ALLOWED_ORIGINS", "*, https://shop.example/"),
			[]string{"CORS_ALLOWED_ORIGINS", "CORS_ALLOWED_ORIGINS"},
		},
		{
			"login-limit windows that do not nest, and one malformed",
			production.with("LOGIN_LIMIT_ACCOUNT", "5/7m,20/1h", "LOGIN_LIMIT_IP", "20/1m,200"),
			[]string{"LOGIN_LIMIT_ACCOUNT", "LOGIN_LIMIT_IP"},
		},
		{
			"a login-limit window length given twice",
			production.with("LOGIN_LIMIT_ACCOUNT", "5/1m,10/60s,20/1h"),
			[]string{"LOGIN_LIMIT_ACCOUNT"},
		},
		{
			"short secrets and missing users file",
			production.with("JWT_PRIVATE_KEY", "short", "REFRESH_TOKEN_SECRET", "also short", "STATIC_USERS_FILE", ""),
			[]string{"JWT_PRIVATE_KEY", "REFRESH_TOKEN_SECRET", "STATIC_USERS_FILE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.env.get)
			if err == nil {
				t.Fatal("Load succeeded, want one error listing every problem")
			}
			for _, name := range tt.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error does not mention %s:\n%v", name, err)
				}
			}
			if got := problems(err); len(got) != len(tt.want) {
				t.Errorf("error lists %d problems, want %d:\n%v", len(got), len(tt.want), err)
			}
		})
	}
}

func TestLoadExpiryOrdering(t *testing.T) {
	const (
		access   = "ACCESS_TOKEN_EXPIRY_IN_MINUTES"
		idle     = "NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES"
		remember = "EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES"
		maxLife  = "SESSION_MAX_LIFETIME_IN_MINUTES"
	)
	tests := []struct {
		name     string
		env      env
		wantErr  string // a variable name the error must mention; "" for success
		wantRule func(auth.Rules) bool
	}{
		{"defaults are ordered", production, "", nil},
		{"strictly ordered", production.with(access, "1", idle, "2", remember, "3"), "", func(r auth.Rules) bool {
			return r.AccessTTL == time.Minute && r.IdleTTL == 2*time.Minute && r.RememberTTL == 3*time.Minute
		}},
		{"access equals idle", production.with(access, "15", idle, "15"), idle, nil},
		{"access above idle", production.with(access, "20", idle, "15"), idle, nil},
		{"idle equals remember", production.with(idle, "60", remember, "60"), remember, nil},
		{"idle above remember", production.with(idle, "120", remember, "60"), remember, nil},
		{"all three equal", production.with(access, "30", idle, "30", remember, "30"), access, nil},
		{"reversed", production.with(access, "300", idle, "200", remember, "100"), access, nil},
		{"max lifetime below idle", production.with(maxLife, "14"), maxLife, nil},
		{"max lifetime equals idle", production.with(maxLife, "15"), "", func(r auth.Rules) bool { return r.MaxLifetime == 15*time.Minute }},
		{"max lifetime 0 is no cap", production.with(maxLife, "0"), "", func(r auth.Rules) bool { return r.MaxLifetime == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.env.get)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tt.wantRule != nil && !tt.wantRule(c.Rules) {
					t.Errorf("Rules = %+v", c.Rules)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want one naming %s", err, tt.wantErr)
			}
			if n := len(problems(err)); n != 1 {
				t.Errorf("error lists %d problems, want 1:\n%v", n, err)
			}
		})
	}
}

func TestLoadSecrets(t *testing.T) {
	short := "s3cr3t-VALUE-31-bytes-long-xxxx"[:31]
	exact := strings.Repeat("k", config.MinSecretLen)
	_, pemText := edKeyPEM(t)
	tests := []struct {
		name    string
		env     env
		wantErr string // variable named in the error; "" for success
		secrets []string
	}{
		{"32 bytes accepted", production.with("JWT_PRIVATE_KEY", exact, "REFRESH_TOKEN_SECRET", strings.Repeat("r", config.MinSecretLen)), "", nil},
		{"equal secrets", production.with("REFRESH_TOKEN_SECRET", jwtSecret), "REFRESH_TOKEN_SECRET", []string{jwtSecret}},
		{"equal secrets but for surrounding space", production.with("REFRESH_TOKEN_SECRET", " "+jwtSecret+"\n"), "JWT_PRIVATE_KEY", []string{jwtSecret}},
		{"equal secrets in development", env{"APP_ENV": "development", "JWT_PRIVATE_KEY": exact, "REFRESH_TOKEN_SECRET": exact}, "REFRESH_TOKEN_SECRET", []string{exact}},
		{"short JWT secret", production.with("JWT_PRIVATE_KEY", short), "JWT_PRIVATE_KEY", []string{short}},
		{"short refresh secret", production.with("REFRESH_TOKEN_SECRET", short), "REFRESH_TOKEN_SECRET", []string{short}},
		{"short secrets in development too", env{"APP_ENV": "development", "JWT_PRIVATE_KEY": short}, "JWT_PRIVATE_KEY", []string{short}},
		{"missing JWT secret in production", production.with("JWT_PRIVATE_KEY", ""), "JWT_PRIVATE_KEY", nil},
		{"missing refresh secret in staging", production.with("APP_ENV", "staging", "REFRESH_TOKEN_SECRET", ""), "REFRESH_TOKEN_SECRET", nil},
		{"good secrets beside another problem", production.with("PORT", "-1"), "PORT", []string{jwtSecret, refreshSecret}},
		{"Ed25519 key beside a bad PEM", production.with("JWT_ALGORITHM", "EdDSA", "JWT_ED25519_PRIVATE_KEY", strings.Replace(pemText, "PRIVATE KEY", "PUBLIC KEY", 2)),
			"Ed25519", strings.Split(pemText, "\n")[1:3]},
		{"APP_ENV typo prod", production.with("APP_ENV", "prod"), "APP_ENV", []string{jwtSecret, refreshSecret}},
		{"APP_ENV typo Production", production.with("APP_ENV", "Production"), "APP_ENV", []string{jwtSecret, refreshSecret}},
		{"APP_ENV typo dev does not relax secrets", env{"APP_ENV": "dev"}, "JWT_PRIVATE_KEY", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.env.get)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want one naming %s", err, tt.wantErr)
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error contains the secret %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestLoadDynamoRegion(t *testing.T) {
	base := production.with("STORE", "dynamodb", "DYNAMO_DB_AUTH_TABLE", "sessions")
	tests := []struct {
		name       string
		env        env
		wantRegion string
		wantErr    string
	}{
		{"DYNAMO_DB_REGION", base.with("DYNAMO_DB_REGION", "eu-west-1"), "eu-west-1", ""},
		{"DYNAMO_DB__REGION alias", base.with("DYNAMO_DB__REGION", "us-east-2"), "us-east-2", ""},
		{"DYNAMO_DB_REGION wins over the alias", base.with("DYNAMO_DB_REGION", "eu-west-1", "DYNAMO_DB__REGION", "us-east-2"), "eu-west-1", ""},
		{"neither", base, "", "DYNAMO_DB_REGION"},
		{"no table", base.with("DYNAMO_DB_AUTH_TABLE", "", "DYNAMO_DB__REGION", "us-east-2"), "", "DYNAMO_DB_AUTH_TABLE"},
		{"embedded store needs neither", production.with("STORE", "embedded"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.env.get)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Dynamo.Region != tt.wantRegion {
				t.Errorf("Region = %q, want %q", c.Dynamo.Region, tt.wantRegion)
			}
		})
	}
}

func TestLoadEdDSA(t *testing.T) {
	key, pemText := edKeyPEM(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(badFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	thumb := token.Thumbprint(key.Public().(ed25519.PublicKey))
	ed := production.with("JWT_ALGORITHM", "EdDSA", "JWT_PRIVATE_KEY", "")

	tests := []struct {
		name      string
		env       env
		wantKey   bool
		wantKeyID string
		wantErr   []string
	}{
		{"PEM in the environment", ed.with("JWT_ED25519_PRIVATE_KEY", pemText), true, thumb, nil},
		{"PEM file", ed.with("JWT_ED25519_PRIVATE_KEY_FILE", keyFile), true, thumb, nil},
		{"explicit key id", ed.with("JWT_ED25519_PRIVATE_KEY_FILE", keyFile, "JWT_KEY_ID", "2030-01"), true, "2030-01", nil},
		{"both set", ed.with("JWT_ED25519_PRIVATE_KEY", pemText, "JWT_ED25519_PRIVATE_KEY_FILE", keyFile), false, "",
			[]string{"JWT_ED25519_PRIVATE_KEY", "JWT_ED25519_PRIVATE_KEY_FILE"}},
		{"missing file", ed.with("JWT_ED25519_PRIVATE_KEY_FILE", filepath.Join(dir, "nope.pem")), false, "",
			[]string{"JWT_ED25519_PRIVATE_KEY_FILE"}},
		{"file is not a key", ed.with("JWT_ED25519_PRIVATE_KEY_FILE", badFile), false, "", []string{"Ed25519"}},
		{"missing in production", ed, false, "", []string{"JWT_ED25519_PRIVATE_KEY", "JWT_ED25519_PRIVATE_KEY_FILE"}},
		{"missing in development is left to EnsureDevSecrets", env{"APP_ENV": "development", "JWT_ALGORITHM": "EdDSA"}, false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.env.get)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("Load succeeded, want error")
				}
				for _, name := range tt.wantErr {
					if !strings.Contains(err.Error(), name) {
						t.Errorf("error does not name %s:\n%v", name, err)
					}
				}
				if n := len(problems(err)); n != 1 {
					t.Errorf("error lists %d problems, want 1:\n%v", n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.JWT.Algorithm != "EdDSA" || c.JWT.Secret != nil {
				t.Errorf("Algorithm %q, Secret %v; want EdDSA and no HS256 secret", c.JWT.Algorithm, c.JWT.Secret != nil)
			}
			if got := c.JWT.Ed25519Key != nil && c.JWT.Ed25519Key.Equal(key); got != tt.wantKey {
				t.Errorf("key loaded = %v, want %v", got, tt.wantKey)
			}
			if c.JWT.KeyID != tt.wantKeyID {
				t.Errorf("KeyID = %q, want %q", c.JWT.KeyID, tt.wantKeyID)
			}
		})
	}
}

func TestLoadCustomLogin(t *testing.T) {
	read := map[string]bool{}
	getenv := func(name string) string {
		read[name] = true
		return production.with("STATIC_USERS_FILE", "", "LOGIN_PROVIDER", "ldap")[name]
	}
	c, err := config.Load(getenv, config.CustomLogin())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.LoginProvider != "custom" || c.StaticUsersFile != "" {
		t.Errorf("LoginProvider %q, StaticUsersFile %q; want custom and none", c.LoginProvider, c.StaticUsersFile)
	}
	for _, name := range []string{"LOGIN_PROVIDER", "STATIC_USERS_FILE"} {
		if read[name] {
			t.Errorf("Load read %s with CustomLogin", name)
		}
	}
}

// TestVariablesIsWhatLoadReads records the names Load asks for over runs
// that between them take every branch, and compares them with Variables.
func TestVariablesIsWhatLoadReads(t *testing.T) {
	_, pemText := edKeyPEM(t)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := []env{
		{},
		{"APP_ENV": "development"},
		production.with("STORE", "dynamodb", "DYNAMO_DB_AUTH_TABLE", "t", "DYNAMO_DB__REGION", "r"),
		production.with("STORE", "dynamodb", "JWT_ALGORITHM", "EdDSA", "JWT_ED25519_PRIVATE_KEY", pemText),
		production.with("JWT_ALGORITHM", "EdDSA", "JWT_ED25519_PRIVATE_KEY_FILE", keyFile),
		{"APP_ENV": "development", "JWT_ALGORITHM": "EdDSA"},
		{"APP_ENV": "development", "LOGIN_PROVIDER": "http"},
		{"APP_ENV": "development", "LOGIN_PROVIDER": "bigcommerce"},
	}
	read := map[string]bool{}
	for _, e := range runs {
		_, _ = config.Load(func(name string) string { read[name] = true; return e[name] })
	}
	listed := map[string]bool{}
	for _, name := range config.Variables {
		if listed[name] {
			t.Errorf("Variables lists %s twice", name)
		}
		listed[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(read)) {
		if !listed[name] {
			t.Errorf("Load reads %s, which Variables does not list", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(listed)) {
		if !read[name] {
			t.Errorf("Variables lists %s, which Load never reads", name)
		}
	}
}

func TestEnsureDevSecretsGeneratesAndPersists(t *testing.T) {
	for _, alg := range []string{"HS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data") // EnsureDevSecrets creates it
			e := env{"APP_ENV": "development", "DATA_DIR": dir, "JWT_ALGORITHM": alg}
			load := func() config.Config {
				t.Helper()
				c, err := config.Load(e.get)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				used, err := config.EnsureDevSecrets(&c)
				if err != nil || !used {
					t.Fatalf("EnsureDevSecrets = %v, %v; want true, nil", used, err)
				}
				return c
			}
			first := load()

			if len(first.RefreshSecret) < config.MinSecretLen {
				t.Errorf("RefreshSecret has %d bytes, want at least %d", len(first.RefreshSecret), config.MinSecretLen)
			}
			switch alg {
			case "HS256":
				if len(first.JWT.Secret) < config.MinSecretLen {
					t.Errorf("JWT secret has %d bytes, want at least %d", len(first.JWT.Secret), config.MinSecretLen)
				}
				if bytes.Equal(first.JWT.Secret, first.RefreshSecret) {
					t.Error("JWT and refresh secrets are the same")
				}
			case "EdDSA":
				if len(first.JWT.Ed25519Key) != ed25519.PrivateKeySize {
					t.Fatalf("Ed25519Key has %d bytes", len(first.JWT.Ed25519Key))
				}
				if want := token.Thumbprint(first.JWT.Ed25519Key.Public().(ed25519.PublicKey)); first.JWT.KeyID != want {
					t.Errorf("KeyID = %q, want the thumbprint %q", first.JWT.KeyID, want)
				}
			}

			info, err := os.Stat(filepath.Join(dir, config.DevSecretsFile))
			if err != nil {
				t.Fatalf("secrets file: %v", err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("secrets file mode = %v, want 0600", perm)
			}

			second := load()
			if !bytes.Equal(second.RefreshSecret, first.RefreshSecret) || !bytes.Equal(second.JWT.Secret, first.JWT.Secret) ||
				!first.JWT.Ed25519Key.Equal(second.JWT.Ed25519Key) || second.JWT.KeyID != first.JWT.KeyID {
				t.Error("a second start got different secrets; they must persist")
			}
		})
	}
}

func TestEnsureDevSecretsLeavesOthersAlone(t *testing.T) {
	_, pemText := edKeyPEM(t)
	tests := []struct {
		name     string
		env      env
		wantUsed bool
		// keep are values the environment gave that must survive unchanged.
		keepJWT, keepRefresh bool
	}{
		{"production", production, false, true, true},
		{"staging", production.with("APP_ENV", "staging"), false, true, true},
		{"development with both secrets set", env{"APP_ENV": "development", "JWT_PRIVATE_KEY": jwtSecret, "REFRESH_TOKEN_SECRET": refreshSecret},
			false, true, true},
		{"development with the JWT secret set", env{"APP_ENV": "development", "JWT_PRIVATE_KEY": jwtSecret}, true, true, false},
		{"development with the refresh secret set", env{"APP_ENV": "development", "REFRESH_TOKEN_SECRET": refreshSecret}, true, false, true},
		{"development with an Ed25519 key set", env{"APP_ENV": "development", "JWT_ALGORITHM": "EdDSA", "JWT_ED25519_PRIVATE_KEY": pemText},
			true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := config.Load(tt.env.with("DATA_DIR", dir).get)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			before := c
			used, err := config.EnsureDevSecrets(&c)
			if err != nil || used != tt.wantUsed {
				t.Fatalf("EnsureDevSecrets = %v, %v; want %v, nil", used, err, tt.wantUsed)
			}
			file, err := os.ReadFile(filepath.Join(dir, config.DevSecretsFile))
			if !tt.wantUsed && err == nil {
				t.Error("secrets file written although nothing was needed")
			}
			if tt.keepJWT && !bytes.Equal(c.JWT.Secret, before.JWT.Secret) {
				t.Error("JWT secret from the environment was replaced")
			}
			if tt.keepRefresh && !bytes.Equal(c.RefreshSecret, before.RefreshSecret) {
				t.Error("refresh secret from the environment was replaced")
			}
			if before.JWT.Ed25519Key != nil && (!c.JWT.Ed25519Key.Equal(before.JWT.Ed25519Key) || c.JWT.KeyID != before.JWT.KeyID) {
				t.Error("Ed25519 key from the environment was replaced")
			}
			if c.Development() && (len(c.RefreshSecret) == 0 || (c.JWT.Algorithm == "HS256" && len(c.JWT.Secret) == 0)) {
				t.Error("a development secret is still missing")
			}
			for _, s := range []string{jwtSecret, refreshSecret} {
				if bytes.Contains(file, []byte(s)) {
					t.Errorf("secrets file holds the environment's secret %q", s)
				}
			}
		})
	}
}

func TestEnsureDevSecretsOnlyInDevelopment(t *testing.T) {
	for _, envName := range []string{config.EnvProduction, config.EnvStaging, ""} {
		for _, alg := range []string{"HS256", "EdDSA"} {
			t.Run(envName+"/"+alg, func(t *testing.T) {
				dir := t.TempDir()
				c := config.Config{Env: envName, DataDir: dir, JWT: config.JWT{Algorithm: alg}}
				used, err := config.EnsureDevSecrets(&c)
				if used || err != nil {
					t.Fatalf("EnsureDevSecrets = %v, %v; want false, nil", used, err)
				}
				if c.JWT.Secret != nil || c.JWT.Ed25519Key != nil || c.RefreshSecret != nil {
					t.Error("secrets filled in outside development")
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("DATA_DIR holds %d entries, want none", len(entries))
				}
			})
		}
	}
}

func TestEnsureDevSecretsReadsExistingFile(t *testing.T) {
	dir := t.TempDir()
	saved := map[string]string{"jwt_secret": "saved-jwt-secret-0123456789abcdef-0123", "refresh_secret": "saved-refresh-secret-0123456789abcdef"}
	b, _ := json.Marshal(saved)
	path := filepath.Join(dir, config.DevSecretsFile)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(env{"APP_ENV": "development", "DATA_DIR": dir}.get)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.EnsureDevSecrets(&c); err != nil {
		t.Fatalf("EnsureDevSecrets: %v", err)
	}
	if string(c.JWT.Secret) != saved["jwt_secret"] || string(c.RefreshSecret) != saved["refresh_secret"] {
		t.Errorf("secrets %q, %q; want the saved ones", c.JWT.Secret, c.RefreshSecret)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ = config.Load(env{"APP_ENV": "development", "DATA_DIR": dir}.get)
	if _, err := config.EnsureDevSecrets(&c); err == nil {
		t.Error("EnsureDevSecrets accepted a corrupt secrets file")
	}
}

// TestEnsureDevSecretsFileIsOwnerOnly: a secrets file that an earlier
// version or a copy left readable by others is 0600 after a start, whether
// it is rewritten or only read.
func TestEnsureDevSecretsFileIsOwnerOnly(t *testing.T) {
	for name, saved := range map[string]map[string]string{
		"rewritten": {"jwt_secret": "saved-jwt-secret-0123456789abcdef-0123"},
		"only read": {"jwt_secret": "saved-jwt-secret-0123456789abcdef-0123", "refresh_secret": "saved-refresh-secret-0123456789abcdef"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, config.DevSecretsFile)
			b, _ := json.Marshal(saved)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
				t.Fatal(err)
			}
			c, err := config.Load(env{"APP_ENV": "development", "DATA_DIR": dir}.get)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.EnsureDevSecrets(&c); err != nil {
				t.Fatalf("EnsureDevSecrets: %v", err)
			}
			if string(c.JWT.Secret) != saved["jwt_secret"] {
				t.Error("the saved JWT secret was not kept")
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("secrets file mode = %v, want 0600", perm)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("DATA_DIR holds %d entries, want only the secrets file", len(entries))
			}
		})
	}
}

// TestEnsureDevSecretsValidatesFile: the file's secrets meet the rules of
// the environment's (at least MinSecretLen bytes, JWT and refresh secrets
// different), and the error names the file and the fix, never a value.
func TestEnsureDevSecretsValidatesFile(t *testing.T) {
	const good, other = "saved-jwt-secret-0123456789abcdef-0123", "saved-refresh-secret-0123456789abcdef"
	tests := []struct {
		name  string
		saved map[string]string
		env   env
		want  []string // in the error
	}{
		{"1-byte JWT secret", map[string]string{"jwt_secret": "x", "refresh_secret": other}, nil, []string{"jwt_secret", "32 bytes"}},
		{"short refresh secret", map[string]string{"jwt_secret": good, "refresh_secret": other[:31]}, nil, []string{"refresh_secret", "32 bytes"}},
		{"short and unused", map[string]string{"jwt_secret": "x", "refresh_secret": other}, env{"JWT_PRIVATE_KEY": jwtSecret}, []string{"jwt_secret"}},
		{"equal secrets", map[string]string{"jwt_secret": good, "refresh_secret": good}, nil, []string{"jwt_secret", "refresh_secret", "equal"}},
		{"the environment's JWT secret equals the file's refresh secret", map[string]string{"jwt_secret": other, "refresh_secret": good},
			env{"JWT_PRIVATE_KEY": good}, []string{"JWT_PRIVATE_KEY", "refresh_secret"}},
		{"the environment's refresh secret equals the file's JWT secret", map[string]string{"jwt_secret": good, "refresh_secret": other},
			env{"REFRESH_TOKEN_SECRET": good}, []string{"REFRESH_TOKEN_SECRET", "jwt_secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, config.DevSecretsFile)
			b, _ := json.Marshal(tt.saved)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(env{"APP_ENV": "development", "DATA_DIR": dir}.with(kv(tt.env)...).get)
			if err != nil {
				t.Fatal(err)
			}
			_, err = config.EnsureDevSecrets(&c)
			if err == nil {
				t.Fatalf("EnsureDevSecrets accepted %v", tt.saved)
			}
			for _, w := range append([]string{path, "delete"}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			for _, v := range []string{good, other[:31], `"x"`} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error contains a secret:\n%v", err)
				}
			}
		})
	}
}

// kv flattens e for env.with.
func kv(e env) []string {
	var out []string
	for k, v := range e {
		out = append(out, k, v)
	}
	return out
}

// TestTrustedProxies: behind a gateway on a private network the client's own
// address counts, so the default trusts loopback and private ranges; none
// trusts no proxy; a list replaces the default.
// TestLoadListenAddr: LISTEN_ADDR is a host or an IP address; unset, it is
// loopback in development (whose tools answer without credentials) and
// every interface elsewhere. A port in it is refused: PORT is the port.
func TestLoadListenAddr(t *testing.T) {
	dev := env{"APP_ENV": "development"}
	for _, tc := range []struct {
		name string
		env  env
		want string
	}{
		{"development default", dev, "127.0.0.1"},
		{"production default", production, "0.0.0.0"},
		{"staging default", production.with("APP_ENV", "staging"), "0.0.0.0"},
		{"every interface in development", dev.with("LISTEN_ADDR", "0.0.0.0"), "0.0.0.0"},
		{"IPv6 every interface", production.with("LISTEN_ADDR", "::"), "::"},
		{"IPv6 loopback in brackets", production.with("LISTEN_ADDR", "[::1]"), "::1"},
		{"one address", production.with("LISTEN_ADDR", " 10.0.0.7 "), "10.0.0.7"},
		{"a host name", dev.with("LISTEN_ADDR", "localhost"), "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := config.Load(tc.env.get)
			if err != nil || got.ListenAddr != tc.want {
				t.Errorf("ListenAddr %q, err %v; want %q", got.ListenAddr, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"127.0.0.1:4000", ":4000", "[::1]:4000", "http://localhost", "a b", "-x"} {
		_, err := config.Load(dev.with("LISTEN_ADDR", bad).get)
		if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") || !strings.Contains(err.Error(), "PORT") {
			t.Errorf("LISTEN_ADDR=%q: %v", bad, err)
		}
	}
}

// TestLoadCookiePrefixes: a __Host- cookie name (the cookie bound to the
// exact host) defaults to Path=/ and is refused unless Secure, with Path=/
// and without a Domain; a __Secure- name is refused unless Secure. Browsers
// drop such cookies otherwise, which would log every customer out silently.
func TestLoadCookiePrefixes(t *testing.T) {
	dev := env{"APP_ENV": "development", "REFRESH_TOKEN_COOKIE": "true"}
	cookie := production.with("REFRESH_TOKEN_COOKIE", "true")
	tests := []struct {
		name string
		env  env
		want config.Cookie
		// problems names the variable of each expected problem.
		problems []string
	}{
		{"__Host- defaults to Path=/", cookie.with("REFRESH_TOKEN_COOKIE_NAME", "__Host-meshauth_refresh"),
			config.Cookie{Enabled: true, Name: "__Host-meshauth_refresh", Path: "/", Secure: true, SameSite: http.SameSiteStrictMode}, nil},
		{"__Host- with Path=/ set", cookie.with("REFRESH_TOKEN_COOKIE_NAME", "__Host-sid", "REFRESH_TOKEN_COOKIE_PATH", "/", "REFRESH_TOKEN_COOKIE_SAMESITE", "Lax"),
			config.Cookie{Enabled: true, Name: "__Host-sid", Path: "/", Secure: true, SameSite: http.SameSiteLaxMode}, nil},
		{"__Secure- keeps the path", cookie.with("REFRESH_TOKEN_COOKIE_NAME", "__Secure-sid", "REFRESH_TOKEN_COOKIE_DOMAIN", "shop.example"),
			config.Cookie{Enabled: true, Name: "__Secure-sid", Path: "/graphql", Domain: "shop.example", Secure: true, SameSite: http.SameSiteStrictMode}, nil},
		{"__Host- with another path", cookie.with("REFRESH_TOKEN_COOKIE_NAME", "__Host-sid", "REFRESH_TOKEN_COOKIE_PATH", "/graphql"), config.Cookie{},
			[]string{"REFRESH_TOKEN_COOKIE_PATH"}},
		{"__Host- with a domain", cookie.with("REFRESH_TOKEN_COOKIE_NAME", "__Host-sid", "REFRESH_TOKEN_COOKIE_DOMAIN", "shop.example"), config.Cookie{},
			[]string{"REFRESH_TOKEN_COOKIE_DOMAIN"}},
		{"__host- in any case", cookie.with("REFRESH_TOKEN_COOKIE_NAME", "__host-sid", "REFRESH_TOKEN_COOKIE_DOMAIN", "shop.example"), config.Cookie{},
			[]string{"REFRESH_TOKEN_COOKIE_DOMAIN"}},
		{"__Host- without Secure", dev.with("REFRESH_TOKEN_COOKIE_NAME", "__Host-sid", "REFRESH_TOKEN_COOKIE_SECURE", "false", "REFRESH_TOKEN_COOKIE_PATH", "/x", "REFRESH_TOKEN_COOKIE_DOMAIN", "localhost"), config.Cookie{},
			[]string{"REFRESH_TOKEN_COOKIE_SECURE", "REFRESH_TOKEN_COOKIE_PATH", "REFRESH_TOKEN_COOKIE_DOMAIN"}},
		{"__Secure- without Secure", dev.with("REFRESH_TOKEN_COOKIE_NAME", "__Secure-sid", "REFRESH_TOKEN_COOKIE_SECURE", "false"), config.Cookie{},
			[]string{"REFRESH_TOKEN_COOKIE_SECURE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(tt.env.get)
			if tt.problems == nil {
				if err != nil || !reflect.DeepEqual(got.Cookie, tt.want) {
					t.Fatalf("Cookie %+v, err %v; want %+v", got.Cookie, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded")
			}
			lines := problems(err)
			if len(lines) != len(tt.problems) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(tt.problems), err)
			}
			for i, v := range tt.problems {
				if !strings.HasPrefix(lines[i], "  "+v) || !strings.Contains(lines[i], "__Host-") && !strings.Contains(lines[i], "__Secure-") {
					t.Errorf("problem %d %q, want one that names %s and the prefix", i, lines[i], v)
				}
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	for value, want := range map[string][]netip.Prefix{
		"":                         config.DefaultTrustedProxies,
		"none":                     nil,
		"NONE":                     nil,
		"203.0.113.7, 10.1.0.0/16": {netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("10.1.0.0/16")},
	} {
		got, err := config.Load(production.with("TRUSTED_PROXIES", value).get)
		if err != nil || !slices.Equal(got.HTTP.TrustedProxies, want) {
			t.Errorf("TRUSTED_PROXIES=%q: %v, %v; want %v", value, got.HTTP.TrustedProxies, err, want)
		}
	}
	for _, p := range []string{"127.0.0.1", "::1", "10.2.3.4", "172.31.0.1", "192.168.1.1", "fd00::1"} {
		a := netip.MustParseAddr(p)
		if !slices.ContainsFunc(config.DefaultTrustedProxies, func(pr netip.Prefix) bool { return pr.Contains(a) }) {
			t.Errorf("%s is not trusted by default", p)
		}
	}
	for _, p := range []string{"203.0.113.1", "172.32.0.1", "2001:db8::1"} {
		a := netip.MustParseAddr(p)
		if slices.ContainsFunc(config.DefaultTrustedProxies, func(pr netip.Prefix) bool { return pr.Contains(a) }) {
			t.Errorf("%s is trusted by default", p)
		}
	}
}

// TestLoadStoreReadsOnlyTheStore: meshauth migrate creates the table and
// needs nothing else, so LoadStore validates the store's variables alone:
// no secrets, no users file; a wrong store variable is still reported.
func TestLoadStoreReadsOnlyTheStore(t *testing.T) {
	dynamo := env{"STORE": "dynamodb", "DYNAMO_DB_AUTH_TABLE": "t", "DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_ENDPOINT": "http://127.0.0.1:8000"}
	c, err := config.LoadStore(dynamo.get)
	if err != nil {
		t.Fatalf("LoadStore without secrets: %v", err)
	}
	if c.Store != "dynamodb" || c.Dynamo.Table != "t" || c.Dynamo.Endpoint != "http://127.0.0.1:8000" {
		t.Errorf("LoadStore read %+v", c.Dynamo)
	}
	_, err = config.LoadStore(dynamo.with("DYNAMO_DB_ENDPOINT", "127.0.0.1:8000", "DYNAMO_DB_REGION", "", "JWT_PRIVATE_KEY", "short").get)
	if err == nil {
		t.Fatal("LoadStore accepted an endpoint without a scheme and no region")
	}
	if got := problems(err); len(got) != 2 || !strings.Contains(err.Error(), "DYNAMO_DB_ENDPOINT") || !strings.Contains(err.Error(), "DYNAMO_DB_REGION") {
		t.Errorf("LoadStore problems %q, want DYNAMO_DB_ENDPOINT and DYNAMO_DB_REGION alone", got)
	}
}
