package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/login/static"
)

// rolesUsers: an admin, and an inactive account.
var rolesUsers = sync.OnceValue(func() *static.Provider {
	h, _ := static.HashPassword(password)
	p, err := static.New([]static.User{
		{Email: "root@example.com", CustomerID: "9", PasswordHash: h, Role: "ADMIN", Status: "ACTIVE"},
		{Email: "gone@example.com", CustomerID: "10", PasswordHash: h, Role: "USER", Status: "INACTIVE"},
	})
	if err != nil {
		panic(err)
	}
	return p
})

// withCookies is cookie mode as the configuration documents it.
var withCookies = options{env: map[string]string{"REFRESH_TOKEN_COOKIE": "true"}}

// raw posts a GraphQL request with the given cookie and headers and returns
// the response and its parsed body.
func raw(t *testing.T, e *env, contentType, body string, cookie *http.Cookie, header http.Header) (*http.Response, response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
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
	var r response
	_ = json.NewDecoder(res.Body).Decode(&r)
	return res, r
}

func refreshCookie(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == "meshauth_refresh" {
			return c
		}
	}
	return nil
}

func TestRefreshTokenCookie(t *testing.T) {
	e := startCustom(t, withCookies)
	body, _ := json.Marshal(map[string]any{"query": loginQ, "variables": map[string]any{"e": "ada@example.com", "p": password}})
	res, r := raw(t, e, "application/json", string(body), nil, nil)
	p := field[pair](t, r, "generateCustomerToken")
	c := refreshCookie(t, res)
	if c == nil || c.Value == "" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/graphql" {
		t.Fatalf("login cookie %+v", c)
	}
	if exp, _ := time.Parse(time.RFC3339, p.RefreshTokenExpiresAt); !c.Expires.Equal(exp) {
		t.Fatalf("cookie expires %v, session %v", c.Expires, exp)
	}

	refresh := `{"query":"mutation { refreshCustomerToken { refresh_token } }"}`
	csrf := http.Header{"X-Requested-With": {"fetch"}}

	// Without the CSRF header the cookie is not read, and nothing rotates.
	_, r = raw(t, e, "application/json", refresh, c, nil)
	if code(t, r) != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "X-Requested-With") {
		t.Fatalf("cookie without the header: %+v", r)
	}
	// A cross-site form post, or a text/plain one, is refused before GraphQL.
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"} {
		res, _ := raw(t, e, ct, "query=mutation { refreshCustomerToken { token } }", c, csrf)
		if res.StatusCode != http.StatusUnsupportedMediaType || refreshCookie(t, res) != nil {
			t.Fatalf("%s post: %d", ct, res.StatusCode)
		}
	}
	if n := e.sessionCount(t, p.Token); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
	// Past the grace: had a refused request rotated the session, the
	// cookie's token would now be refused as reuse.
	e.clock.Advance(31 * time.Second)

	// With the header: rotation, and the cookie follows.
	res, r = raw(t, e, "application/json", refresh, c, csrf)
	field[pair](t, r, "refreshCustomerToken")
	c2 := refreshCookie(t, res)
	if c2 == nil || c2.Value == "" || c2.Value == c.Value {
		t.Fatalf("refresh cookie %+v", c2)
	}

	// Logout by cookie clears it and ends the session.
	res, r = raw(t, e, "application/json", `{"query":"mutation { revokeCustomerToken { result } }"}`, c2, csrf)
	if got := field[struct{ Result bool }](t, r, "revokeCustomerToken"); !got.Result {
		t.Fatal("logout failed")
	}
	if cleared := refreshCookie(t, res); cleared == nil || cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Fatalf("logout did not clear the cookie: %+v", cleared)
	}
	if c := code(t, e.refresh(t, c2.Value, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("after logout: %s", c)
	}
}

// TestCookieModeBodyHasNoRefreshToken: in cookie mode the refresh token is
// in the HttpOnly cookie alone. Login, refresh and exchange answer
// refresh_token: null, so a script (an injected one included) that asks for
// it gets nothing, whether the token came from the cookie or an argument.
func TestCookieModeBodyHasNoRefreshToken(t *testing.T) {
	iss := newIssuer(t)
	// In development: the local issuer speaks http.
	e := startCustom(t, options{dev: true, env: map[string]string{"REFRESH_TOKEN_COOKIE": "true", "OIDC_ISSUERS": iss.config()}})
	csrf := http.Header{"X-Requested-With": {"fetch"}}
	noRefreshToken := func(name string, res *http.Response, r response) *http.Cookie {
		t.Helper()
		if len(r.Errors) > 0 {
			t.Fatalf("%s: %s", name, r.Raw)
		}
		var got map[string]any
		if err := json.Unmarshal(r.Data[name], &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v, ok := got["refresh_token"]; !ok || v != nil {
			t.Errorf("%s: the body carries a refresh token, want refresh_token: null", name)
		}
		if tok, _ := got["token"].(string); tok == "" {
			t.Errorf("%s: no access token in the body", name)
		}
		if exp, _ := got["refresh_token_expires_at"].(string); exp == "" {
			t.Errorf("%s: no refresh_token_expires_at in the body", name)
		}
		c := refreshCookie(t, res)
		if c == nil || c.Value == "" || !c.HttpOnly {
			t.Fatalf("%s: no HttpOnly refresh cookie: %+v", name, c)
		}
		return c
	}
	q := func(query string, vars map[string]any) string {
		b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		return string(b)
	}
	const loginAll = `mutation($e: String!, $p: String!) { generateCustomerToken(email: $e, password: $p) { token refresh_token refresh_token_expires_at } }`
	res, r := raw(t, e, "application/json", q(loginAll, map[string]any{"e": "ada@example.com", "p": password}), nil, nil)
	c := noRefreshToken("generateCustomerToken", res, r)

	const refreshAll = `mutation($t: String) { refreshCustomerToken(refresh_token: $t) { token refresh_token refresh_token_expires_at } }`
	res, r = raw(t, e, "application/json", q(refreshAll, nil), c, csrf)
	c = noRefreshToken("refreshCustomerToken", res, r)
	// A token passed as the argument (the cookie's, which a client may
	// have kept from before cookie mode) gets no token in the body either.
	res, r = raw(t, e, "application/json", q(refreshAll, map[string]any{"t": c.Value}), nil, nil)
	noRefreshToken("refreshCustomerToken", res, r)

	res, r = raw(t, e, "application/json", q(exchangeQ, map[string]any{"t": iss.token(t, jwt.MapClaims{"email": "ada@example.com", "email_verified": true})}), nil, nil)
	noRefreshToken("exchangeIdentityToken", res, r)
}

// TestCookieClearedWhenRefused: a refresh whose cookie holds a token that
// can never work again (invalid, or reused: the session ended) clears the
// cookie, so the browser stops sending a dead token. A refusal that says
// nothing about the cookie's token keeps it.
func TestCookieClearedWhenRefused(t *testing.T) {
	e := startCustom(t, withCookies)
	csrf := http.Header{"X-Requested-With": {"fetch"}}
	const refresh = `{"query":"mutation { refreshCustomerToken { token } }"}`
	cleared := func(res *http.Response) bool {
		c := refreshCookie(t, res)
		return c != nil && c.Value == "" && c.MaxAge < 0
	}
	loginCookie := func() *http.Cookie {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": loginQ, "variables": map[string]any{"e": "ada@example.com", "p": password}})
		res, r := raw(t, e, "application/json", string(body), nil, nil)
		field[pair](t, r, "generateCustomerToken")
		return refreshCookie(t, res)
	}

	t.Run("invalid token", func(t *testing.T) {
		res, r := raw(t, e, "application/json", refresh, &http.Cookie{Name: "meshauth_refresh", Value: "not-a-token"}, csrf)
		if c := code(t, r); c != "INVALID_REFRESH_TOKEN" || !cleared(res) {
			t.Fatalf("code %s, cookie cleared %v", c, cleared(res))
		}
	})
	t.Run("reused token", func(t *testing.T) {
		first := loginCookie()
		res, r := raw(t, e, "application/json", refresh, first, csrf)
		field[pair](t, r, "refreshCustomerToken")
		second := refreshCookie(t, res)
		e.clock.Advance(31 * time.Second) // past the grace
		res, r = raw(t, e, "application/json", refresh, first, csrf)
		if c := code(t, r); c != "REFRESH_TOKEN_REUSED" || !cleared(res) {
			t.Fatalf("code %s, cookie cleared %v", c, cleared(res))
		}
		// The session ended: its current token is refused too, and cleared.
		res, r = raw(t, e, "application/json", refresh, second, csrf)
		if c := code(t, r); c != "INVALID_REFRESH_TOKEN" || !cleared(res) {
			t.Fatalf("current token after reuse: code %s, cookie cleared %v", c, cleared(res))
		}
	})
	t.Run("session expired", func(t *testing.T) {
		c := loginCookie()
		e.clock.Advance(16 * time.Minute) // past the idle timeout
		res, r := raw(t, e, "application/json", refresh, c, csrf)
		if c := code(t, r); c != "SESSION_EXPIRED" || !cleared(res) {
			t.Fatalf("code %s, cookie cleared %v", c, cleared(res))
		}
	})
	t.Run("logout with a malformed token", func(t *testing.T) {
		res, r := raw(t, e, "application/json", `{"query":"mutation { revokeCustomerToken { result } }"}`, &http.Cookie{Name: "meshauth_refresh", Value: "not-a-token"}, csrf)
		if c := code(t, r); c != "BAD_USER_INPUT" || !cleared(res) {
			t.Fatalf("code %s, cookie cleared %v", c, cleared(res))
		}
	})
	t.Run("kept", func(t *testing.T) {
		c := loginCookie()
		// Without the CSRF header the cookie is not even read.
		res, r := raw(t, e, "application/json", refresh, c, nil)
		if code(t, r) != "BAD_USER_INPUT" || refreshCookie(t, res) != nil {
			t.Fatalf("without the header: %s, cookie %+v", r.Raw, refreshCookie(t, res))
		}
		// A bad argument says nothing about the cookie's token.
		body, _ := json.Marshal(map[string]any{"query": refreshQ, "variables": map[string]any{"t": "not-a-token"}})
		res, r = raw(t, e, "application/json", string(body), c, csrf)
		if code(t, r) != "INVALID_REFRESH_TOKEN" || refreshCookie(t, res) != nil {
			t.Fatalf("bad argument: %s, cookie %+v", r.Raw, refreshCookie(t, res))
		}
		e.notRotated(t, c.Value)
	})
}

func TestNoCookieByDefault(t *testing.T) {
	e := startCustom(t, options{})
	body, _ := json.Marshal(map[string]any{"query": loginQ, "variables": map[string]any{"e": "ada@example.com", "p": password}})
	res, r := raw(t, e, "application/json", string(body), nil, nil)
	field[pair](t, r, "generateCustomerToken")
	if len(res.Cookies()) != 0 {
		t.Fatalf("cookies set with cookie mode off: %v", res.Cookies())
	}
	// And a cookie sent anyway is never read.
	_, r = raw(t, e, "application/json", `{"query":"mutation { refreshCustomerToken { token } }"}`,
		&http.Cookie{Name: "meshauth_refresh", Value: "x"}, http.Header{"X-Requested-With": {"1"}})
	if c := code(t, r); c != "BAD_USER_INPUT" {
		t.Fatalf("cookie read with cookie mode off: %+v", r)
	}
}

func TestRolesStatusAndWhoami(t *testing.T) {
	// In development, so that the session tools can show that an inactive
	// account got no session.
	e := startCustom(t, options{login: rolesUsers(), mapper: rolesUsers(), dev: true})
	p := field[pair](t, e.do(t, loginQ, map[string]any{"e": "root@example.com", "p": password}, nil), "generateCustomerToken")
	claims := decodePayload(t, p.Token)
	if !strings.Contains(claims, `"role":"ADMIN"`) || !strings.Contains(claims, `"status":"ACTIVE"`) {
		t.Fatalf("claims %s", claims)
	}
	// They survive a refresh.
	next := field[pair](t, e.refresh(t, p.RefreshToken, nil), "refreshCustomerToken")
	if !strings.Contains(decodePayload(t, next.Token), `"role":"ADMIN"`) {
		t.Fatal("role lost on refresh")
	}

	who := `{ currentCustomer { customer_id role status session_id token_expires_at } }`
	got := field[struct {
		CustomerID string `json:"customer_id"`
		Role       string `json:"role"`
		Status     string `json:"status"`
		SessionID  string `json:"session_id"`
		Expires    string `json:"token_expires_at"`
	}](t, e.do(t, who, nil, bearer(next.Token)), "currentCustomer")
	if got.CustomerID != "9" || got.Role != "ADMIN" || got.Status != "ACTIVE" || got.SessionID == "" || got.Expires != next.TokenExpiresAt {
		t.Fatalf("whoami %+v", got)
	}
	for name, h := range map[string]http.Header{"no token": nil, "forged": bearer(forge(t, "9")), "garbage": bearer("x.y.z")} {
		if c := code(t, e.do(t, who, nil, h)); c != "UNAUTHENTICATED" {
			t.Errorf("whoami with %s: %s", name, c)
		}
	}

	// An inactive account gets no session.
	r := e.do(t, loginQ, map[string]any{"e": "gone@example.com", "p": password}, nil)
	if c := code(t, r); c != "ACCOUNT_INACTIVE" {
		t.Fatalf("inactive account: %s", r.Raw)
	}
	list := field[[]map[string]any](t, e.do(t, `query { getAllAuthItemsById(user_id: "10") { customer_id } }`, nil, nil), "getAllAuthItemsById")
	if len(list) != 0 {
		t.Fatalf("an inactive account got %d sessions", len(list))
	}
}
