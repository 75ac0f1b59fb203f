package server_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/login/static"
)

const upstreamMarker = "UPSTREAM-BODY-MARKER"

// serve runs the service with a login provider configured by env, as the
// configuration documents it, and returns it with its log.
func serve(t *testing.T, env map[string]string) *env {
	t.Helper()
	return start(t, options{env: env, configuredLogin: true})
}

// upstream answers every request with status and body, or hangs when status is 0.
func upstream(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if status == 0 {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestProviderFailuresThroughTheService: whatever a platform does, a client
// sees INVALID_CREDENTIALS only for a rejection, UPSTREAM_UNAVAILABLE for any
// failure, and neither the password nor the upstream's answer reaches the
// client or the log.
func TestProviderFailuresThroughTheService(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"accepted", 200, `{"customer_id": 77}`, ""},
		{"rejected 401", 401, `{"error":"` + upstreamMarker + `"}`, "INVALID_CREDENTIALS"},
		{"rejected 403", 403, ``, "INVALID_CREDENTIALS"},
		{"server error", 500, `{"error":"` + upstreamMarker + `"}`, "UPSTREAM_UNAVAILABLE"},
		{"bad gateway", 502, upstreamMarker, "UPSTREAM_UNAVAILABLE"},
		{"not found", 404, upstreamMarker, "UPSTREAM_UNAVAILABLE"},
		{"malformed", 200, `{"customer_id": ` + upstreamMarker, "UPSTREAM_UNAVAILABLE"},
		{"no customer id", 200, `{"claims": {"x": "` + upstreamMarker + `"}}`, "UPSTREAM_UNAVAILABLE"},
		{"huge", 200, `{"customer_id": "1", "pad": "` + strings.Repeat("x", 2<<20) + `"}`, "UPSTREAM_UNAVAILABLE"},
		{"timeout", 0, ``, "UPSTREAM_UNAVAILABLE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := upstream(t, tc.status, tc.body)
			e := serve(t, map[string]string{"LOGIN_PROVIDER": "http", "LOGIN_HTTP_URL": up.URL, "LOGIN_TIMEOUT_IN_SECONDS": "1"})
			logs := e.logs
			r := e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil)
			if tc.want == "" {
				field[pair](t, r, "generateCustomerToken")
			} else if c := code(t, r); c != tc.want {
				t.Fatalf("code %s, want %s: %s", c, tc.want, r.Raw)
			}
			for what, text := range map[string]string{"response": r.Raw, "log": logs.String()} {
				if strings.Contains(text, password) {
					t.Errorf("the %s contains the password", what)
				}
				if strings.Contains(text, upstreamMarker) {
					t.Errorf("the %s contains the upstream's answer", what)
				}
			}
		})
	}
}

// TestBigCommerceThroughTheService logs in through a stand-in speaking
// BigCommerce's documented shapes, then checks that a storefront outage is
// UPSTREAM_UNAVAILABLE.
func TestBigCommerceThroughTheService(t *testing.T) {
	storefrontDown := false
	var shopper atomic.Value // the address headers of the last storefront login
	bc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/graphql" {
			shopper.Store(r.Header.Get("True-Client-Ip") + " " + r.Header.Get("X-Forwarded-For") + " " + r.Header.Get("X-BC-Trusted-Proxy-Secret"))
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/stores/abc123/v3/storefront/api-token-customer-impersonation" && r.Header.Get("X-Auth-Token") == "x-auth":
			_, _ = io.WriteString(w, `{"data":{"token":"impersonation-token"},"meta":{}}`)
		case r.URL.Path == "/graphql" && storefrontDown:
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/graphql" && r.Header.Get("Authorization") == "Bearer impersonation-token":
			if strings.Contains(string(body), password) {
				_, _ = io.WriteString(w, `{"data":{"login":{"result":"success","customer":{"entityId":4242}}}}`)
			} else {
				_, _ = io.WriteString(w, `{"errors":[{"message":"Invalid credentials"}],"data":null}`)
			}
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer bc.Close()
	e := serve(t, map[string]string{
		"LOGIN_PROVIDER": "bigcommerce", "STORE_HASH": "abc123", "X_AUTH_TOKEN": "x-auth",
		"BC_API_URL": bc.URL, "BC_GRAPHQL_API": bc.URL + "/graphql", "LOGIN_TIMEOUT_IN_SECONDS": "1",
		"TRUSTED_PROXY_SECRET": "bc-proxy-secret",
	})
	// Behind a gateway on loopback (trusted by default), the shopper's
	// address reaches BigCommerce.
	r := e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, http.Header{"X-Forwarded-For": {"198.51.100.23"}})
	field[pair](t, r, "generateCustomerToken")
	if got := shopper.Load(); got != "198.51.100.23 198.51.100.23 bc-proxy-secret" {
		t.Fatalf("BigCommerce saw %q", got)
	}
	logs := e.logs
	tok := field[pair](t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil), "generateCustomerToken")
	if !strings.Contains(decodePayload(t, tok.Token), `"customer_id":4242`) {
		t.Fatalf("customer id not from entityId: %s", decodePayload(t, tok.Token))
	}
	if c := code(t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": "wrong"}, nil)); c != "INVALID_CREDENTIALS" {
		t.Fatalf("wrong password: %s", c)
	}
	storefrontDown = true
	if c := code(t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil)); c != "UPSTREAM_UNAVAILABLE" {
		t.Fatalf("storefront down: %s", c)
	}
	for _, secret := range []string{password, "x-auth", "impersonation-token", "bc-proxy-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

func decodePayload(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUsersFileReloads: a users file changed while the service runs is
// read again, at most once a second, at the next login: a user added is
// let in and a user removed is not, without a restart. A change that
// cannot be read (not JSON, a user without a customer id, the file gone)
// keeps the users the service had and logs one warning that quotes
// nothing of the file.
func TestUsersFileReloads(t *testing.T) {
	h, err := static.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "users.json")
	write := func(users ...static.User) {
		t.Helper()
		if err := static.WriteFile(file, static.File{Users: users}); err != nil {
			t.Fatal(err)
		}
	}
	ada := static.User{Email: "ada@example.com", CustomerID: "1", PasswordHash: h}
	bob := static.User{Email: "bob@example.com", CustomerID: "2", PasswordHash: h}
	write(ada)
	e := serve(t, map[string]string{"LOGIN_PROVIDER": "static", "STATIC_USERS_FILE": file})
	loginCode := func(email string) string {
		t.Helper()
		r := e.do(t, loginQ, map[string]any{"e": email, "p": password}, nil)
		if len(r.Errors) == 0 {
			return "OK"
		}
		return code(t, r)
	}
	if c := loginCode("bob@example.com"); c != "INVALID_CREDENTIALS" {
		t.Fatalf("bob before he is added: %s", c)
	}

	write(ada, bob)
	if c := loginCode("bob@example.com"); c != "INVALID_CREDENTIALS" {
		t.Fatalf("the file was read again within the second: %s", c)
	}
	e.clock.Advance(time.Second)
	if c := loginCode("bob@example.com"); c != "OK" {
		t.Fatalf("bob after he was added: %s", c)
	}

	write(bob)
	e.clock.Advance(time.Second)
	if c := loginCode("ada@example.com"); c != "INVALID_CREDENTIALS" {
		t.Fatalf("ada after she was removed: %s", c)
	}

	const marker = "FILE-CONTENT-MARKER@example.com"
	broken := map[string]func(){
		"not JSON": func() {
			if err := os.WriteFile(file, []byte(`{"users": [`+marker), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"no customer id": func() { write(bob, static.User{Email: marker, PasswordHash: h}) },
		"gone":           func() { _ = os.Remove(file) },
	}
	for _, name := range []string{"not JSON", "no customer id", "gone"} {
		before := strings.Count(e.logs.String(), "users file")
		broken[name]()
		for range 2 {
			e.clock.Advance(time.Second)
			if c := loginCode("bob@example.com"); c != "OK" {
				t.Fatalf("%s: bob lost his login: %s", name, c)
			}
		}
		if n := strings.Count(e.logs.String(), "users file") - before; n != 1 {
			t.Errorf("%s: %d log lines about the users file, want one warning:\n%s", name, n, e.logs)
		}
	}
	if strings.Contains(e.logs.String(), "FILE-CONTENT-MARKER") {
		t.Errorf("the log quotes the users file:\n%s", e.logs)
	}
	write(ada)
	e.clock.Advance(time.Second)
	if c := loginCode("ada@example.com"); c != "OK" {
		t.Fatalf("ada after the file came back: %s", c)
	}
}
