package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/servicetest"
)

// startMetered starts the service with metrics on the service port (the
// default) and info-level logs.
func startMetered(t *testing.T) (*env, *servicetest.Logs) {
	t.Helper()
	e := start(t, options{env: map[string]string{"LOG_LEVEL": "info"}})
	return e, e.logs
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	e, _ := startMetered(t)
	p := e.login(t, "ada@example.com", false)
	e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": "wrong"}, nil)
	next := field[pair](t, e.refresh(t, p.RefreshToken, nil), "refreshCustomerToken")
	e.refresh(t, p.RefreshToken, nil) // grace
	e.clock.Advance(time.Minute)
	e.refresh(t, p.RefreshToken, nil) // reuse
	_ = next

	text := scrape(t, e.url)
	for _, want := range []string{
		`meshauth_graphql_operations_total{code="OK",operation="generateCustomerToken"} 1`,
		`meshauth_graphql_operations_total{code="INVALID_CREDENTIALS",operation="generateCustomerToken"} 1`,
		`meshauth_graphql_operations_total{code="OK",operation="refreshCustomerToken"} 2`,
		`meshauth_graphql_operations_total{code="REFRESH_TOKEN_REUSED",operation="refreshCustomerToken"} 1`,
		`meshauth_graphql_operation_duration_seconds_count{operation="refreshCustomerToken"} 3`,
		`meshauth_store_calls_total{call="create",result="ok"} 1`,
		`meshauth_store_calls_total{call="rotate",result="ok"} 1`,
		`meshauth_store_calls_total{call="rotate",result="conflict"} 2`,
		`meshauth_store_calls_total{call="delete",result="ok"} 1`,
		`meshauth_store_call_duration_seconds_count{call="rotate"} 3`,
		`meshauth_login_upstream_calls_total{result="ok"} 1`,
		`meshauth_login_upstream_calls_total{result="invalid_credentials"} 1`,
		`meshauth_login_upstream_duration_seconds_count 2`,
		`meshauth_audit_events_total{event="refresh.reuse_detected"} 1`,
		`meshauth_audit_events_total{event="refresh.grace"} 1`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRequestID(t *testing.T) {
	e, logs := startMetered(t)
	post := func(id string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/graphql", strings.NewReader(`{"query":"mutation { generateCustomerToken(email: \"ada@example.com\", password: \"`+password+`\") { token } }"}`))
		req.Header.Set("Content-Type", "application/json")
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if got := post("gateway-req-42").Header.Get("X-Request-Id"); got != "gateway-req-42" {
		t.Fatalf("incoming id not echoed: %q", got)
	}
	if !strings.Contains(logs.String(), `"request_id":"gateway-req-42"`) {
		t.Fatalf("audit line lacks the request id: %s", logs)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 129), "semi;colon"} {
		got := post(bad).Header.Get("X-Request-Id")
		if got == "" || got == bad || len(got) != 24 {
			t.Errorf("id for %q: %q, want a generated one", bad, got)
		}
	}
}

// TestAuditEmailHash: failed logins are correlatable by a keyed hash of the
// email; the log never holds the email or the password.
func TestAuditEmailHash(t *testing.T) {
	e, logs := startMetered(t)
	for range 2 {
		e.do(t, loginQ, map[string]any{"e": "Eve@Example.com ", "p": password}, nil)
	}
	text := logs.String()
	if strings.Count(text, `"event":"login.failed"`) != 2 || !strings.Contains(text, `"email_hash":"`) {
		t.Fatalf("no failed-login audit with an email hash: %s", text)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.Contains(l, `"event":"login.failed"`) {
			lines = append(lines, l)
		}
	}
	hashOf := func(line string) string {
		i := strings.Index(line, `"email_hash":"`)
		return line[i+14 : i+14+32]
	}
	if hashOf(lines[0]) != hashOf(lines[1]) {
		t.Error("the same email hashed differently")
	}
	for _, secret := range []string{"eve@example.com", "Eve@Example.com", password} {
		if strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
			t.Errorf("the log contains %q", secret)
		}
	}
}
