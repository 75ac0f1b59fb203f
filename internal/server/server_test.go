package server_test

import (
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/login/static"
	"github.com/meshauth/meshauth/internal/server"
	"github.com/meshauth/meshauth/internal/servicetest"
	"github.com/meshauth/meshauth/internal/token"
)

const password = "s3cret-password"

// users is built once: argon2id hashing is deliberately slow.
var users = sync.OnceValue(func() *static.Provider {
	var list []static.User
	for _, u := range []struct{ email, id string }{{"ada@example.com", "1"}, {"bob@example.com", "2"}} {
		h, err := static.HashPassword(password)
		if err != nil {
			panic(err)
		}
		list = append(list, static.User{Email: u.email, CustomerID: u.id, PasswordHash: h})
	}
	p, err := static.New(list)
	if err != nil {
		panic(err)
	}
	return p
})

type env struct {
	url   string
	clock *servicetest.Clock
	logs  *servicetest.Logs
}

type options struct {
	dev bool
	// env overlays the test environment.
	env map[string]string
	// login replaces the test users.
	login login.Service
	// mapper names customers for identity exchange.
	mapper login.IdentityMapper
	// configuredLogin leaves the login provider to the environment
	// (LOGIN_PROVIDER) instead of the test users.
	configuredLogin bool
}

// start runs the service through the one wiring (meshauth.New), in
// production unless o.dev, with the test users and login limits off unless
// o.env says otherwise.
func start(t *testing.T, o options) *env {
	t.Helper()
	vars := map[string]string{"LOGIN_LIMIT_ACCOUNT": "off", "LOGIN_LIMIT_IP": "off"}
	if o.dev {
		vars["APP_ENV"] = "development"
	}
	maps.Copy(vars, o.env)
	if o.login == nil && !o.configuredLogin {
		o.login, o.mapper = users(), users()
	}
	s := servicetest.Start(t, vars, meshauth.Options{Login: o.login, Mapper: o.mapper})
	return &env{url: s.URL, clock: s.Clock, logs: s.Logs}
}

// startWith starts the service with introspection set apart from development.
func startWith(t *testing.T, o options, introspection bool) *env {
	t.Helper()
	o.env = map[string]string{"GRAPHQL_INTROSPECTION": strconv.FormatBool(introspection)}
	return start(t, o)
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	Status int
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
	Raw    string
}

func (e *env) post(t *testing.T, contentType, body string, header http.Header) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	_, r := roundTrip(t, req, header)
	for _, ge := range r.Errors {
		if ge.Extensions["code"] == nil {
			t.Errorf("error without extensions.code: %s", r.Raw)
		}
	}
	return r
}

// roundTrip sends req with header added and returns the answer's header
// and its parsed body, failing the test unless the body is JSON.
func roundTrip(t *testing.T, req *http.Request, header http.Header) (http.Header, response) {
	t.Helper()
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{Status: res.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("status %d, not JSON: %s", res.StatusCode, raw)
	}
	return res.Header, r
}

func (e *env) do(t *testing.T, query string, vars map[string]any, header http.Header) response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return e.post(t, "application/json", string(body), header)
}

type pair struct {
	Token                 string `json:"token"`
	RefreshToken          string `json:"refresh_token"`
	TokenExpiresAt        string `json:"token_expires_at"`
	RefreshTokenExpiresAt string `json:"refresh_token_expires_at"`
}

const (
	loginQ   = `mutation($e: String!, $p: String!, $r: Boolean) { generateCustomerToken(email: $e, password: $p, remember_me: $r) { token refresh_token token_expires_at refresh_token_expires_at } }`
	refreshQ = `mutation($t: String!) { refreshCustomerToken(refresh_token: $t) { token refresh_token token_expires_at refresh_token_expires_at } }`
	revokeQ  = `mutation($t: String) { revokeCustomerToken(refresh_token: $t) { result } }`
)

func field[T any](t *testing.T, r response, name string) T {
	t.Helper()
	var v T
	if len(r.Errors) > 0 {
		t.Fatalf("%s failed: %s", name, r.Raw)
	}
	if err := json.Unmarshal(r.Data[name], &v); err != nil {
		t.Fatalf("%s: %v in %s", name, err, r.Raw)
	}
	return v
}

func (e *env) login(t *testing.T, email string, remember bool) pair {
	t.Helper()
	return field[pair](t, e.do(t, loginQ, map[string]any{"e": email, "p": password, "r": remember}, nil), "generateCustomerToken")
}

// sessionCount is how many live sessions the customer of access has, as
// customerSessions lists them.
func (e *env) sessionCount(t *testing.T, access string) int {
	t.Helper()
	return len(field[[]map[string]any](t, e.do(t, sessionsQ, nil, bearer(access)), "customerSessions"))
}

// notRotated checks that rt is still its session's current token: past
// the grace, a rotated token would be refused as reuse. It moves the clock.
func (e *env) notRotated(t *testing.T, rt string) {
	t.Helper()
	e.clock.Advance(31 * time.Second)
	if r := e.refresh(t, rt, nil); len(r.Errors) > 0 {
		t.Fatalf("the session was rotated behind the test's back: %s", r.Raw)
	}
}

func (e *env) refresh(t *testing.T, rt string, header http.Header) response {
	t.Helper()
	return e.do(t, refreshQ, map[string]any{"t": rt}, header)
}

func code(t *testing.T, r response) string {
	t.Helper()
	if len(r.Errors) != 1 {
		t.Fatalf("want one error, got %s", r.Raw)
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// TestWalkthrough is the README's curl walk-through, through real HTTP.
func TestWalkthrough(t *testing.T) {
	e := start(t, options{})
	first := e.login(t, "ada@example.com", false)
	for _, ts := range []string{first.TokenExpiresAt, first.RefreshTokenExpiresAt} {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Fatalf("expiry %q is not RFC 3339", ts)
		}
	}
	if parts := strings.Split(first.Token, "."); len(parts) != 3 {
		t.Fatalf("token is not a JWT: %q", first.Token)
	}

	second := field[pair](t, e.refresh(t, first.RefreshToken, nil), "refreshCustomerToken")
	if second.RefreshToken == first.RefreshToken || second.Token == first.Token {
		t.Fatal("refresh did not rotate both tokens")
	}

	// Two tabs refresh the same token at once: one rotation, same successor.
	var wg sync.WaitGroup
	results := make([]response, 2)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = e.refresh(t, second.RefreshToken, nil) }()
	}
	wg.Wait()
	third := field[pair](t, results[0], "refreshCustomerToken")
	if other := field[pair](t, results[1], "refreshCustomerToken"); other.RefreshToken != third.RefreshToken {
		t.Fatal("concurrent refreshes got different successors")
	}

	// The old token after the interval is reuse, and ends the session.
	e.clock.Advance(31 * time.Second)
	r := e.refresh(t, second.RefreshToken, nil)
	if c := code(t, r); c != "REFRESH_TOKEN_REUSED" || r.Errors[0].Extensions["category"] != "graphql-authorization" {
		t.Fatalf("reuse: %s", r.Raw)
	}
	if c := code(t, e.refresh(t, third.RefreshToken, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("current token after reuse: %s", c)
	}

	// Logout, twice.
	fresh := e.login(t, "ada@example.com", true)
	for range 2 {
		if got := field[struct{ Result bool }](t, e.do(t, revokeQ, map[string]any{"t": fresh.RefreshToken}, nil), "revokeCustomerToken"); !got.Result {
			t.Fatal("revoke result false")
		}
	}
	if c := code(t, e.refresh(t, fresh.RefreshToken, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("refresh after logout: %s", c)
	}
}

func TestErrors(t *testing.T) {
	e := start(t, options{})
	tests := []struct {
		name, query            string
		vars                   map[string]any
		wantCode, wantCategory string
	}{
		{"wrong password", loginQ, map[string]any{"e": "ada@example.com", "p": "nope"}, "INVALID_CREDENTIALS", "graphql-authentication"},
		{"unknown email", loginQ, map[string]any{"e": "eve@example.com", "p": password}, "INVALID_CREDENTIALS", "graphql-authentication"},
		{"bad email", loginQ, map[string]any{"e": strings.Repeat("x", 10_000), "p": password}, "BAD_USER_INPUT", "graphql-input"},
		{"garbage refresh token", refreshQ, map[string]any{"t": "garbage"}, "INVALID_REFRESH_TOKEN", "graphql-authorization"},
		{"revoke without token", revokeQ, nil, "BAD_USER_INPUT", "graphql-input"},
		{"revoke malformed token", revokeQ, map[string]any{"t": "x"}, "BAD_USER_INPUT", "graphql-input"},
		{"missing required argument", `mutation { generateCustomerToken(email: "a@b.c") { token } }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
		{"refresh without a token", `mutation { refreshCustomerToken { token } }`, nil, "BAD_USER_INPUT", "graphql-input"},
		{"unknown field", `{ nope }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
		{"syntax error", `mutation {`, nil, "GRAPHQL_PARSE_FAILED", ""},
		{"wrong variable type", refreshQ, map[string]any{"t": map[string]any{"a": 1}}, "GRAPHQL_VALIDATION_FAILED", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.query, tc.vars, nil)
			if c := code(t, r); c != tc.wantCode {
				t.Fatalf("code %s, want %s: %s", c, tc.wantCode, r.Raw)
			}
			if cat, _ := r.Errors[0].Extensions["category"].(string); cat != tc.wantCategory {
				t.Fatalf("category %q, want %q", cat, tc.wantCategory)
			}
			if ac, ok := auth.Codes[auth.Code(tc.wantCode)]; ok && r.Errors[0].Message != ac.Message && !strings.HasPrefix(r.Errors[0].Message, ac.Message+" ") {
				t.Fatalf("message %q, want the fixed message %q", r.Errors[0].Message, ac.Message)
			}
			if strings.Contains(r.Raw, password) {
				t.Fatal("the response contains the password")
			}
		})
	}
}

// TestTransportErrors: malformed requests get a coded error that never
// echoes the body (gqlgen's own message would quote it, password included).
func TestTransportErrors(t *testing.T) {
	e := start(t, options{})
	huge := `{"query":"mutation { generateCustomerToken(email: \"a@b.c\", password: \"` + password + strings.Repeat("x", server.DefaultMaxBodyBytes) + `\") { token } }"}`
	tests := []struct {
		name, contentType, body string
		wantStatus              int
	}{
		{"invalid JSON", "application/json", `{"query": "` + password, http.StatusBadRequest},
		{"wrong JSON shape", "application/json", `{"query": ["` + password + `"]}`, http.StatusBadRequest},
		{"body too large", "application/json", huge, http.StatusRequestEntityTooLarge},
		{"form post", "application/x-www-form-urlencoded", "query=" + password, http.StatusUnsupportedMediaType},
		{"text body", "text/plain", password, http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, tc.contentType, tc.body, nil)
			if r.Status != tc.wantStatus {
				t.Errorf("status %d, want %d", r.Status, tc.wantStatus)
			}
			if c := code(t, r); c != "BAD_USER_INPUT" {
				t.Fatalf("code %s: %s", c, r.Raw)
			}
			if strings.Contains(r.Raw, password) {
				t.Fatalf("the response echoes the body: %s", r.Raw)
			}
		})
	}
	// The service still serves.
	e.login(t, "ada@example.com", false)
}

func TestDevToolsByEnvironment(t *testing.T) {
	ops := map[string]string{
		"getUserAuth":            `query($u: String, $t: String) { getUserAuth(user_id: $u, refresh_token: $t) { customer_id refresh_token_hash ttl } }`,
		"getAllAuthItemsById":    `query($u: String) { getAllAuthItemsById(user_id: $u) { customer_id refresh_token_hash ttl } }`,
		"updateUserAuth":         `mutation($u: String, $t: String) { updateUserAuth(user_id: $u, refresh_token: $t) { success } }`,
		"removeUserAuth":         `mutation($u: String, $t: String) { removeUserAuth(user_id: $u, refresh_token: $t) { customer_id refresh_token_hash ttl success } }`,
		"removeAllUserAuthItems": `mutation($u: String) { removeAllUserAuthItems(user_id: $u) { success } }`,
	}
	t.Run("production", func(t *testing.T) {
		e := start(t, options{dev: false})
		p := e.login(t, "ada@example.com", false)
		for name, q := range ops {
			r := e.do(t, q, map[string]any{"u": "1", "t": p.RefreshToken}, nil)
			if c := code(t, r); c != "FORBIDDEN" {
				t.Errorf("%s: %s", name, r.Raw)
			}
		}
		if n := e.sessionCount(t, p.Token); n != 1 {
			t.Fatalf("%d sessions after refused development operations, want 1", n)
		}
		e.notRotated(t, p.RefreshToken)
	})
	t.Run("development", func(t *testing.T) {
		e := start(t, options{dev: true})
		p := e.login(t, "ada@example.com", false)
		vars := map[string]any{"u": "1", "t": p.RefreshToken}
		got := field[struct {
			CustomerID string `json:"customer_id"`
			Hash       string `json:"refresh_token_hash"`
			TTL        string `json:"ttl"`
		}](t, e.do(t, ops["getUserAuth"], vars, nil), "getUserAuth")
		if got.CustomerID != "1" || len(got.Hash) != 64 || got.TTL == "" {
			t.Fatalf("getUserAuth = %+v", got)
		}
		if list := field[[]map[string]any](t, e.do(t, ops["getAllAuthItemsById"], vars, nil), "getAllAuthItemsById"); len(list) != 1 {
			t.Fatalf("getAllAuthItemsById = %v", list)
		}
		if s := field[struct{ Success bool }](t, e.do(t, ops["updateUserAuth"], vars, nil), "updateUserAuth"); !s.Success {
			t.Fatal("updateUserAuth failed")
		}
		if s := field[struct{ Success bool }](t, e.do(t, ops["removeUserAuth"], vars, nil), "removeUserAuth"); !s.Success {
			t.Fatal("removeUserAuth failed")
		}
		if s := field[struct{ Success bool }](t, e.do(t, ops["removeUserAuth"], vars, nil), "removeUserAuth"); s.Success {
			t.Fatal("removeUserAuth of a removed session succeeded")
		}
		e.login(t, "ada@example.com", false)
		if s := field[struct{ Success bool }](t, e.do(t, ops["removeAllUserAuthItems"], vars, nil), "removeAllUserAuthItems"); !s.Success {
			t.Fatal("removeAllUserAuthItems failed")
		}
		if list := field[[]map[string]any](t, e.do(t, ops["getAllAuthItemsById"], vars, nil), "getAllAuthItemsById"); len(list) != 0 {
			t.Fatalf("%d sessions left", len(list))
		}
		r := e.do(t, ops["getAllAuthItemsById"], map[string]any{}, nil)
		if c := code(t, r); c != "BAD_USER_INPUT" {
			t.Fatalf("without user_id: %s", r.Raw)
		}
	})
}

// TestAuthorizationHeader: the original clients send their access token with
// refresh and revoke. It is accepted, never required, and a foreign or forged
// one can never touch another customer's sessions.
func TestAuthorizationHeader(t *testing.T) {
	e := start(t, options{})
	ada := e.login(t, "ada@example.com", false)
	bob := e.login(t, "bob@example.com", false)
	for name, h := range map[string]string{
		"none":                   "",
		"the customer's own":     "Bearer " + ada.Token,
		"another customer's":     "Bearer " + bob.Token,
		"forged naming bob":      "Bearer " + forge(t, "2"),
		"garbage":                "Bearer garbage",
		"not even bearer syntax": "Basic Zm9vOmJhcg==",
	} {
		t.Run(name, func(t *testing.T) {
			hdr := http.Header{}
			if h != "" {
				hdr.Set("Authorization", h)
			}
			ada = field[pair](t, e.refresh(t, ada.RefreshToken, hdr), "refreshCustomerToken")
			r := e.do(t, revokeQ, map[string]any{"t": "x"}, hdr)
			if c := code(t, r); c != "BAD_USER_INPUT" {
				t.Fatalf("revoke with a malformed token: %s", r.Raw)
			}
		})
	}
	if n := e.sessionCount(t, bob.Token); n != 1 {
		t.Fatalf("bob has %d sessions, want 1", n)
	}
	e.notRotated(t, bob.RefreshToken)
}

// forge signs an access token for customerID with a key the service does not have.
func forge(t *testing.T, customerID string) string {
	s, _ := token.NewHS256([]byte("attacker-secret-attacker-secret-attacker"), "meshauth", "meshauth")
	tok, err := s.Sign(token.Claims{CustomerID: customerID, SessionID: "x", IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour), RefreshExpiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestHealthAndPages(t *testing.T) {
	prod := start(t, options{})
	dev := start(t, options{dev: true})
	get := func(url string) (int, string) {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if s, _ := get(prod.url + "/healthz"); s != http.StatusOK {
		t.Errorf("/healthz: %d", s)
	}
	if s, _ := get(prod.url + "/readyz"); s != http.StatusOK {
		t.Errorf("/readyz: %d", s)
	}
	if s, _ := get(prod.url + "/"); s != http.StatusNotFound {
		t.Errorf("GraphiQL in production: %d", s)
	}
	if s, body := get(dev.url + "/"); s != http.StatusOK || !strings.Contains(body, "graphiql") {
		t.Errorf("GraphiQL in development: %d", s)
	}
	introspect := `{ __schema { queryType { name } } }`
	if r := prod.do(t, introspect, nil, nil); len(r.Errors) == 0 {
		t.Errorf("introspection allowed in production: %s", r.Raw)
	}
	if r := dev.do(t, introspect, nil, nil); len(r.Errors) != 0 {
		t.Errorf("introspection refused in development: %s", r.Raw)
	}
}

// TestReadyzWhenTheStoreIsDown: with DynamoDB unreachable the service still
// starts, and /readyz answers 503 without saying why (the log says).
func TestReadyzWhenTheStoreIsDown(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + closed.Addr().String()
	closed.Close() // nothing listens there now
	e := start(t, options{env: map[string]string{
		"STORE": "dynamodb", "DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_AUTH_TABLE": "sessions",
		"DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_TIMEOUT_IN_MILLISECONDS": "200",
	}})
	res, err := http.Get(e.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || string(body) != `{"status":"unavailable"}` {
		t.Fatalf("/readyz with the store down: %d %s", res.StatusCode, body)
	}
	if !strings.Contains(e.logs.String(), "not ready") {
		t.Error("the cause was not logged")
	}
}
