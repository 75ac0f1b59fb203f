package server_test

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startCustom starts the service with the production defaults for limits
// (login limits 5/1m per account and 20/1m per address), overlaid with o.env.
func startCustom(t *testing.T, o options) *env {
	t.Helper()
	vars := map[string]string{
		"LOGIN_LIMIT_ACCOUNT": "5/1m", "LOGIN_LIMIT_IP": "20/1m", "EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES": "60",
	}
	maps.Copy(vars, o.env)
	o.env = vars
	return start(t, o)
}

func TestRateLimitedOverHTTP(t *testing.T) {
	e := startCustom(t, options{})
	for range 5 {
		if c := code(t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": "wrong"}, nil)); c != "INVALID_CREDENTIALS" {
			t.Fatal(c)
		}
	}
	r := e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil)
	if c := code(t, r); c != "RATE_LIMITED" {
		t.Fatalf("sixth attempt: %s", r.Raw)
	}
	ra, ok := r.Errors[0].Extensions["retry_after"].(float64)
	if !ok || ra < 1 || ra > 60 {
		t.Fatalf("retry_after %v in %s", r.Errors[0].Extensions["retry_after"], r.Raw)
	}
}

// TestAliasesCannotMultiplyAttempts: one request, one token field.
func TestAliasesCannotMultiplyAttempts(t *testing.T) {
	e := startCustom(t, options{})
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range 10 {
		b.WriteString(" a" + string(rune('0'+i)) + `: generateCustomerToken(email: "ada@example.com", password: "guess` + string(rune('0'+i)) + `") { token }`)
	}
	b.WriteString(" }")
	r := e.do(t, b.String(), nil, nil)
	if c := code(t, r); c != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "at most 1") {
		t.Fatalf("ten aliased logins: %s", r.Raw)
	}
	// Through a fragment too.
	r = e.do(t, `mutation { ...m } fragment m on Mutation { x: refreshCustomerToken(refresh_token: "a") { token } y: refreshCustomerToken(refresh_token: "b") { token } }`, nil, nil)
	if c := code(t, r); c != "BAD_USER_INPUT" {
		t.Fatalf("two refreshes through a fragment: %s", r.Raw)
	}
	// None of them reached the limiter: the account is not locked.
	e.login(t, "ada@example.com", false)
}

func TestQueryShapeLimits(t *testing.T) {
	e := startCustom(t, options{env: map[string]string{
		"GRAPHQL_MAX_DEPTH": "2", "GRAPHQL_MAX_ALIASES": "2", "MAX_TOKEN_FIELDS_PER_REQUEST": "1", "GRAPHQL_MAX_COMPLEXITY": "6",
		"FEDERATION_CUSTOMER_ENTITY": "true",
	}})
	tests := []struct {
		name, query, code string
	}{
		{"within every limit", `{ customerSessions { id current } }`, "UNAUTHENTICATED"},
		{"too deep", `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { sessions { id } } } }`, "BAD_USER_INPUT"},
		{"too many aliases", `{ a: __typename b: __typename c: __typename }`, "BAD_USER_INPUT"},
		{"too complex", `{ customerSessions { id current created_at expires_at remember_me ip user_agent } }`, "COMPLEXITY_LIMIT_EXCEEDED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.query, map[string]any{"r": []any{}}, nil)
			if c := code(t, r); c != tc.code {
				t.Fatalf("code %s, want %s: %s", c, tc.code, r.Raw)
			}
		})
	}
}

func TestBatchingRefused(t *testing.T) {
	e := startCustom(t, options{})
	r := e.post(t, "application/json", `[{"query":"{ __typename }"},{"query":"{ __typename }"}]`, nil)
	if c := code(t, r); c != "BAD_USER_INPUT" {
		t.Fatalf("batch: %s", r.Raw)
	}
}

func TestBodyLimit(t *testing.T) {
	e := startCustom(t, options{env: map[string]string{"MAX_BODY_BYTES": "2048"}})
	r := e.post(t, "application/json", `{"query":"{ __typename }","variables":{"pad":"`+strings.Repeat("x", 4096)+`"}}`, nil)
	if c := code(t, r); c != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "too large") || r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the body limit: %d %s", r.Status, r.Raw)
	}
	e.login(t, "ada@example.com", false)
}

func TestCORS(t *testing.T) {
	e := startCustom(t, options{env: map[string]string{"CORS_ALLOWED_ORIGINS": "https://shop.example"}})
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.url+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	ok := preflight("https://shop.example")
	if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(ok.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed preflight: %d %v", ok.StatusCode, ok.Header)
	}
	if bad := preflight("https://evil.example"); bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin was allowed: %v", bad.Header)
	}
	r := e.do(t, `{ __typename }`, nil, http.Header{"Origin": {"https://shop.example"}})
	if len(r.Errors) != 0 {
		t.Fatal(r.Raw)
	}
	// With no origins configured, no CORS headers at all.
	none := startCustom(t, options{})
	req, _ := http.NewRequest(http.MethodOptions, none.url+"/graphql", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed with no origins configured")
	}
}

// TestClientAddress: X-Forwarded-For counts only from a trusted proxy.
func TestClientAddress(t *testing.T) {
	ip := func(e *env, xff string) string {
		hdr := http.Header{}
		if xff != "" {
			hdr.Set("X-Forwarded-For", xff)
		}
		p := field[pair](t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, hdr), "generateCustomerToken")
		list := field[[]session](t, e.do(t, sessionsQ, nil, bearer(p.Token)), "customerSessions")
		for _, s := range list {
			if s.Current {
				return *s.IP
			}
		}
		t.Fatal("no current session")
		return ""
	}
	direct := startCustom(t, options{env: map[string]string{"TRUSTED_PROXIES": "none"}})
	if got := ip(direct, "198.51.100.9"); got != "127.0.0.1" {
		t.Fatalf("untrusted peer's X-Forwarded-For believed: %s", got)
	}
	behind := startCustom(t, options{env: map[string]string{"TRUSTED_PROXIES": "127.0.0.0/8,10.0.0.0/8"}})
	for xff, want := range map[string]string{
		"198.51.100.9":                        "198.51.100.9",
		"203.0.113.1, 198.51.100.9, 10.0.0.2": "198.51.100.9", // right-most untrusted hop; the rest may be forged
		"":                                    "127.0.0.1",
		"not-an-ip":                           "127.0.0.1",
	} {
		if got := ip(behind, xff); got != want {
			t.Errorf("X-Forwarded-For %q: %s, want %s", xff, got, want)
		}
	}
}

// TestGatewayDefaults: behind a gateway on loopback, with the default
// TRUSTED_PROXIES, each customer keeps their own address: wrong passwords
// from three addresses leave a fourth customer able to log in, while the
// per-address limit still stops one address. With TRUSTED_PROXIES=none
// every customer shares the gateway's address and the fourth is refused.
func TestGatewayDefaults(t *testing.T) {
	attempt := func(e *env, email, pw, client string) string {
		r := e.do(t, loginQ, map[string]any{"e": email, "p": pw}, http.Header{"X-Forwarded-For": {client}})
		if len(r.Errors) == 0 {
			return "OK"
		}
		return code(t, r)
	}
	limited := map[string]string{"LOGIN_LIMIT_IP": "3/1m", "LOGIN_LIMIT_ACCOUNT": "off"}
	e := startCustom(t, options{env: limited})
	for i, email := range []string{"x1@example.com", "x2@example.com", "x3@example.com"} {
		if c := attempt(e, email, "wrong", fmt.Sprintf("203.0.113.%d", i+1)); c != "INVALID_CREDENTIALS" {
			t.Fatalf("wrong password %d: %s", i, c)
		}
	}
	if c := attempt(e, "ada@example.com", password, "203.0.113.50"); c != "OK" {
		t.Fatalf("a fourth customer behind the gateway: %s", c)
	}
	for range 3 {
		attempt(e, "x9@example.com", "wrong", "198.51.100.7")
	}
	if c := attempt(e, "bob@example.com", password, "198.51.100.7"); c != "RATE_LIMITED" {
		t.Fatalf("one address past its limit: %s", c)
	}

	limited["TRUSTED_PROXIES"] = "none"
	shared := startCustom(t, options{env: limited})
	for i, email := range []string{"x1@example.com", "x2@example.com", "x3@example.com"} {
		attempt(shared, email, "wrong", fmt.Sprintf("203.0.113.%d", i+1))
	}
	if c := attempt(shared, "ada@example.com", password, "203.0.113.50"); c != "RATE_LIMITED" {
		t.Fatalf("with no proxy trusted, the gateway's address is everyone's: %s", c)
	}
}

// TestSessionCap: logins beyond MAX_SESSIONS_PER_CUSTOMER end the customer's
// least recently refreshed sessions; the newest stay, other customers' too.
func TestSessionCap(t *testing.T) {
	e := start(t, options{env: map[string]string{"MAX_SESSIONS_PER_CUSTOMER": "3"}})
	bob := e.login(t, "bob@example.com", true)
	var ada []pair
	for range 5 {
		e.clock.Advance(time.Second)
		ada = append(ada, e.login(t, "ada@example.com", true))
	}
	if n := e.sessionCount(t, ada[4].Token); n != 3 {
		t.Fatalf("ada has %d sessions, want 3", n)
	}
	for i, p := range ada {
		r := e.refresh(t, p.RefreshToken, nil)
		ended := len(r.Errors) > 0
		if ended != (i < 2) {
			t.Errorf("session %d ended: %v (%s)", i, ended, r.Raw)
		}
	}
	field[pair](t, e.refresh(t, bob.RefreshToken, nil), "refreshCustomerToken")
}
