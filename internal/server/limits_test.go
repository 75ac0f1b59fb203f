package server_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/graph"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/server"
	"github.com/meshauth/meshauth/internal/store/embedded"
	"github.com/meshauth/meshauth/internal/store/memory"
	"github.com/meshauth/meshauth/internal/token"
)

// startCustom starts the service with the production defaults for limits,
// changed by mod.
func startCustom(t *testing.T, mod func(*auth.Options, *server.Options)) *env {
	t.Helper()
	st, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	codec, _ := token.NewCodec([]byte("refresh-secret-refresh-secret-refresh-secret"))
	signer, _ := token.NewHS256([]byte("jwt-secret-jwt-secret-jwt-secret-jwt"), "meshauth", "meshauth")
	log := slog.New(slog.DiscardHandler)
	c := &clock{t: time.Now().Truncate(time.Second)}
	ao := auth.Options{
		Rules:    auth.Rules{AccessTTL: 10 * time.Minute, IdleTTL: 15 * time.Minute, RememberTTL: time.Hour, ReuseInterval: 30 * time.Second},
		Provider: users(), Sessions: st, Customers: st, Signer: signer, Codec: codec, Log: log, Now: c.Now,
		AuditKey: []byte("k"), Counters: &memory.Counters{},
		Limits: auth.Limits{Account: []auth.Window{{Max: 5, Length: time.Minute}}, IP: []auth.Window{{Max: 20, Length: time.Minute}}},
	}
	so := server.Options{Log: log, Limits: graph.Limits{MaxDepth: 12, MaxAliases: 15, MaxTokenFields: 1}, MaxComplexity: 200}
	if mod != nil {
		mod(&ao, &so)
	}
	so.Auth = auth.New(ao)
	srv := httptest.NewServer(server.Handler(so))
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, clock: c, store: st}
}

func TestRateLimitedOverHTTP(t *testing.T) {
	e := startCustom(t, nil)
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
	e := startCustom(t, nil)
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
	e := startCustom(t, func(_ *auth.Options, so *server.Options) {
		so.Limits = graph.Limits{MaxDepth: 2, MaxAliases: 2, MaxTokenFields: 1}
		so.MaxComplexity = 6
	})
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
	e := startCustom(t, nil)
	r := e.post(t, "application/json", `[{"query":"{ __typename }"},{"query":"{ __typename }"}]`, nil)
	if c := code(t, r); c != "BAD_USER_INPUT" {
		t.Fatalf("batch: %s", r.Raw)
	}
}

func TestBodyLimit(t *testing.T) {
	e := startCustom(t, func(_ *auth.Options, so *server.Options) { so.MaxBodyBytes = 2048 })
	r := e.post(t, "application/json", `{"query":"{ __typename }","variables":{"pad":"`+strings.Repeat("x", 4096)+`"}}`, nil)
	if c := code(t, r); c != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "too large") {
		t.Fatalf("over the body limit: %s", r.Raw)
	}
	e.login(t, "ada@example.com", false)
}

func TestCORS(t *testing.T) {
	e := startCustom(t, func(_ *auth.Options, so *server.Options) { so.CORSOrigins = []string{"https://shop.example"} })
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
	none := startCustom(t, nil)
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
	direct := startCustom(t, nil)
	if got := ip(direct, "198.51.100.9"); got != "127.0.0.1" {
		t.Fatalf("untrusted peer's X-Forwarded-For believed: %s", got)
	}
	behind := startCustom(t, func(_ *auth.Options, so *server.Options) {
		so.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	})
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
