// Package config reads the service's configuration from environment variables
// and validates it, reporting every problem at once. Errors name variables,
// never their values.
package config

import (
	"cmp"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/oidc"
	"github.com/meshauth/meshauth/internal/token"
)

// Environments APP_ENV accepts. Only development enables the development tools.
const (
	EnvDevelopment = "development"
	EnvStaging     = "staging"
	EnvProduction  = "production"
)

// Config is the whole configuration.
type Config struct {
	Env string
	// ListenAddr is the host or IP address the service listens on
	// (LISTEN_ADDR): loopback in development, every interface otherwise.
	ListenAddr string
	Port       int
	DataDir    string

	Store string // embedded | dynamodb | memory
	// Legacy is set when sessions of the GraphQL Mesh auth module continue.
	Legacy Legacy
	Dynamo Dynamo

	LoginProvider   string // static | http | bigcommerce, or custom when the program supplies its own
	StaticUsersFile string
	HTTPLogin       HTTPLogin
	BigCommerce     BigCommerce
	// LoginTimeout bounds each request to the http and bigcommerce providers' upstream.
	LoginTimeout time.Duration

	JWT JWT
	// RefreshSecret keys the refresh tokens' tags, derivation and stored hashes.
	RefreshSecret []byte

	Rules auth.Rules

	LogLevel  slog.Level
	LogFormat string // json | text
	// Introspection allows GraphQL introspection queries.
	Introspection bool
	// CustomerEntity serves the federation Customer entity (FEDERATION_CUSTOMER_ENTITY).
	CustomerEntity bool
	// MetricsAddr is where /metrics is served: "" on the service's own port,
	// "off" nowhere, otherwise a listen address of its own (":9090").
	MetricsAddr string

	// LoginLimits bound failed logins per account and per client address.
	LoginLimits auth.Limits
	HTTP        HTTP
	Cookie      Cookie
	// IDTokens configures exchangeIdentityToken; no issuers turns it off.
	IDTokens IDTokens
}

// IDTokens are the external issuers whose ID tokens exchangeIdentityToken accepts.
type IDTokens struct {
	Issuers              []oidc.Issuer
	RequireVerifiedEmail bool
}

// Well-known issuers. Sources: Firebase, "Verify ID tokens using a
// third-party JWT library"; Google Identity, "Verify the Google ID token on
// your server side" (whose tokens may carry either issuer spelling).
const (
	firebaseIssuerPrefix = "https://securetoken.google.com/"
	firebaseJWKS         = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
	googleJWKS           = "https://www.googleapis.com/oauth2/v3/certs"
)

// Cookie configures the HttpOnly refresh-token cookie mode.
type Cookie struct {
	Enabled  bool
	Name     string
	Path     string
	Domain   string
	Secure   bool
	SameSite http.SameSite
}

// HTTP holds the request limits and timeouts.
type HTTP struct {
	MaxBodyBytes   int64
	MaxTokens      int
	MaxDepth       int
	MaxAliases     int
	MaxComplexity  int
	MaxTokenFields int
	CORSOrigins    []string
	TrustedProxies []netip.Prefix

	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// Legacy names the GraphQL Mesh auth module's session table, whose sessions
// continue as meshauth sessions (LEGACY_DYNAMO_DB_AUTH_TABLE).
type Legacy struct {
	Table string
	// Secret is the module's JWT_PRIVATE_KEY; a secret.
	Secret []byte
}

// Dynamo configures the DynamoDB store.
type Dynamo struct {
	Table       string
	Region      string
	Endpoint    string
	CreateTable bool
	// CallTimeout bounds each DynamoDB call, retries included.
	CallTimeout time.Duration
}

// HTTPLogin configures LOGIN_PROVIDER=http.
type HTTPLogin struct {
	URL         string
	HeaderName  string
	HeaderValue string // a secret
}

// BigCommerce configures LOGIN_PROVIDER=bigcommerce.
type BigCommerce struct {
	StoreHash  string
	XAuthToken string // a secret
	ChannelID  int
	GraphQLURL string
	APIBase    string
	// TrustedProxySecret is X-BC-Trusted-Proxy-Secret (TRUSTED_PROXY_SECRET), a secret.
	TrustedProxySecret string
}

// JWT configures access tokens.
type JWT struct {
	Algorithm string // HS256 | EdDSA
	// Secret is the HS256 shared secret.
	Secret []byte
	// Ed25519Key is the EdDSA signing key.
	Ed25519Key ed25519.PrivateKey
	// ExtraKeys are further EdDSA verification keys (a rotation's previous or
	// next key), published in the JWKS.
	ExtraKeys []token.PublicKey
	KeyID     string
	Issuer    string
	Audience  string
	// CustomerIDClaims carry the customer id (JWT_CUSTOMER_ID_CLAIMS).
	CustomerIDClaims []string
}

// Development reports whether the development tools are enabled.
func (c Config) Development() bool { return c.Env == EnvDevelopment }

// Variables lists every environment variable Load reads.
var Variables = []string{
	"APP_ENV", "LISTEN_ADDR", "PORT", "DATA_DIR", "LOG_LEVEL", "LOG_FORMAT", "GRAPHQL_INTROSPECTION", "FEDERATION_CUSTOMER_ENTITY", "METRICS_ADDR",
	"STORE", "DYNAMO_DB_AUTH_TABLE", "DYNAMO_DB_REGION", "DYNAMO_DB__REGION", "DYNAMO_DB_ENDPOINT", "DYNAMO_DB_CREATE_TABLE", "DYNAMO_DB_TIMEOUT_IN_MILLISECONDS", "LEGACY_DYNAMO_DB_AUTH_TABLE",
	"LOGIN_PROVIDER", "STATIC_USERS_FILE", "LOGIN_TIMEOUT_IN_SECONDS",
	"LOGIN_HTTP_URL", "LOGIN_HTTP_SECRET_HEADER", "LOGIN_HTTP_SECRET",
	"STORE_HASH", "X_AUTH_TOKEN", "BC_CHANNEL_ID", "BC_GRAPHQL_API", "BC_API_URL", "TRUSTED_PROXY_SECRET",
	"JWT_ALGORITHM", "JWT_PRIVATE_KEY", "JWT_ED25519_PRIVATE_KEY", "JWT_ED25519_PRIVATE_KEY_FILE", "JWT_ED25519_EXTRA_PUBLIC_KEYS_FILE", "JWT_KEY_ID", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_CUSTOMER_ID_CLAIMS",
	"REFRESH_TOKEN_SECRET",
	"ACCESS_TOKEN_EXPIRY_IN_MINUTES", "NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", "EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES",
	"SESSION_MAX_LIFETIME_IN_MINUTES", "REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS", "MAX_SESSIONS_PER_CUSTOMER",
	"LOGIN_LIMIT_ACCOUNT", "LOGIN_LIMIT_IP", "MAX_TOKEN_FIELDS_PER_REQUEST",
	"MAX_BODY_BYTES", "GRAPHQL_MAX_TOKENS", "GRAPHQL_MAX_DEPTH", "GRAPHQL_MAX_ALIASES", "GRAPHQL_MAX_COMPLEXITY",
	"CORS_ALLOWED_ORIGINS", "TRUSTED_PROXIES",
	"REFRESH_TOKEN_COOKIE", "REFRESH_TOKEN_COOKIE_NAME", "REFRESH_TOKEN_COOKIE_PATH", "REFRESH_TOKEN_COOKIE_DOMAIN",
	"REFRESH_TOKEN_COOKIE_SECURE", "REFRESH_TOKEN_COOKIE_SAMESITE",
	"OIDC_ISSUERS", "FIREBASE_PROJECT_ID", "GOOGLE_CLIENT_IDS", "OIDC_REQUIRE_VERIFIED_EMAIL",
	"HTTP_READ_HEADER_TIMEOUT_IN_SECONDS", "HTTP_READ_TIMEOUT_IN_SECONDS", "HTTP_WRITE_TIMEOUT_IN_SECONDS", "HTTP_IDLE_TIMEOUT_IN_SECONDS",
}

// MinSecretLen is the shortest HS256 or refresh-token secret accepted
// (RFC 7518 section 3.2: a key of at least the hash output size, 256 bits).
const MinSecretLen = 32

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := r.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail("%s must be one of %s", name, strings.Join(allowed, ", "))
	return def
}

func (r *reader) integer(name string, def, min, max int) int {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		r.fail("%s must be a whole number from %d to %d", name, min, max)
		return def
	}
	return n
}

func (r *reader) boolean(name string, def bool) bool {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.fail("%s must be true or false", name)
		return def
	}
	return b
}

// Option changes how Load reads.
type Option func(*loadOptions)

type loadOptions struct{ customLogin bool }

// CustomLogin tells Load that the program supplies its own login service:
// LOGIN_PROVIDER and the providers' variables are not read.
func CustomLogin() Option { return func(o *loadOptions) { o.customLogin = true } }

// list reads a comma-separated list, dropping empty entries.
func (r *reader) list(name string) []string {
	var out []string
	for _, v := range strings.Split(r.str(name, ""), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// DefaultTrustedProxies are the loopback and private ranges: where a gateway
// in front of meshauth runs (the same host, a container network, a VPC).
// Behind a gateway every request arrives from the gateway's address, so
// without trusting it every customer would share one address, and one
// address's login limit.
var DefaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"),
}

// trustedProxies reads TRUSTED_PROXIES: unset, the private ranges; none,
// no proxy at all; otherwise the list.
func (r *reader) trustedProxies(name string) []netip.Prefix {
	switch strings.ToLower(r.str(name, "")) {
	case "":
		return DefaultTrustedProxies
	case "none":
		return nil
	}
	return r.prefixes(name)
}

// prefixes reads a list of IP addresses and CIDR prefixes.
func (r *reader) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range r.list(name) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				r.fail("%s must list IP addresses or CIDR prefixes (such as 10.0.0.0/8)", name)
				return nil
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// Listen addresses: every interface, and loopback.
const (
	AllInterfaces = "0.0.0.0"
	Loopback      = "127.0.0.1"
)

// listenAddr reads the host or IP address to listen on. Unset, it is
// loopback in development, whose session tools and GraphiQL answer without
// credentials, and every interface otherwise. 0.0.0.0 and :: both mean
// every interface, IPv4 and IPv6 alike (Go's net.Listen).
func (r *reader) listenAddr(name string, dev bool) string {
	def := AllInterfaces
	if dev {
		def = Loopback
	}
	v := r.str(name, def)
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		v = v[1 : len(v)-1]
	}
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return v
		}
		return a.String()
	}
	if !validHostName(v) {
		r.fail("%s must be a host name or an IP address without a port, such as 127.0.0.1, 0.0.0.0 or :: (PORT is the port)", name)
		return def
	}
	return v
}

// validHostName reports whether s is a DNS host name (RFC 1123 section 2.1).
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// windows reads login-limit windows, "MAX/DURATION" separated by commas
// ("5/1m,20/1h"); "off" means none.
func (r *reader) windows(name, def string) []auth.Window {
	v := r.str(name, def)
	if v == "off" {
		return nil
	}
	var out []auth.Window
	for _, w := range strings.Split(v, ",") {
		n, d, ok := strings.Cut(strings.TrimSpace(w), "/")
		max, err1 := strconv.ParseInt(n, 10, 64)
		length, err2 := time.ParseDuration(d)
		if !ok || err1 != nil || err2 != nil || max < 1 || length < time.Second {
			r.fail("%s must be off or windows like 5/1m,20/1h (at least 1 per at least 1s)", name)
			return nil
		}
		out = append(out, auth.Window{Max: max, Length: length})
	}
	// The windows nest, so that one store item counts them all, each under
	// a name of its own.
	longest := slices.MaxFunc(out, func(a, b auth.Window) int { return cmp.Compare(a.Length, b.Length) }).Length
	seen := map[time.Duration]bool{}
	for _, w := range out {
		if seen[w.Length] {
			r.fail("%s: window length %s is given twice; give each length once", name, w.Length)
			return nil
		}
		seen[w.Length] = true
		if longest%w.Length != 0 {
			r.fail("%s: each window's length must divide the longest (%s); %s does not", name, longest, w.Length)
			return nil
		}
	}
	return out
}

// Load reads the configuration through getenv (os.Getenv in main) and
// validates it. The error lists every problem found.
func Load(getenv func(string) string, opts ...Option) (Config, error) {
	var lo loadOptions
	for _, o := range opts {
		o(&lo)
	}
	r := &reader{getenv: getenv}
	var c Config
	c.Env = r.oneOf("APP_ENV", EnvProduction, EnvDevelopment, EnvStaging, EnvProduction)
	dev := c.Development()
	c.ListenAddr = r.listenAddr("LISTEN_ADDR", dev)
	c.Port = r.integer("PORT", 4000, 1, 65535)
	c.DataDir = r.str("DATA_DIR", "./data")

	switch r.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error") {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	}
	defFormat := "json"
	if dev {
		defFormat = "text"
	}
	c.LogFormat = r.oneOf("LOG_FORMAT", defFormat, "json", "text")
	c.Introspection = r.boolean("GRAPHQL_INTROSPECTION", dev)
	c.CustomerEntity = r.boolean("FEDERATION_CUSTOMER_ENTITY", false)
	c.MetricsAddr = r.str("METRICS_ADDR", "")
	if c.MetricsAddr != "" && c.MetricsAddr != "off" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			r.fail("METRICS_ADDR must be off or a listen address such as :9090")
		}
	}

	readStore(r, &c)

	if lo.customLogin {
		c.LoginProvider = "custom"
	} else {
		readLogin(r, &c, dev)
	}

	readJWT(r, &c, dev)
	c.RefreshSecret = secret(r, "REFRESH_TOKEN_SECRET", dev)
	if jwtKey := strings.TrimSpace(r.getenv("JWT_PRIVATE_KEY")); jwtKey != "" && sameSecret([]byte(jwtKey), c.RefreshSecret) {
		r.fail("JWT_PRIVATE_KEY and REFRESH_TOKEN_SECRET must be different secrets: one key for two purposes lets a weakness in one use reach the other")
	}
	if t := r.str("LEGACY_DYNAMO_DB_AUTH_TABLE", ""); t != "" {
		c.Legacy = Legacy{Table: t, Secret: []byte(strings.TrimSpace(r.getenv("JWT_PRIVATE_KEY")))}
		if c.Store != "dynamodb" {
			r.fail("LEGACY_DYNAMO_DB_AUTH_TABLE needs STORE=dynamodb: the legacy table is read with the same DynamoDB settings")
		}
		if len(c.Legacy.Secret) == 0 {
			r.fail("LEGACY_DYNAMO_DB_AUTH_TABLE needs JWT_PRIVATE_KEY, the secret the GraphQL Mesh auth module signed its tokens with")
		}
	}

	c.Rules = auth.Rules{
		AccessTTL:     time.Duration(r.integer("ACCESS_TOKEN_EXPIRY_IN_MINUTES", 10, 1, 1440)) * time.Minute,
		IdleTTL:       time.Duration(r.integer("NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", 15, 1, 525600)) * time.Minute,
		RememberTTL:   time.Duration(r.integer("EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES", 43200, 1, 5256000)) * time.Minute,
		MaxLifetime:   time.Duration(r.integer("SESSION_MAX_LIFETIME_IN_MINUTES", 0, 0, 5256000)) * time.Minute,
		ReuseInterval: time.Duration(r.integer("REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS", 30, 0, 300)) * time.Second,
		MaxSessions:   r.integer("MAX_SESSIONS_PER_CUSTOMER", 50, 0, 10000),
	}
	if !(c.Rules.AccessTTL < c.Rules.IdleTTL && c.Rules.IdleTTL < c.Rules.RememberTTL) {
		r.fail("expiries must satisfy ACCESS_TOKEN_EXPIRY_IN_MINUTES < NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES < EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES")
	}
	if c.Rules.MaxLifetime > 0 && c.Rules.MaxLifetime < c.Rules.IdleTTL {
		r.fail("SESSION_MAX_LIFETIME_IN_MINUTES must be 0 (no cap) or at least NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES")
	}

	c.LoginLimits = auth.Limits{
		Account: r.windows("LOGIN_LIMIT_ACCOUNT", "5/1m,20/1h"),
		IP:      r.windows("LOGIN_LIMIT_IP", "20/1m,200/1h"),
	}
	seconds := func(name string, def int) time.Duration {
		return time.Duration(r.integer(name, def, 1, 3600)) * time.Second
	}
	c.HTTP = HTTP{
		MaxBodyBytes:      int64(r.integer("MAX_BODY_BYTES", 64<<10, 1<<10, 16<<20)),
		MaxTokens:         r.integer("GRAPHQL_MAX_TOKENS", 2000, 100, 1000000),
		MaxDepth:          r.integer("GRAPHQL_MAX_DEPTH", 12, 0, 1000),
		MaxAliases:        r.integer("GRAPHQL_MAX_ALIASES", 15, 0, 1000),
		MaxComplexity:     r.integer("GRAPHQL_MAX_COMPLEXITY", 200, 0, 100000),
		MaxTokenFields:    r.integer("MAX_TOKEN_FIELDS_PER_REQUEST", 1, 0, 100),
		CORSOrigins:       r.origins("CORS_ALLOWED_ORIGINS"),
		TrustedProxies:    r.trustedProxies("TRUSTED_PROXIES"),
		ReadHeaderTimeout: seconds("HTTP_READ_HEADER_TIMEOUT_IN_SECONDS", 5),
		ReadTimeout:       seconds("HTTP_READ_TIMEOUT_IN_SECONDS", 10),
		WriteTimeout:      seconds("HTTP_WRITE_TIMEOUT_IN_SECONDS", 15),
		IdleTimeout:       seconds("HTTP_IDLE_TIMEOUT_IN_SECONDS", 60),
	}

	c.Cookie = Cookie{
		Enabled: r.boolean("REFRESH_TOKEN_COOKIE", false),
		Name:    r.str("REFRESH_TOKEN_COOKIE_NAME", "meshauth_refresh"),
		Domain:  r.str("REFRESH_TOKEN_COOKIE_DOMAIN", ""),
		Secure:  r.boolean("REFRESH_TOKEN_COOKIE_SECURE", true),
	}
	defPath := "/graphql"
	if hasPrefixFold(c.Cookie.Name, hostPrefix) {
		defPath = "/" // the only path a __Host- cookie may have
	}
	c.Cookie.Path = r.str("REFRESH_TOKEN_COOKIE_PATH", defPath)
	checkCookiePrefix(r, c.Cookie)
	switch r.oneOf("REFRESH_TOKEN_COOKIE_SAMESITE", "Strict", "Strict", "Lax", "None") {
	case "Strict":
		c.Cookie.SameSite = http.SameSiteStrictMode
	case "Lax":
		c.Cookie.SameSite = http.SameSiteLaxMode
	case "None":
		c.Cookie.SameSite = http.SameSiteNoneMode
		if !c.Cookie.Secure {
			r.fail("REFRESH_TOKEN_COOKIE_SAMESITE=None needs REFRESH_TOKEN_COOKIE_SECURE=true (browsers refuse it otherwise)")
		}
	}
	if !c.Cookie.Secure && c.Cookie.Enabled && !dev {
		r.fail("REFRESH_TOKEN_COOKIE_SECURE=false is for local development over plain http only")
	}

	readIDTokens(r, &c.IDTokens, dev)

	if len(r.errs) > 0 {
		return c, fmt.Errorf("invalid configuration:\n  %w", joinLines(r.errs))
	}
	return c, nil
}

// LoadStore reads and validates the store's variables alone (APP_ENV,
// DATA_DIR, STORE and DYNAMO_DB_*), with the rules Load applies to them:
// for commands that open the store and nothing else, such as meshauth
// migrate, which needs no secrets and no users file.
func LoadStore(getenv func(string) string) (Config, error) {
	r := &reader{getenv: getenv}
	var c Config
	c.Env = r.oneOf("APP_ENV", EnvProduction, EnvDevelopment, EnvStaging, EnvProduction)
	c.DataDir = r.str("DATA_DIR", "./data")
	readStore(r, &c)
	if len(r.errs) > 0 {
		return c, fmt.Errorf("invalid configuration:\n  %w", joinLines(r.errs))
	}
	return c, nil
}

// readStore reads STORE and the DynamoDB settings.
func readStore(r *reader, c *Config) {
	c.Store = r.oneOf("STORE", "embedded", "embedded", "dynamodb", "memory")
	c.Dynamo = Dynamo{
		Table:       r.str("DYNAMO_DB_AUTH_TABLE", ""),
		Region:      r.str("DYNAMO_DB_REGION", r.str("DYNAMO_DB__REGION", "")),
		Endpoint:    r.httpURL("DYNAMO_DB_ENDPOINT", "", "http://127.0.0.1:8000"),
		CreateTable: r.boolean("DYNAMO_DB_CREATE_TABLE", false),
		CallTimeout: time.Duration(r.integer("DYNAMO_DB_TIMEOUT_IN_MILLISECONDS", 2000, 50, 60000)) * time.Millisecond,
	}
	if c.Store == "dynamodb" {
		if c.Dynamo.Table == "" {
			r.fail("DYNAMO_DB_AUTH_TABLE is required with STORE=dynamodb")
		}
		if c.Dynamo.Region == "" {
			r.fail("DYNAMO_DB_REGION is required with STORE=dynamodb")
		}
	}
}

// httpURL reads an absolute http or https URL with a host (def when
// unset); example shows the form in the error.
func (r *reader) httpURL(name, def, example string) string {
	v := r.str(name, def)
	if v == "" {
		return v
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		r.fail("%s must be an absolute http or https URL with a host, such as %s", name, example)
	}
	return v
}

// origins reads the CORS origins: each a browser's origin (RFC 6454), a
// scheme, a host and an optional port, as the Origin header carries it.
// * is refused: answers carry Access-Control-Allow-Credentials (the
// refresh-token cookie), which browsers never honour beside a wildcard,
// and echoing every origin instead would let any site call with the
// customer's cookie.
func (r *reader) origins(name string) []string {
	list := r.list(name)
	for _, o := range list {
		if o == "*" {
			r.fail("%s: * is refused: the service allows credentials (the refresh-token cookie), which browsers never send to a wildcard and which no site but your storefronts may use; list the storefronts' origins, such as https://shop.example", name)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
			r.fail("%s must list origins, each a scheme and a host with an optional port and nothing after it, such as https://shop.example or http://localhost:3000 (browsers send exactly that; a trailing slash never matches)", name)
		}
	}
	return list
}

// Cookie name prefixes that browsers enforce (RFC 6265bis section 4.1.3):
// a __Secure- cookie must be Secure; a __Host- cookie must be Secure, have
// Path=/ and no Domain, so that it is bound to the exact host and no sibling
// subdomain can set or shadow it. Browsers match them in any case.
const (
	hostPrefix   = "__Host-"
	securePrefix = "__Secure-"
)

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// checkCookiePrefix refuses cookie settings a browser would drop the
// cookie for, given its name's prefix: every customer would be logged out
// without a word.
func checkCookiePrefix(r *reader, c Cookie) {
	prefix := ""
	switch {
	case hasPrefixFold(c.Name, hostPrefix):
		prefix = hostPrefix
	case hasPrefixFold(c.Name, securePrefix):
		prefix = securePrefix
	default:
		return
	}
	if !c.Secure {
		r.fail("REFRESH_TOKEN_COOKIE_SECURE must be true with a %s cookie name (REFRESH_TOKEN_COOKIE_NAME): browsers refuse the cookie otherwise", prefix)
	}
	if prefix != hostPrefix {
		return
	}
	if c.Path != "/" {
		r.fail("REFRESH_TOKEN_COOKIE_PATH must be / (or unset) with a __Host- cookie name (REFRESH_TOKEN_COOKIE_NAME): browsers refuse the cookie otherwise")
	}
	if c.Domain != "" {
		r.fail("REFRESH_TOKEN_COOKIE_DOMAIN must be empty with a __Host- cookie name (REFRESH_TOKEN_COOKIE_NAME): such a cookie is bound to the exact host, and browsers refuse it with a Domain")
	}
}

func readLogin(r *reader, c *Config, dev bool) {
	c.LoginProvider = r.oneOf("LOGIN_PROVIDER", "static", "static", "http", "bigcommerce")
	c.LoginTimeout = time.Duration(r.integer("LOGIN_TIMEOUT_IN_SECONDS", 10, 1, 120)) * time.Second
	// required reads a variable the provider needs; with an example, a URL.
	required := func(name, urlExample string) string {
		v := r.str(name, "")
		switch {
		case v == "":
			r.fail("%s is required with LOGIN_PROVIDER=%s", name, c.LoginProvider)
		case urlExample != "":
			r.httpURL(name, "", urlExample)
		}
		return v
	}
	switch c.LoginProvider {
	case "static":
		c.StaticUsersFile = r.str("STATIC_USERS_FILE", "")
		if c.StaticUsersFile == "" && !dev {
			r.fail("STATIC_USERS_FILE is required with LOGIN_PROVIDER=static outside development")
		}
	case "http":
		c.HTTPLogin = HTTPLogin{
			URL:         required("LOGIN_HTTP_URL", "https://shop.example/meshauth-login"),
			HeaderName:  r.str("LOGIN_HTTP_SECRET_HEADER", ""),
			HeaderValue: strings.TrimSpace(r.getenv("LOGIN_HTTP_SECRET")),
		}
		if (c.HTTPLogin.HeaderName == "") != (c.HTTPLogin.HeaderValue == "") {
			r.fail("LOGIN_HTTP_SECRET_HEADER and LOGIN_HTTP_SECRET go together: set both or neither")
		}
	case "bigcommerce":
		c.BigCommerce = BigCommerce{
			StoreHash:  required("STORE_HASH", ""),
			XAuthToken: required("X_AUTH_TOKEN", ""),
			ChannelID:  r.integer("BC_CHANNEL_ID", 1, 1, 1<<31-1),
			GraphQLURL: required("BC_GRAPHQL_API", "https://store-abc123.mybigcommerce.com/graphql"),
			APIBase:    r.httpURL("BC_API_URL", "https://api.bigcommerce.com", "https://api.bigcommerce.com"),

			TrustedProxySecret: r.str("TRUSTED_PROXY_SECRET", ""),
		}
	}
}

// readIDTokens reads the issuers exchangeIdentityToken trusts. Outside
// development an OIDC_ISSUERS issuer and its JWKS URL must be https: a key
// set fetched over plain http can be replaced on the way, and an http URL
// is how a key fetch is aimed at a cloud metadata address
// (http://169.254.169.254/) or a local service that speaks no TLS. The
// built-in Firebase and Google issuers are https already (Google's
// "accounts.google.com" is an iss spelling, never fetched).
func readIDTokens(r *reader, t *IDTokens, dev bool) {
	t.RequireVerifiedEmail = r.boolean("OIDC_REQUIRE_VERIFIED_EMAIL", true)
	if v := r.str("OIDC_ISSUERS", ""); v != "" {
		var list []struct {
			Issuer    string   `json:"issuer"`
			JWKSURL   string   `json:"jwks_url"`
			Audiences []string `json:"audiences"`
		}
		if err := json.Unmarshal([]byte(v), &list); err != nil {
			r.fail(`OIDC_ISSUERS must be a JSON array like [{"issuer": "...", "jwks_url": "...", "audiences": ["..."]}]`)
		}
		for n, i := range list {
			if !dev && (!isHTTPS(i.Issuer) || !isHTTPS(i.JWKSURL)) {
				r.fail("OIDC_ISSUERS: issuer %d: issuer and jwks_url must be https URLs outside development (APP_ENV=development allows http for a local issuer)", n+1)
			}
			t.Issuers = append(t.Issuers, oidc.Issuer{Issuer: i.Issuer, JWKSURL: i.JWKSURL, Audiences: i.Audiences})
		}
	}
	if p := r.str("FIREBASE_PROJECT_ID", ""); p != "" {
		t.Issuers = append(t.Issuers, oidc.Issuer{Issuer: firebaseIssuerPrefix + p, JWKSURL: firebaseJWKS, Audiences: []string{p}})
	}
	if ids := r.list("GOOGLE_CLIENT_IDS"); len(ids) > 0 {
		for _, iss := range []string{"https://accounts.google.com", "accounts.google.com"} {
			t.Issuers = append(t.Issuers, oidc.Issuer{Issuer: iss, JWKSURL: googleJWKS, Audiences: ids})
		}
	}
	if len(t.Issuers) > 0 {
		if _, err := oidc.New(oidc.Options{Issuers: t.Issuers}); err != nil {
			r.fail("OIDC_ISSUERS: %v", err)
		}
	}
}

func readJWT(r *reader, c *Config, dev bool) {
	j := &c.JWT
	j.Algorithm = r.oneOf("JWT_ALGORITHM", "HS256", "HS256", "EdDSA")
	j.Issuer = r.str("JWT_ISSUER", "meshauth")
	j.Audience = r.str("JWT_AUDIENCE", "meshauth")
	j.KeyID = r.str("JWT_KEY_ID", "")
	j.CustomerIDClaims = r.list("JWT_CUSTOMER_ID_CLAIMS")
	if len(j.CustomerIDClaims) == 0 {
		j.CustomerIDClaims = token.DefaultCustomerIDClaims
	}
	for _, n := range j.CustomerIDClaims {
		if token.Reserved[n] && n != "customer_id" || n == "role" || n == "status" {
			r.fail("JWT_CUSTOMER_ID_CLAIMS: %q is a registered or meshauth claim; name claims of your own, such as customer_id,bc_customer_id", n)
		}
	}
	switch j.Algorithm {
	case "HS256":
		j.Secret = secret(r, "JWT_PRIVATE_KEY", dev)
	case "EdDSA":
		if extra := r.str("JWT_ED25519_EXTRA_PUBLIC_KEYS_FILE", ""); extra != "" {
			b, err := os.ReadFile(extra)
			if err == nil {
				j.ExtraKeys, err = token.ParsePublicKeys(b)
			}
			if err != nil {
				r.fail("JWT_ED25519_EXTRA_PUBLIC_KEYS_FILE: %v", err)
			}
		}
		pemText, file := r.str("JWT_ED25519_PRIVATE_KEY", ""), r.str("JWT_ED25519_PRIVATE_KEY_FILE", "")
		switch {
		case pemText != "" && file != "":
			r.fail("set JWT_ED25519_PRIVATE_KEY or JWT_ED25519_PRIVATE_KEY_FILE, not both")
			return
		case file != "":
			b, err := os.ReadFile(file)
			if err != nil {
				r.fail("JWT_ED25519_PRIVATE_KEY_FILE cannot be read: %v", errors.Unwrap(err))
				return
			}
			pemText = string(b)
		case pemText == "":
			if !dev {
				r.fail("JWT_ED25519_PRIVATE_KEY or JWT_ED25519_PRIVATE_KEY_FILE is required with JWT_ALGORITHM=EdDSA")
			}
			return
		}
		key, err := token.ParseEd25519PrivateKey([]byte(pemText))
		if err != nil {
			r.fail("Ed25519 private key: %v", err)
			return
		}
		j.Ed25519Key = key
		if j.KeyID == "" {
			j.KeyID = token.Thumbprint(key.Public().(ed25519.PublicKey))
		}
	}
}

// secret reads a secret of at least MinSecretLen bytes. In development it may
// be missing (EnsureDevSecrets fills it in).
func secret(r *reader, name string, dev bool) []byte {
	v := strings.TrimSpace(r.getenv(name))
	switch {
	case v == "" && dev:
		return nil
	case v == "":
		r.fail("%s is required outside development", name)
	case len(v) < MinSecretLen:
		r.fail("%s must be at least %d bytes", name, MinSecretLen)
	}
	return []byte(v)
}

// isHTTPS reports whether s is an absolute https URL with a host.
func isHTTPS(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != ""
}

// sameSecret reports, in time that does not depend on their contents,
// whether a and b are the same non-empty secret.
func sameSecret(a, b []byte) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare(a, b) == 1
}

func joinLines(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}
