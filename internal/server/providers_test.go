package server_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/login/bigcommerce"
	"github.com/meshauth/meshauth/internal/login/httplogin"
	"github.com/meshauth/meshauth/internal/server"
	"github.com/meshauth/meshauth/internal/store/embedded"
	"github.com/meshauth/meshauth/internal/token"
)

const upstreamMarker = "UPSTREAM-BODY-MARKER"

// serve runs the service with provider and returns its URL and its log.
func serve(t *testing.T, provider login.Service) (string, *bytes.Buffer) {
	t.Helper()
	st, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	codec, _ := token.NewCodec([]byte("refresh-secret-refresh-secret-refresh-secret"))
	signer, _ := token.NewHS256([]byte("jwt-secret-jwt-secret-jwt-secret-jwt"), "meshauth", "meshauth")
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := auth.New(auth.Options{
		Rules:    auth.Rules{AccessTTL: 10 * time.Minute, IdleTTL: 15 * time.Minute, RememberTTL: time.Hour, ReuseInterval: 30 * time.Second},
		Provider: provider, Sessions: st, Customers: st, Signer: signer, Codec: codec, Log: log,
	})
	srv := httptest.NewServer(server.Handler(server.Options{Auth: svc, Log: log}))
	t.Cleanup(srv.Close)
	return srv.URL, logs
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
			p, err := httplogin.New(httplogin.Options{URL: up.URL, Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			url, logs := serve(t, p)
			e := &env{url: url}
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
	bc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
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
	p, err := bigcommerce.New(bigcommerce.Options{StoreHash: "abc123", XAuthToken: "x-auth", APIBase: bc.URL, GraphQLURL: bc.URL + "/graphql", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	url, logs := serve(t, p)
	e := &env{url: url}
	tok := field[pair](t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil), "generateCustomerToken")
	if !strings.Contains(decodePayload(t, tok.Token), `"customer_id":"4242"`) {
		t.Fatalf("customer id not from entityId: %s", decodePayload(t, tok.Token))
	}
	if c := code(t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": "wrong"}, nil)); c != "INVALID_CREDENTIALS" {
		t.Fatalf("wrong password: %s", c)
	}
	storefrontDown = true
	if c := code(t, e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil)); c != "UPSTREAM_UNAVAILABLE" {
		t.Fatalf("storefront down: %s", c)
	}
	for _, secret := range []string{password, "x-auth", "impersonation-token"} {
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
