package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/servicetest"
)

// fuzzPassword is the one password FuzzGraphQLRequest knows: the seeds log in
// with it, and no response may ever contain it, wherever the fuzzer moves it.
const fuzzPassword = "Pw-MARKER-q7x3-secret"

// fuzzContentTypes are the content types a fuzzed byte picks from.
var fuzzContentTypes = []string{
	"application/json",
	"application/json; charset=utf-8",
	"APPLICATION/JSON",
	"text/plain",
	"application/x-www-form-urlencoded",
	"multipart/form-data; boundary=x",
	"application/graphql",
	"",
}

// fuzzLogin is a login provider without argon2id, so that an execution that
// logs in costs microseconds: the credentials are ada@example.com and fuzzPassword.
type fuzzLogin struct{}

func (fuzzLogin) Login(_ context.Context, email, pw string) (login.Identity, error) {
	if login.NormalizeEmail(email) != "ada@example.com" || pw != fuzzPassword {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	return login.Identity{CustomerID: "1", Claims: map[string]any{"group": "vip"}}, nil
}

// fuzzHandler builds the service through the one wiring (production or
// development), once per fuzz target, with the production defaults for
// operation and body limits. Login rate limits are off: the fuzzer would lock
// the one account at once and never log in again.
func fuzzHandler(f *testing.F, dev bool) http.Handler {
	vars := map[string]string{"LOGIN_LIMIT_ACCOUNT": "off", "LOGIN_LIMIT_IP": "off", "LOG_LEVEL": "error"}
	if dev {
		vars["APP_ENV"] = "development"
	}
	return servicetest.Start(f, vars, meshauth.Options{Login: fuzzLogin{}, LogWriter: io.Discard}).Handler
}

// FuzzGraphQLRequest posts arbitrary bodies to /graphql. The selector byte
// picks the content type (low three bits), an Accept header asking for
// application/graphql-response+json (bit 3) and the development handler
// (bit 7). Whatever the body, the answer is never a 5xx, is JSON, every error
// in it carries extensions.code, and it never contains fuzzPassword.
func FuzzGraphQLRequest(f *testing.F) {
	handlers := map[bool]http.Handler{false: fuzzHandler(f, false), true: fuzzHandler(f, true)}

	vars := func(query string, v map[string]any) string {
		b, _ := json.Marshal(map[string]any{"query": query, "variables": v})
		return string(b)
	}
	seeds := []struct {
		sel  byte
		body string
	}{
		{0, vars(loginQ, map[string]any{"e": "ada@example.com", "p": fuzzPassword, "r": true})},
		{0, vars(loginQ, map[string]any{"e": "ada@example.com", "p": "wrong " + fuzzPassword})},
		{0, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password: \"` + fuzzPassword + `\") { token refresh_token } }"}`},
		{1, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\" password: \"` + fuzzPassword + `\") { token } }"}`},
		{8, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password: ` + fuzzPassword + `) { token } }"}`},
		{0, vars(refreshQ, map[string]any{"t": "AZEOGlrOdNSGrZ5sm5rs3eAAAAAAcYEIWQAAAABxgQvd15W1TbxAt51TvJfC1PQHvzcbYYlBoj_vDH-tdPgzPMellYu4wSDXvyhIdmS3pfZp"})},
		{0, vars(revokeQ, map[string]any{"t": "x"})},
		{0, `{"query":"{ customerSessions { id current } }"}`},
		{0, `{"query":"{ _service { sdl } }"}`},
		{0x80, `{"query":"{ __schema { types { name } } }"}`},
		{0x80, `{"query":"query($u: String) { getAllAuthItemsById(user_id: $u) { customer_id ttl } }","variables":{"u":"1"}}`},
		{0, `{"query":"query A { __typename } query B { __typename }","operationName":"B"}`},
		{0, `{"query": "` + fuzzPassword},
		{0, `{"query": ["` + fuzzPassword + `"]}`},
		{0, `{"query":"{ a { a { a { a } } } }"}`},
		{0, `{"query":"{ ...F } fragment F on Query { ...F }"}`},
		{0, `{"query":"mutation($r: Boolean) { generateCustomerToken(email: \"a@b.c\", password: \"p\", remember_me: $r) { token } }","variables":{"r":"` + fuzzPassword + `"}}`},
		{0, `{"query":"{ \"` + fuzzPassword + `\" }"}`},
		{0, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password \"` + fuzzPassword + `\") { token } }"}`},
		{0, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password: 1, remember_me: \"x\", x: \"` + fuzzPassword + `\") { token } }"}`},
		{0, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password: {a: \"` + fuzzPassword + `\"}) { token } }"}`},
		{0, `{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password: \"` + fuzzPassword + `) { token } }"}`},
		{0, `{"query":"mutation($p: String!) { generateCustomerToken(email: \"ada@example.com\", password: $p) { token } }","variables":{"p":["` + fuzzPassword + `"]}}`},
		{0, `{"query":"mutation($p: Int) { generateCustomerToken(email: \"ada@example.com\", password: \"x\") { token } }","variables":{"p":"` + fuzzPassword + `"}}`},
		{3, "query=" + fuzzPassword},
		{7, ""},
		{0, "\xff\xfe\x00"},
		{0, `[{"query":"{ __typename }"}]`},
		{0, `{"query":"{ __typename }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`},
	}
	for _, s := range seeds {
		f.Add(s.sel, s.body)
	}

	f.Fuzz(func(t *testing.T, sel byte, body string) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader([]byte(body)))
		if ct := fuzzContentTypes[int(sel&7)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if sel&8 != 0 {
			req.Header.Set("Accept", "application/graphql-response+json")
		}
		rec := httptest.NewRecorder()
		handlers[sel&0x80 != 0].ServeHTTP(rec, req)

		raw := rec.Body.Bytes()
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, raw)
		}
		var res struct {
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatalf("status %d, body is not a JSON object (%v): %q", rec.Code, err, raw)
		}
		for _, e := range res.Errors {
			if c, _ := e.Extensions["code"].(string); c == "" {
				t.Fatalf("error without extensions.code: %s", raw)
			}
		}
		if bytes.Contains([]byte(body), []byte(fuzzPassword)) && bytes.Contains(raw, []byte(fuzzPassword)) {
			t.Fatalf("the response echoes the password: %s", raw)
		}
	})
}
