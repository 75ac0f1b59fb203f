package meshauth

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/meshauth/meshauth/internal/login/static"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestNoSecretInAnyLogLine runs a full scenario in production mode at debug
// level and reads every log line for the password, the email, the tokens and
// the server secrets. It also checks that /metrics moves to METRICS_ADDR.
func TestNoSecretInAnyLogLine(t *testing.T) {
	const (
		email         = "grace@example.com"
		password      = "p4ssw0rd-that-must-never-be-logged"
		jwtSecret     = "jwt-secret-that-must-never-be-logged"
		refreshSecret = "refresh-secret-that-must-never-be-logged"
	)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.json")
	if _, _, err := static.Put(users, static.Change{Email: email, CustomerID: "1906", Password: password}); err != nil {
		t.Fatal(err)
	}
	metricsPort := strconv.Itoa(freePort(t))
	logs := &lockedBuffer{}
	base, stop := startRunLogging(t, map[string]string{
		"APP_ENV": "production", "DATA_DIR": dir, "LOG_LEVEL": "debug", "STATIC_USERS_FILE": users,
		"JWT_PRIVATE_KEY": jwtSecret, "REFRESH_TOKEN_SECRET": refreshSecret,
		"REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS": "0", "METRICS_ADDR": "127.0.0.1:" + metricsPort,
	}, logs)

	gql := func(query string, vars map[string]any, token string) map[string]any {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return out
	}
	tokens := func(out map[string]any, field string) (string, string) {
		d, _ := out["data"].(map[string]any)
		p, _ := d[field].(map[string]any)
		a, _ := p["token"].(string)
		r, _ := p["refresh_token"].(string)
		if a == "" || r == "" {
			t.Fatalf("%s: %v", field, out)
		}
		return a, r
	}
	loginQ := `mutation($e: String!, $p: String!) { generateCustomerToken(email: $e, password: $p, remember_me: true) { token refresh_token } }`
	refreshQ := `mutation($t: String!) { refreshCustomerToken(refresh_token: $t) { token refresh_token } }`

	access1, rt1 := tokens(gql(loginQ, map[string]any{"e": email, "p": password}, ""), "generateCustomerToken")
	access2, rt2 := tokens(gql(refreshQ, map[string]any{"t": rt1}, ""), "refreshCustomerToken")
	gql(refreshQ, map[string]any{"t": rt1}, "")                               // reuse: the session ends
	gql(loginQ, map[string]any{"e": email, "p": "wrong " + password}, "")     // failed login
	gql(loginQ, map[string]any{"e": "nobody@example.com", "p": password}, "") // unknown email
	access3, rt3 := tokens(gql(loginQ, map[string]any{"e": email, "p": password}, ""), "generateCustomerToken")
	gql(`{ customerSessions { id } }`, nil, access3)
	gql(`{ customerSessions { id } }`, nil, access3+"tampered")
	gql(`mutation($t: String) { revokeCustomerToken(refresh_token: $t) { result } }`, map[string]any{"t": rt3}, access3)
	gql(`mutation { generateCustomerToken(email: "`+email+`", password: "`+password+`"`, nil, "") // parse error quoting the password

	res, err := http.Get("http://127.0.0.1:" + metricsPort + "/metrics")
	if err != nil {
		t.Fatalf("metrics on METRICS_ADDR: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `meshauth_audit_events_total{event="refresh.reuse_detected"} 1`) {
		t.Errorf("metrics: %s", b)
	}
	if res, err := http.Get(base + "/metrics"); err == nil && res.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics still on the service's port: %d", res.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	text := logs.String()
	for _, event := range []string{"login.succeeded", "login.failed", "refresh", "refresh.reuse_detected", "logout"} {
		if !strings.Contains(text, `"event":"`+event+`"`) {
			t.Errorf("no %s audit line", event)
		}
	}
	secrets := map[string]string{
		"password": password, "email": email, "JWT secret": jwtSecret, "refresh secret": refreshSecret,
		"refresh token 1": rt1, "refresh token 2": rt2, "refresh token 3": rt3,
	}
	for i, a := range []string{access1, access2, access3} {
		secrets["access token "+strconv.Itoa(i)] = a
		secrets["access token signature "+strconv.Itoa(i)] = a[strings.LastIndex(a, ".")+1:]
	}
	for name, secret := range secrets {
		if strings.Contains(text, secret) {
			t.Errorf("a log line contains the %s", name)
		}
	}
}
