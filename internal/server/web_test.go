package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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
	if c == nil || c.Value != p.RefreshToken || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/graphql" {
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
	next := field[pair](t, r, "refreshCustomerToken")
	c2 := refreshCookie(t, res)
	if c2 == nil || c2.Value != next.RefreshToken || next.RefreshToken == p.RefreshToken {
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
	if c := code(t, e.refresh(t, next.RefreshToken, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("after logout: %s", c)
	}
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
