package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/server"
)

// startHostile starts the service with the production defaults of
// startCustom (body, depth, alias, token-field and complexity limits) but
// without login rate limits: these tests send many bad logins from one
// address, and what they check is the answer to each, not the limiter.
func startHostile(t *testing.T) *env {
	t.Helper()
	return startCustom(t, options{env: map[string]string{"LOGIN_LIMIT_ACCOUNT": "off", "LOGIN_LIMIT_IP": "off"}})
}

// hostileAnswer is what came back for one hostile request, with how long it
// took and whether the connection was kept for the next request.
type hostileAnswer struct {
	status int
	raw    []byte
	errors []gqlError
	data   json.RawMessage
	took   time.Duration
	closed bool // the server closed the connection after answering
}

// send posts body to /graphql with its own client, so that a failure to get
// an answer is reported rather than fatal, and checks what every answer to
// hostile input must be: a complete JSON answer, no 5xx, every error coded.
// body may be an io.Reader without a length, which the client then sends
// chunked.
func send(t *testing.T, e *env, contentType string, body io.Reader) hostileAnswer {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, e.url+"/graphql", body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("no answer, the connection was dropped: %v", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	a := hostileAnswer{status: res.StatusCode, raw: raw, took: time.Since(start), closed: res.Close}
	if err != nil {
		t.Fatalf("the answer was cut off after %d bytes: %v", len(raw), err)
	}
	if a.status >= 500 {
		t.Fatalf("status %d: %.500s", a.status, raw)
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("status %d, the answer is not JSON (%v): %.500q", a.status, err, raw)
	}
	a.errors, a.data = r.Errors, r.Data
	for _, ge := range r.Errors {
		if c, _ := ge.Extensions["code"].(string); c == "" {
			t.Fatalf("an error without extensions.code: %.500s", raw)
		}
	}
	return a
}

// wantCoded fails unless the answer holds errors and the first has one of codes.
func (a hostileAnswer) wantCoded(t *testing.T, codes ...string) {
	t.Helper()
	if len(a.errors) == 0 {
		t.Fatalf("want a coded error (%s), got status %d: %.500s", strings.Join(codes, " or "), a.status, a.raw)
	}
	if c, _ := a.errors[0].Extensions["code"].(string); !slices.Contains(codes, c) {
		t.Fatalf("code %s, want %s: %.500s", c, strings.Join(codes, " or "), a.raw)
	}
}

// stillServes fails unless a normal login still works, on a new connection.
func stillServes(t *testing.T, e *env) {
	t.Helper()
	e.login(t, "ada@example.com", false)
}

// TestHugeBodies: 10 MB bodies are refused with a coded error, and the
// client reads that answer in full: the server does not reset the connection
// under it while the body is still being sent. (It closes the connection
// after answering, as net/http does once a body overran its limit, rather
// than read the remaining megabytes; the log shows it.)
func TestHugeBodies(t *testing.T) {
	const size = 10 << 20
	e := startHostile(t)
	loginBody := func(pad int) []byte {
		b, _ := json.Marshal(map[string]any{"query": loginQ, "variables": map[string]any{"e": "ada@example.com", "p": strings.Repeat("p", pad)}})
		return b
	}
	tests := []struct {
		name, contentType string
		body              func() io.Reader
	}{
		{"10 MB JSON", "application/json", func() io.Reader { return bytes.NewReader(loginBody(size)) }},
		{"10 MB JSON, chunked", "application/json", func() io.Reader { return io.MultiReader(bytes.NewReader(loginBody(size))) }},
		{"10 MB of garbage as JSON", "application/json", func() io.Reader { return bytes.NewReader(bytes.Repeat([]byte{'{'}, size)) }},
		{"10 MB as text/plain", "text/plain", func() io.Reader { return bytes.NewReader(bytes.Repeat([]byte("x"), size)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, e, tc.contentType, tc.body())
			a.wantCoded(t, "BAD_USER_INPUT")
			if a.status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", a.status)
			}
			if !strings.Contains(a.errors[0].Message, "too large") {
				t.Errorf("message %q does not say the body is too large", a.errors[0].Message)
			}
			if bytes.Contains(a.raw, []byte("pppppppp")) {
				t.Error("the answer echoes the body")
			}
			t.Logf("status %d in %v, connection closed after the answer: %v", a.status, a.took.Round(time.Millisecond), a.closed)
			stillServes(t, e)
		})
	}
}

// TestHostileValues: oversized, invalid UTF-8 and NUL-laden values of email,
// password and refresh_token get a coded input or credential error, never
// a 5xx, and never reach the store as a session.
func TestHostileValues(t *testing.T) {
	e := startHostile(t)
	live := e.login(t, "ada@example.com", false)
	// raw builds a JSON body by hand, so that it can hold bytes json.Marshal
	// would escape or replace: vars is spliced in as it is.
	raw := func(query, vars string) string {
		q, _ := json.Marshal(query)
		return `{"query":` + string(q) + `,"variables":{` + vars + `}}`
	}
	const (
		badInput  = "BAD_USER_INPUT"
		badCreds  = "INVALID_CREDENTIALS"
		badToken  = "INVALID_REFRESH_TOKEN"
		parseFail = "GRAPHQL_PARSE_FAILED"
	)
	login := func(email, pw string) string { return raw(loginQ, `"e":"`+email+`","p":"`+pw+`"`) }
	// inline puts the values in the document as string literals, spliced
	// into the JSON as they are: "\\u0000" reaches the GraphQL lexer as the
	// escape \u0000, "\u0000" as a raw NUL character.
	inline := func(email, pw string) string {
		return `{"query":"mutation { generateCustomerToken(email: \"` + email + `\", password: \"` + pw + `\") { token } }"}`
	}
	tokenLike := strings.Repeat("A", 50) + `\u0000` + strings.Repeat("A", 52) // 108 characters once decoded
	tests := []struct {
		name, body string
		codes      []string
	}{
		{"100k-character email", login(strings.Repeat("a", 100_000)+"@example.com", password), []string{badInput}},
		{"60k-character email, under the body limit", login(strings.Repeat("a", 60_000)+"@example.com", password), []string{badInput}},
		{"invalid UTF-8 in email", login("ad\xffa@example.com", password), []string{badInput, badCreds}},
		{"invalid UTF-8 only as email", login("\xff\xfe\xfd", password), []string{badInput}},
		{"lone surrogate in email", login(`ada\ud800@example.com`, password), []string{badInput, badCreds}},
		{"NUL escape in email", login(`ada\u0000@example.com`, password), []string{badInput}},
		{"raw NUL byte in email", login("ada\x00@example.com", password), []string{badInput}},
		{"invalid UTF-8 in password", login("ada@example.com", password+"\xff"), []string{badInput, badCreds}},
		{"NUL escape in password", login("ada@example.com", password+`\u0000`), []string{badInput, badCreds}},
		{"raw NUL byte in password", login("ada@example.com", "\x00"+password), []string{badInput}},
		{"NUL escape in an inline email", inline(`ada\\u0000@example.com`, password), []string{badInput}},
		{"raw NUL in an inline email", inline(`ada\u0000@example.com`, password), []string{badInput, parseFail}},
		{"invalid UTF-8 in an inline password", inline("ada@example.com", password+"\xff"), []string{badInput, badCreds}},
		{"invalid UTF-8 in refresh_token", raw(refreshQ, `"t":"`+live.RefreshToken[:100]+"\xff\xfe\xfd\xfc"+`"`), []string{badInput, badToken}},
		{"NUL in a 108-character refresh_token", raw(refreshQ, `"t":"`+tokenLike+`"`), []string{badInput, badToken}},
		{"NUL after a live refresh_token", raw(refreshQ, `"t":"`+live.RefreshToken+`\u0000"`), []string{badInput, badToken}},
		{"NUL in revoke's refresh_token", raw(revokeQ, `"t":"`+tokenLike+`"`), []string{badInput, badToken}},
		{"60k-character refresh_token", raw(refreshQ, `"t":"`+strings.Repeat("A", 60_000)+`"`), []string{badInput, badToken}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, e, "application/json", strings.NewReader(tc.body))
			a.wantCoded(t, tc.codes...)
			if strings.Contains(string(a.raw), password) {
				t.Error("the answer contains the password")
			}
			stillServes(t, e)
		})
	}
	// The live session was not touched by any of it.
	field[pair](t, e.refresh(t, live.RefreshToken, nil), "refreshCustomerToken")
}

// TestDeeplyNestedQueries: 10 000 levels of nesting, in every form that fits
// the body limit, and their fragment equivalents, get a coded error quickly:
// no crash, no stack overflow, no runaway CPU. Every case is a body of at
// most 64 KiB that anyone can send without a token.
func TestDeeplyNestedQueries(t *testing.T) {
	const n = 10_000
	e := startHostile(t)
	nest := func(open, leaf, close string) string {
		return strings.Repeat(open, n) + leaf + strings.Repeat(close, n)
	}
	// A chain of fragments, each spreading the next, as long as fits in the
	// body limit; and a fan-out of fragments that each spread the next one
	// twice. The fan-out has 2^24 paths, enough to show the cost doubling per
	// level; an attacker would use 2^40 in the same 1.5 KB, which keeps a CPU
	// busy for longer than a test can wait.
	var chain, fanout strings.Builder
	chain.WriteString("{ ...f0 }")
	for i := range 1500 {
		fmt.Fprintf(&chain, " fragment f%d on Query { ...f%d }", i, i+1)
	}
	chain.WriteString(" fragment f1500 on Query { __typename }")
	fanout.WriteString("{ ...f0 }")
	for i := range 24 {
		fmt.Fprintf(&fanout, " fragment f%d on Query { ...f%d ...f%d }", i, i+1, i+1)
	}
	fanout.WriteString(" fragment f24 on Query { __typename }")

	tests := []struct {
		name, query string
	}{
		{"10 000 nested selections", nest("{a", "", "}")},
		{"10 000 nested selections under a real field", "{ customerSessions " + nest("{ id ", "", "}") + " }"},
		{"10 000 unclosed braces", strings.Repeat("{", n)},
		{"10 000 nested inline fragments", nest("{...", "{ __typename }", "}")},
		{"10 000 nested lists in an argument", `mutation { revokeCustomerToken(refresh_token: ` + nest("[", `"x"`, "]") + `) { result } }`},
		{"10 000 nested objects in an argument", `mutation { revokeCustomerToken(refresh_token: ` + nest("{a:", `"x"`, "}") + `) { result } }`},
		{"a chain of 1 500 fragments", chain.String()},
		{"fragments fanning out to 2^24 paths", fanout.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": tc.query})
			if len(body) > server.DefaultMaxBodyBytes {
				t.Fatalf("test body is %d bytes, over the %d-byte body limit: it would test only that", len(body), server.DefaultMaxBodyBytes)
			}
			a := send(t, e, "application/json", bytes.NewReader(body))
			t.Logf("status %d in %v: %.200s", a.status, a.took.Round(time.Millisecond), a.raw)
			a.wantCoded(t, "BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "COMPLEXITY_LIMIT_EXCEEDED")
			// Generous for the race detector; an unprotected server takes seconds to forever.
			if a.took > 2*time.Second {
				t.Errorf("took %v", a.took)
			}
			stillServes(t, e)
		})
	}

	// Variables nested 10 000 deep are refused while the body is decoded.
	t.Run("variables nested 10 000 deep", func(t *testing.T) {
		body := `{"query":` + mustJSON(refreshQ) + `,"variables":{"t":` + nest(`{"a":`, `"x"`, "}") + `}}`
		a := send(t, e, "application/json", strings.NewReader(body))
		a.wantCoded(t, "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED")
		stillServes(t, e)
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestErrorsDoNotEchoThePassword: a password sent in the wrong place must not
// come back in the error (README: messages never contain input). gqlgen's
// own parse and validation messages quote literal values; FuzzGraphQLRequest
// found the first of these.
func TestErrorsDoNotEchoThePassword(t *testing.T) {
	e := startHostile(t)
	tests := []struct{ name, query string }{
		{"a string where the parser expects a selection", `"` + password + `"`},
		{"the password as remember_me", `mutation { generateCustomerToken(email: "ada@example.com", password: "x", remember_me: "` + password + `") { token } }`},
		{"the password in a list", `mutation { generateCustomerToken(email: "ada@example.com", password: ["` + password + `"]) { token } }`},
		{"the password as an object", `mutation { generateCustomerToken(email: "ada@example.com", password: {p: "` + password + `"}) { token } }`},
		{"the password after a missing colon", `mutation { generateCustomerToken(email: "ada@example.com", password "` + password + `") { token } }`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, e, "application/json", strings.NewReader(`{"query":`+mustJSON(tc.query)+`}`))
			a.wantCoded(t, "BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED")
			if strings.Contains(string(a.raw), password) {
				t.Fatalf("the answer echoes the password: %s", a.raw)
			}
		})
	}
}

// TestClientMistakesAreNotErrors: a request full of bad entity
// representations, and requests with garbage bearer tokens, are answered with
// coded errors, and leave no error-level line, nor the attacker's text at
// a level above debug, in the log.
func TestClientMistakesAreNotErrors(t *testing.T) {
	e := start(t, options{env: map[string]string{"FEDERATION_CUSTOMER_ENTITY": "true", "LOG_LEVEL": "info"}})
	const marker = "ATTACKER-TEXT"
	reps := make([]any, 100)
	for i := range reps {
		reps[i] = map[string]any{"__typename": "Customer", "name": marker}
	}
	r := e.do(t, `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } } }`, map[string]any{"r": reps}, nil)
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
		t.Fatalf("bad representations: %.300s", r.Raw)
	}
	for range 20 {
		if c := code(t, e.do(t, sessionsQ, nil, bearer(marker+".x.y"))); c != "UNAUTHENTICATED" {
			t.Fatalf("garbage bearer: %s", c)
		}
	}
	logs := e.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, marker) {
		t.Fatalf("client mistakes logged above debug:\n%.2000s", logs)
	}
}
