package main

// Binary-level tests: the meshauth binary, built as users build it, started
// as a process with nothing but documented environment variables, and
// driven over HTTP. A capability is done when these pass.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/servicetest"
)

// binary is the path of the meshauth binary built for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshauth-binary-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "meshauth")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	binJWTSecret     = "binary-test-jwt-secret-0123456789abcdef"
	binRefreshSecret = "binary-test-refresh-secret-0123456789abcd"
	binPassword      = "correct horse battery staple"
)

// process is a running meshauth binary.
type process struct {
	url     string
	metrics string
	logs    *syncBuffer
	// halt sends sig once (later calls return the first one's result) and
	// waits for the binary to exit.
	halt   func(sig os.Signal) error
	killed bool // by the test, on purpose
}

// stop sends SIGTERM and expects a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.halt(syscall.SIGTERM); err != nil {
		t.Fatalf("the binary exited with %v\n%s", err, p.logs)
	}
}

// kill ends the binary as a crash would.
func (p *process) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	if err := p.halt(syscall.SIGKILL); err == nil {
		t.Fatal("the binary exited cleanly on SIGKILL")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// usersFile makes a users file with the binary's own users command, the
// password on stdin, as the README shows.
func usersFile(t *testing.T, users map[string]string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "users.json")
	for email, id := range users {
		cmd := exec.Command(binary, "users", "add", "-file", file, "-email", email, "-customer-id", id)
		cmd.Stdin = strings.NewReader(binPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("users add: %v\n%s", err, out)
		}
	}
	return file
}

// startBinary runs the binary with env and only env (PORT and DATA_DIR are
// chosen here unless env sets them) until the test stops it or ends, when
// it sends SIGTERM and expects a clean exit.
func startBinary(t *testing.T, env map[string]string) *process {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	vars := map[string]string{"PORT": port, "DATA_DIR": t.TempDir()}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(binary)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Reached on loopback unless LISTEN_ADDR names one address.
	host := "127.0.0.1"
	if a := vars["LISTEN_ADDR"]; a != "" && a != "0.0.0.0" && a != "::" {
		host = a
	}
	p := &process{url: "http://" + net.JoinHostPort(host, port), logs: &syncBuffer{}}
	if m := vars["METRICS_ADDR"]; m != "" && m != "off" {
		p.metrics = "http://" + m
	}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	var halted error
	p.halt = func(sig os.Signal) error {
		once.Do(func() {
			_ = cmd.Process.Signal(sig)
			select {
			case halted = <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				halted = fmt.Errorf("no exit 15 s after %v", sig)
			}
		})
		return halted
	}
	t.Cleanup(func() {
		if err := p.halt(syscall.SIGTERM); err != nil && !p.killed {
			t.Errorf("the binary exited with %v\n%s", err, p.logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(p.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the binary stopped: %v\n%s", err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the binary did not become ready\n%s", p.logs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// production is the production environment of the README's checklist, with
// the static provider on a users file.
func production(t *testing.T, extra map[string]string) map[string]string {
	env := map[string]string{
		"APP_ENV":              "production",
		"JWT_PRIVATE_KEY":      binJWTSecret,
		"REFRESH_TOKEN_SECRET": binRefreshSecret,
		"STATIC_USERS_FILE":    usersFile(t, map[string]string{"ada@example.com": "1", "bob@example.com": "2"}),
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

type gqlResponse struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	raw    string
	header http.Header
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return "OK"
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

type tokens struct {
	Token        string  `json:"token"`
	RefreshToken *string `json:"refresh_token"`
}

func (r gqlResponse) tokens(t *testing.T, field string) tokens {
	t.Helper()
	var tk tokens
	if err := json.Unmarshal(r.Data[field], &tk); err != nil || tk.Token == "" {
		t.Fatalf("%s: no tokens in %s", field, r.raw)
	}
	return tk
}

func (p *process) post(t *testing.T, query string, vars map[string]any, header http.Header) gqlResponse {
	t.Helper()
	r, _ := p.postCookie(t, "", query, vars, nil, header)
	return r
}

const (
	loginQ   = `mutation($e: String!, $p: String!, $r: Boolean) { generateCustomerToken(email: $e, password: $p, remember_me: $r) { token refresh_token } }`
	refreshQ = `mutation($t: String) { refreshCustomerToken(refresh_token: $t) { token refresh_token } }`
	revokeQ  = `mutation($t: String) { revokeCustomerToken(refresh_token: $t) { result } }`
)

func (p *process) login(t *testing.T, email string) tokens {
	t.Helper()
	return p.post(t, loginQ, map[string]any{"e": email, "p": binPassword}, nil).tokens(t, "generateCustomerToken")
}

// TestBinarySessions: password login, refresh, the grace for concurrent
// refreshes, reuse detection and logout, in production on the embedded store.
func TestBinarySessions(t *testing.T) {
	p := startBinary(t, production(t, nil))

	if c := p.post(t, loginQ, map[string]any{"e": "ada@example.com", "p": "wrong"}, nil).code(); c != "INVALID_CREDENTIALS" {
		t.Fatalf("wrong password: %s", c)
	}
	rt1 := *p.login(t, "ada@example.com").RefreshToken
	rt2 := *p.post(t, refreshQ, map[string]any{"t": rt1}, nil).tokens(t, "refreshCustomerToken").RefreshToken

	// Three tabs refresh rt2 at once: one rotation, the same successor for all.
	var wg sync.WaitGroup
	got := make([]string, 3)
	for i := range got {
		wg.Go(func() {
			r := p.post(t, refreshQ, map[string]any{"t": rt2}, nil)
			if r.code() == "OK" {
				got[i] = *r.tokens(t, "refreshCustomerToken").RefreshToken
			}
		})
	}
	wg.Wait()
	if got[0] == "" || got[0] != got[1] || got[1] != got[2] || got[0] == rt2 {
		t.Fatalf("concurrent refreshes got different successors: %q", got)
	}
	rt3 := got[0]

	// rt1 is older than the grace covers: reuse ends the session, rt3 too.
	if c := p.post(t, refreshQ, map[string]any{"t": rt1}, nil).code(); c != "REFRESH_TOKEN_REUSED" {
		t.Fatalf("reuse of the first token: %s", c)
	}
	if c := p.post(t, refreshQ, map[string]any{"t": rt3}, nil).code(); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("the current token after reuse: %s", c)
	}

	// Logout, twice: idempotent; then the token is dead.
	rt := *p.login(t, "bob@example.com").RefreshToken
	for range 2 {
		var out struct{ Result bool }
		r := p.post(t, revokeQ, map[string]any{"t": rt}, nil)
		if err := json.Unmarshal(r.Data["revokeCustomerToken"], &out); err != nil || !out.Result {
			t.Fatalf("revoke: %s", r.raw)
		}
	}
	if c := p.post(t, refreshQ, map[string]any{"t": rt}, nil).code(); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("refresh after logout: %s", c)
	}
	if !strings.Contains(p.logs.String(), `"event":"refresh.reuse_detected"`) {
		t.Error("no audit line for the reuse")
	}
}

// TestBinaryRefreshesSurviveRestart: with the embedded store, a session's
// newest refresh token still works after the binary stops, cleanly or by
// a crash, and starts again on the same DATA_DIR; an older one is reuse.
func TestBinaryRefreshesSurviveRestart(t *testing.T) {
	for _, halt := range []struct {
		name string
		do   func(*process, *testing.T)
	}{{"SIGTERM", (*process).stop}, {"crash", (*process).kill}} {
		t.Run(halt.name, func(t *testing.T) {
			env := production(t, map[string]string{"DATA_DIR": t.TempDir()})
			p := startBinary(t, env)
			rt1 := *p.login(t, "ada@example.com").RefreshToken
			rt2 := *p.post(t, refreshQ, map[string]any{"t": rt1}, nil).tokens(t, "refreshCustomerToken").RefreshToken
			rt3 := *p.post(t, refreshQ, map[string]any{"t": rt2}, nil).tokens(t, "refreshCustomerToken").RefreshToken
			halt.do(p, t)

			p = startBinary(t, env)
			if r := p.post(t, refreshQ, map[string]any{"t": rt3}, nil); r.code() != "OK" {
				t.Fatalf("the newest token after the restart: %s", r.raw)
			}
			if c := p.post(t, refreshQ, map[string]any{"t": rt1}, nil).code(); c != "REFRESH_TOKEN_REUSED" {
				t.Fatalf("the first token after the restart: %s", c)
			}
		})
	}
}

// TestBinaryDevToolsRefusedInProduction: the development-only operations
// answer FORBIDDEN outside development and are absent from the SDL.
func TestBinaryDevToolsRefusedInProduction(t *testing.T) {
	p := startBinary(t, production(t, nil))
	rt := *p.login(t, "ada@example.com").RefreshToken
	for _, q := range []string{
		`query($t: String) { getUserAuth(user_id: "1", refresh_token: $t) { customer_id } }`,
		`query { getAllAuthItemsById(user_id: "1") { customer_id } }`,
		`mutation { removeAllUserAuthItems(user_id: "1") { success } }`,
	} {
		if c := p.post(t, q, map[string]any{"t": rt}, nil).code(); c != "FORBIDDEN" {
			t.Errorf("%s: %s", q, c)
		}
	}
	var sdl struct{ SDL string }
	_ = json.Unmarshal(p.post(t, `{ _service { sdl } }`, nil, nil).Data["_service"], &sdl)
	if sdl.SDL == "" || strings.Contains(sdl.SDL, "getUserAuth") {
		t.Errorf("production SDL: %.200s", sdl.SDL)
	}
	// The session survived every refused call.
	if c := p.post(t, refreshQ, map[string]any{"t": rt}, nil).code(); c != "OK" {
		t.Errorf("refresh after refused dev tools: %s", c)
	}
}

// TestBinaryExchange: exchangeIdentityToken in the shipped binary, with a
// local OIDC issuer over TLS (trusted through SSL_CERT_FILE) configured by
// OIDC_ISSUERS, and the static users file naming the customer.
func TestBinaryExchange(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	issuer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
			"x": base64.RawURLEncoding.EncodeToString(pub),
		}}})
	}))
	defer issuer.Close()
	caFile := filepath.Join(t.TempDir(), "issuer-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issuer.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	idToken := func(claims jwt.MapClaims) string {
		c := jwt.MapClaims{"iss": issuer.URL, "aud": "shop", "sub": "g-1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range claims {
			c[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	p := startBinary(t, production(t, map[string]string{
		"OIDC_ISSUERS":  `[{"issuer": "` + issuer.URL + `", "jwks_url": "` + issuer.URL + `/jwks", "audiences": ["shop"]}]`,
		"SSL_CERT_FILE": caFile,
	}))
	const exchangeQ = `mutation($t: String!) { exchangeIdentityToken(id_token: $t) { token refresh_token } }`

	// The reproduction: a malformed ID token is INVALID_ID_TOKEN,
	// not FORBIDDEN (which meant the provider's mapper had been lost).
	if c := p.post(t, exchangeQ, map[string]any{"t": "x.y.z"}, nil).code(); c != "INVALID_ID_TOKEN" {
		t.Fatalf("malformed ID token: %s", c)
	}
	tk := p.post(t, exchangeQ, map[string]any{"t": idToken(jwt.MapClaims{"email": "ada@example.com", "email_verified": true})}, nil).tokens(t, "exchangeIdentityToken")
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tk.Token, claims, func(*jwt.Token) (any, error) { return []byte(binJWTSecret), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("exchanged access token: %v", err)
	}
	if claims["sub"] != "1" {
		t.Fatalf("exchange named %v, want customer 1", claims["sub"])
	}
	if c := p.post(t, refreshQ, map[string]any{"t": *tk.RefreshToken}, nil).code(); c != "OK" {
		t.Fatalf("refresh of an exchanged session: %s", c)
	}
	if c := p.post(t, exchangeQ, map[string]any{"t": idToken(jwt.MapClaims{"email": "nobody@example.com", "email_verified": true})}, nil).code(); c != "CUSTOMER_NOT_REGISTERED" {
		t.Fatalf("unknown customer: %s", c)
	}
}

// postCookie posts query with the cookie (when set) and the header, and
// returns the answer and the cookie called name that the answer sets.
func (p *process) postCookie(t *testing.T, name, query string, vars map[string]any, cookie *http.Cookie, header http.Header) (gqlResponse, *http.Cookie) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, p.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := gqlResponse{raw: string(raw), header: res.Header}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("not JSON (%d): %s", res.StatusCode, raw)
	}
	var set *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == name {
			set = c
		}
	}
	return r, set
}

// cookieAttr is c's path or domain, for a failure message that must not
// show the cookie's token.
func cookieAttr(c *http.Cookie, attr string) string {
	switch {
	case c == nil:
		return "(no cookie)"
	case attr == "path":
		return c.Path
	}
	return c.Domain
}

// failsToStart runs the binary with env and only env (beside a free PORT
// and a new DATA_DIR) and returns what it printed, failing the test unless
// it exits with an error.
func failsToStart(t *testing.T, env map[string]string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	all := map[string]string{"PORT": port, "DATA_DIR": t.TempDir()}
	maps.Copy(all, env)
	out, err := runBinary(t, all)
	if err == nil {
		t.Fatalf("the binary exited cleanly; it should have refused the configuration\n%s", out)
	}
	return out
}

// TestBinaryCookieMode: REFRESH_TOKEN_COOKIE=true keeps the refresh token in
// an HttpOnly cookie, and only there: the body's refresh_token is null.
// Refresh reads the cookie with the CSRF header; a refresh refused because
// the cookie's token is dead clears the cookie.
func TestBinaryCookieMode(t *testing.T) {
	p := startBinary(t, production(t, map[string]string{"REFRESH_TOKEN_COOKIE": "true", "REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS": "0"}))
	send := func(query string, vars map[string]any, cookie *http.Cookie, header http.Header) (gqlResponse, *http.Cookie) {
		t.Helper()
		return p.postCookie(t, "meshauth_refresh", query, vars, cookie, header)
	}
	csrf := http.Header{"X-Requested-With": {"fetch"}}

	r, cookie := send(loginQ, map[string]any{"e": "ada@example.com", "p": binPassword}, nil, nil)
	if cookie == nil || cookie.Value == "" || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie: %+v", cookie)
	}
	if tk := r.tokens(t, "generateCustomerToken"); tk.RefreshToken != nil {
		t.Fatal("the login body carries the refresh token")
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login answer: Cache-Control %q, want no-store", cc)
	}
	if r, _ := send(refreshQ, nil, cookie, nil); r.code() != "BAD_USER_INPUT" {
		t.Fatalf("cookie without the CSRF header: %s", r.code())
	}
	r, next := send(refreshQ, nil, cookie, csrf)
	if tk := r.tokens(t, "refreshCustomerToken"); tk.RefreshToken != nil {
		t.Fatal("the refresh body carries the refresh token")
	}
	if next == nil || next.Value == "" || next.Value == cookie.Value {
		t.Fatalf("refresh cookie: %+v", next)
	}

	// The first cookie again: reuse. The session ends and the cookie is cleared.
	r, cleared := send(refreshQ, nil, cookie, csrf)
	if r.code() != "REFRESH_TOKEN_REUSED" || cleared == nil || cleared.Value != "" || cleared.MaxAge >= 0 {
		t.Fatalf("reused cookie: %s, cookie %+v", r.code(), cleared)
	}
	r, cleared = send(refreshQ, nil, &http.Cookie{Name: "meshauth_refresh", Value: "garbage"}, csrf)
	if r.code() != "INVALID_REFRESH_TOKEN" || cleared == nil || cleared.Value != "" || cleared.MaxAge >= 0 {
		t.Fatalf("invalid cookie: %s, cookie %+v", r.code(), cleared)
	}
}

// TestBinaryHostPrefixCookie: REFRESH_TOKEN_COOKIE_NAME=__Host-… names a
// cookie bound to the exact host: Secure, Path=/ (its default path) and no
// Domain. A configuration a browser would refuse such a cookie with is
// refused at startup, naming the variable.
func TestBinaryHostPrefixCookie(t *testing.T) {
	const name = "__Host-meshauth_refresh"
	p := startBinary(t, production(t, map[string]string{"REFRESH_TOKEN_COOKIE": "true", "REFRESH_TOKEN_COOKIE_NAME": name}))
	r, cookie := p.postCookie(t, name, loginQ, map[string]any{"e": "ada@example.com", "p": binPassword}, nil, nil)
	if r.code() != "OK" || cookie == nil || cookie.Value == "" || !cookie.Secure || cookie.Path != "/" || cookie.Domain != "" || !cookie.HttpOnly {
		t.Fatalf("login: %s, cookie set %v, Secure %v, Path %q, Domain %q", r.code(), cookie != nil, cookie != nil && cookie.Secure, cookieAttr(cookie, "path"), cookieAttr(cookie, "domain"))
	}
	if r, next := p.postCookie(t, name, refreshQ, nil, cookie, http.Header{"X-Requested-With": {"fetch"}}); r.code() != "OK" || next == nil || next.Path != "/" {
		t.Fatalf("refresh with the __Host- cookie: %s, Path %q", r.code(), cookieAttr(next, "path"))
	}

	for variable, value := range map[string]string{
		"REFRESH_TOKEN_COOKIE_DOMAIN": "shop.example",
		"REFRESH_TOKEN_COOKIE_PATH":   "/graphql",
	} {
		out := failsToStart(t, production(t, map[string]string{"REFRESH_TOKEN_COOKIE": "true", "REFRESH_TOKEN_COOKIE_NAME": name, variable: value}))
		if !strings.Contains(out, variable) || !strings.Contains(out, "__Host-") {
			t.Errorf("%s=%s with a __Host- name: the refusal does not name the variable and the prefix:\n%s", variable, value, out)
		}
	}
	out := failsToStart(t, map[string]string{"APP_ENV": "development", "REFRESH_TOKEN_COOKIE": "true", "REFRESH_TOKEN_COOKIE_NAME": name, "REFRESH_TOKEN_COOKIE_SECURE": "false"})
	if !strings.Contains(out, "REFRESH_TOKEN_COOKIE_SECURE") {
		t.Errorf("a __Host- cookie without Secure: the refusal does not name REFRESH_TOKEN_COOKIE_SECURE:\n%s", out)
	}
}

// otherAddress is an address of this machine other than loopback that a
// server can listen on, or "" when it has none.
func otherAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || ipnet.IP.To4() == nil {
			continue
		}
		if l, err := net.Listen("tcp", net.JoinHostPort(ipnet.IP.String(), "0")); err == nil {
			l.Close()
			return ipnet.IP.String()
		}
	}
	return ""
}

// reachable reports whether the service answers /healthz at host:port.
func reachable(host, port string) bool {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// TestBinaryListenAddr: in development, where the session tools and
// GraphiQL answer without credentials, the binary listens on loopback only
// unless LISTEN_ADDR says otherwise; elsewhere on every interface.
// LISTEN_ADDR=0.0.0.0 listens on every interface, an address on that one
// alone (and meshauth healthcheck follows it). The address is logged.
func TestBinaryListenAddr(t *testing.T) {
	other := otherAddress(t)
	if other == "" {
		t.Log("this machine has no address besides loopback: only the logged listen address is checked")
	}
	portOf := func(p *process) string {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.url, "http://"))
		return port
	}
	dev := map[string]string{"APP_ENV": "development"}

	t.Run("development listens on loopback", func(t *testing.T) {
		p := startBinary(t, dev)
		port := portOf(p)
		if !strings.Contains(p.logs.String(), "addr=127.0.0.1:"+port) {
			t.Errorf("the log does not name 127.0.0.1:%s:\n%s", port, p.logs)
		}
		if other != "" && reachable(other, port) {
			t.Errorf("reachable on %s: the development tools are open to the network", other)
		}
	})
	t.Run("LISTEN_ADDR=0.0.0.0 listens on every interface", func(t *testing.T) {
		p := startBinary(t, map[string]string{"APP_ENV": "development", "LISTEN_ADDR": "0.0.0.0"})
		port := portOf(p)
		if !strings.Contains(p.logs.String(), "addr=[::]:"+port) && !strings.Contains(p.logs.String(), "addr=0.0.0.0:"+port) {
			t.Errorf("the log does not name every interface:\n%s", p.logs)
		}
		if other != "" && !reachable(other, port) {
			t.Errorf("not reachable on %s", other)
		}
	})
	t.Run("production listens on every interface", func(t *testing.T) {
		p := startBinary(t, production(t, nil))
		port := portOf(p)
		if !strings.Contains(p.logs.String(), `"addr":"[::]:`+port+`"`) && !strings.Contains(p.logs.String(), `"addr":"0.0.0.0:`+port+`"`) {
			t.Errorf("the log does not name every interface:\n%s", p.logs)
		}
		if other != "" && !reachable(other, port) {
			t.Errorf("not reachable on %s", other)
		}
	})
	if other != "" {
		t.Run("LISTEN_ADDR names one address", func(t *testing.T) {
			p := startBinary(t, map[string]string{"APP_ENV": "development", "LISTEN_ADDR": other})
			port := portOf(p)
			if reachable("127.0.0.1", port) {
				t.Error("reachable on loopback")
			}
			cmd := exec.Command(binary, "healthcheck")
			cmd.Env = []string{"PORT=" + port, "LISTEN_ADDR=" + other}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("meshauth healthcheck: %v\n%s", err, out)
			}
		})
	}
	t.Run("a port in LISTEN_ADDR is refused", func(t *testing.T) {
		out := failsToStart(t, map[string]string{"APP_ENV": "development", "LISTEN_ADDR": "127.0.0.1:4000"})
		if !strings.Contains(out, "LISTEN_ADDR") || !strings.Contains(out, "PORT") {
			t.Errorf("the refusal does not explain LISTEN_ADDR and PORT:\n%s", out)
		}
	})
}

// TestBinaryEdDSAAndMetrics: with JWT_ALGORITHM=EdDSA another service
// verifies access tokens from the JWKS alone; METRICS_ADDR serves metrics on
// a listener of their own and not on the service port.
func TestBinaryEdDSAAndMetrics(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := production(t, map[string]string{
		"JWT_ALGORITHM": "EdDSA", "JWT_ED25519_PRIVATE_KEY_FILE": keyFile, "METRICS_ADDR": freeAddr(t),
	})
	delete(env, "JWT_PRIVATE_KEY")
	p := startBinary(t, env)
	tk := p.login(t, "ada@example.com")

	res, err := http.Get(p.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []struct{ Kid, X string } }
	_ = json.NewDecoder(res.Body).Decode(&set)
	res.Body.Close()
	parsed, err := jwt.Parse(tk.Token, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, errors.New("kid not in the JWKS")
	}, jwt.WithValidMethods([]string{"EdDSA"}))
	if err != nil || !parsed.Valid {
		t.Fatalf("verifying with the JWKS: %v", err)
	}

	scrape := func(url string) (int, string) {
		res, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	status, text := scrape(p.metrics)
	if status != http.StatusOK || !strings.Contains(text, `meshauth_graphql_operations_total{code="OK",operation="generateCustomerToken"} 1`) {
		t.Fatalf("metrics listener: %d %.300s", status, text)
	}
	if status, _ := scrape(p.url); status != http.StatusNotFound {
		t.Fatalf("/metrics on the service port with METRICS_ADDR set: %d", status)
	}
}

// TestBinaryCustomerIDClaims: configured as the migration guide says for the
// BigCommerce mesh module (JWT_CUSTOMER_ID_CLAIMS=customer_id,bc_customer_id),
// the access token carries a numeric customer id as a JSON number in both
// claims, before and after a refresh, read the way that module's resolvers
// read it: jwt.verify with the shared secret, then the claim.
func TestBinaryCustomerIDClaims(t *testing.T) {
	env := production(t, map[string]string{"JWT_CUSTOMER_ID_CLAIMS": "customer_id,bc_customer_id"})
	env["STATIC_USERS_FILE"] = usersFile(t, map[string]string{"ada@example.com": "4242", "bob@example.com": "B-7"})
	p := startBinary(t, env)
	read := func(tok string) jwt.MapClaims {
		t.Helper()
		mc := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, mc, func(*jwt.Token) (any, error) { return []byte(binJWTSecret), nil },
			jwt.WithValidMethods([]string{"HS256"})); err != nil {
			t.Fatal(err)
		}
		return mc
	}
	ada := p.login(t, "ada@example.com")
	next := p.post(t, refreshQ, map[string]any{"t": *ada.RefreshToken}, nil).tokens(t, "refreshCustomerToken")
	for when, tok := range map[string]string{"login": ada.Token, "refresh": next.Token} {
		mc := read(tok)
		for _, name := range []string{"customer_id", "bc_customer_id"} {
			if n, ok := mc[name].(float64); !ok || n != 4242 {
				t.Errorf("after %s, %s = %#v, want the number 4242", when, name, mc[name])
			}
		}
		if mc["sub"] != "4242" {
			t.Errorf("after %s, sub = %#v, want the string", when, mc["sub"])
		}
	}
	if mc := read(p.login(t, "bob@example.com").Token); mc["bc_customer_id"] != "B-7" {
		t.Errorf("a non-numeric id: %#v", mc["bc_customer_id"])
	}
}

// TestBinaryLegacySessions: with STORE=dynamodb and
// LEGACY_DYNAMO_DB_AUTH_TABLE, a customer still holding the GraphQL Mesh
// auth module's tokens refreshes into a meshauth session, in the shipped
// binary, against DynamoDB Local.
func TestBinaryLegacySessions(t *testing.T) {
	endpoint := servicetest.DynamoDBLocal(t)
	legacyTable := servicetest.NewLegacyTable(t, endpoint)
	now := time.Now()
	s := legacyTable.Login(t, []byte(binJWTSecret), 4242, now.Add(-time.Hour), now.Add(24*time.Hour))
	p := startBinary(t, production(t, map[string]string{
		"STORE": "dynamodb", "DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_CREATE_TABLE": "true",
		"DYNAMO_DB_AUTH_TABLE": "meshauth-binary-" + strconv.FormatInt(now.UnixNano(), 36), "LEGACY_DYNAMO_DB_AUTH_TABLE": legacyTable.Name,
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
		"JWT_CUSTOMER_ID_CLAIMS": "customer_id,bc_customer_id",
	}))
	r := p.post(t, refreshQ, map[string]any{"t": s.Refresh}, http.Header{"Authorization": {"Bearer " + s.Access}})
	tk := r.tokens(t, "refreshCustomerToken")
	mc := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tk.Token, mc, func(*jwt.Token) (any, error) { return []byte(binJWTSecret), nil }); err != nil {
		t.Fatal(err)
	}
	if mc["bc_customer_id"] != float64(4242) {
		t.Fatalf("migrated session's bc_customer_id = %#v", mc["bc_customer_id"])
	}
	if legacyTable.Has(t, s) {
		t.Error("the legacy row was not consumed")
	}
	if c := p.post(t, refreshQ, map[string]any{"t": *tk.RefreshToken}, nil).code(); c != "OK" {
		t.Fatalf("refreshing the migrated session: %s", c)
	}
}

// refusedStart runs the binary with env and only env (PORT and DATA_DIR
// are chosen here unless env sets them) and returns what it printed,
// failing unless it exits with an error before serving.
func refusedStart(t *testing.T, env map[string]string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	vars := map[string]string{"PORT": port, "DATA_DIR": t.TempDir()}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(binary)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			if err == nil {
				t.Fatalf("the binary exited cleanly; want a refused start\n%s", out)
			}
			return out.String()
		case <-time.After(25 * time.Millisecond):
		}
		res, err := http.Get("http://127.0.0.1:" + vars["PORT"] + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		if err == nil || time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("the binary started; want a refused start\n%s", out)
		}
	}
}

// TestBinaryRefusesUnsafeStarts: configurations that would run with a weak
// or shared secret, or fetch ID-token keys over plain http in production,
// stop the binary at startup, with a message that names the variable or
// file and never shows a secret.
func TestBinaryRefusesUnsafeStarts(t *testing.T) {
	devDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(devDir, "dev-secrets.json"), []byte(`{"jwt_secret": "x", "refresh_secret": "`+binRefreshSecret+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string
		want   []string
		hidden []string
	}{
		{"one secret for both purposes", production(t, map[string]string{"REFRESH_TOKEN_SECRET": binJWTSecret}),
			[]string{"JWT_PRIVATE_KEY", "REFRESH_TOKEN_SECRET"}, []string{binJWTSecret}},
		{"a 1-byte secret in the development secrets file", map[string]string{"APP_ENV": "development", "DATA_DIR": devDir},
			[]string{"dev-secrets.json", "jwt_secret", "delete"}, []string{binRefreshSecret}},
		{"ID-token keys from a cloud metadata address", production(t, map[string]string{
			"OIDC_ISSUERS": `[{"issuer": "https://id.example", "jwks_url": "http://169.254.169.254/latest/meta-data/", "audiences": ["shop"]}]`}),
			[]string{"OIDC_ISSUERS", "https"}, []string{binJWTSecret, binRefreshSecret}},
		{"ID-token keys from a local service", production(t, map[string]string{
			"OIDC_ISSUERS": `[{"issuer": "https://id.example", "jwks_url": "http://127.0.0.1:6379/", "audiences": ["shop"]}]`}),
			[]string{"OIDC_ISSUERS", "https"}, []string{binJWTSecret, binRefreshSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := refusedStart(t, tt.env)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %s:\n%s", w, out)
				}
			}
			for _, h := range tt.hidden {
				if strings.Contains(out, h) {
					t.Errorf("output shows a secret:\n%s", out)
				}
			}
		})
	}
}

// TestBinaryRefusesMisleadingStarts: configurations that used to start and
// then fail without saying why stop the binary at startup, with a message
// that names the variable (or the file) and what to do.
func TestBinaryRefusesMisleadingStarts(t *testing.T) {
	held := t.TempDir()
	startBinary(t, production(t, map[string]string{"DATA_DIR": held}))
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"a users file that does not exist", production(t, map[string]string{"STATIC_USERS_FILE": "/nonexistent.json"}),
			[]string{"STATIC_USERS_FILE", "/nonexistent.json"}},
		{"a users file that cannot be read", production(t, map[string]string{"STATIC_USERS_FILE": t.TempDir()}),
			[]string{"STATIC_USERS_FILE"}},
		{"a DATA_DIR another process holds", production(t, map[string]string{"DATA_DIR": held}),
			[]string{"DATA_DIR", "another meshauth process", filepath.Join(held, "sessions.db")}},
		{"a DynamoDB endpoint without a scheme", production(t, map[string]string{
			"STORE": "dynamodb", "DYNAMO_DB_AUTH_TABLE": "t", "DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_ENDPOINT": "127.0.0.1:4999"}),
			[]string{"DYNAMO_DB_ENDPOINT", "http"}},
		{"CORS for every origin", production(t, map[string]string{"CORS_ALLOWED_ORIGINS": "*"}),
			[]string{"CORS_ALLOWED_ORIGINS", "*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := refusedStart(t, tt.env)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %s:\n%s", w, out)
				}
			}
			for _, secret := range []string{binJWTSecret, binRefreshSecret, binPassword} {
				if strings.Contains(out, secret) {
					t.Errorf("output shows a secret:\n%s", out)
				}
			}
		})
	}
}

// runBinary runs the binary with args and env and only env, and returns
// what it printed and how it exited.
func runBinary(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	done := make(chan struct{})
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill(); close(done) })
	out, err := cmd.CombinedOutput()
	if !timer.Stop() {
		<-done
		t.Fatalf("meshauth %v did not stop\n%s", args, out)
	}
	return string(out), err
}

// awsWithout is an environment in which the AWS SDK finds no credentials
// and does not wait for an instance metadata service: empty shared files.
func awsWithout(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]string{"AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials")}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// TestBinaryDynamoDBStartErrors: without AWS credentials the binary says
// that credentials are missing and how to provide them, never that the
// table should be created; it says to create the table only when the
// table is missing. meshauth migrate needs only the store's variables.
func TestBinaryDynamoDBStartErrors(t *testing.T) {
	store := func(endpoint, table string) map[string]string {
		return map[string]string{"STORE": "dynamodb", "DYNAMO_DB_AUTH_TABLE": table, "DYNAMO_DB_REGION": "us-east-1",
			"DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_TIMEOUT_IN_MILLISECONDS": "10000"}
	}
	credentialHints := []string{"no AWS credentials", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "role"}
	mustSay := func(t *testing.T, out string, want, not []string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output does not mention %s:\n%s", w, out)
			}
		}
		for _, n := range not {
			if strings.Contains(out, n) {
				t.Errorf("output mentions %s:\n%s", n, out)
			}
		}
	}
	t.Run("serve without credentials", func(t *testing.T) {
		out := refusedStart(t, awsWithout(t, production(t, store("http://127.0.0.1:9", "meshauth-sessions"))))
		mustSay(t, out, credentialHints, []string{"DYNAMO_DB_CREATE_TABLE", "migrate", binJWTSecret, binRefreshSecret})
	})
	t.Run("migrate without credentials or secrets", func(t *testing.T) {
		out, err := runBinary(t, awsWithout(t, store("http://127.0.0.1:9", "meshauth-sessions")), "migrate")
		if err == nil {
			t.Fatalf("migrate succeeded without credentials:\n%s", out)
		}
		mustSay(t, out, credentialHints, []string{"JWT_PRIVATE_KEY", "REFRESH_TOKEN_SECRET", "STATIC_USERS_FILE"})
	})
	t.Run("serve without the table", func(t *testing.T) {
		env := store(servicetest.DynamoDBLocal(t), "meshauth-missing-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "local", "local"
		out := refusedStart(t, awsWithout(t, production(t, env)))
		mustSay(t, out, []string{"does not exist", "DYNAMO_DB_CREATE_TABLE=true", "meshauth migrate"}, []string{"credentials"})
	})
	t.Run("migrate with the store's variables alone", func(t *testing.T) {
		table := "meshauth-migrate-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		env := store(servicetest.DynamoDBLocal(t), table)
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "local", "local"
		env = awsWithout(t, env)
		for range 2 { // idempotent
			out, err := runBinary(t, env, "migrate")
			if err != nil || !strings.Contains(out, "DynamoDB table ready") {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
		}
		env["APP_ENV"], env["DATA_DIR"] = "development", t.TempDir()
		p := startBinary(t, env)
		if r := p.post(t, loginQ, map[string]any{"e": "demo@example.com", "p": "demo-password"}, nil); r.code() != "OK" {
			t.Fatalf("login on the migrated table: %s", r.raw)
		}
	})
}
