package meshauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store/storetest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// startRun runs the service with env (PORT is chosen here) until the test
// ends, and returns its base URL and a function that sends SIGTERM and
// returns Run's result.
func startRun(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	return startRunLogging(t, env, nil)
}

// startRunLogging is startRun with the logs going to w.
func startRunLogging(t *testing.T, env map[string]string, w io.Writer) (string, func() error) {
	t.Helper()
	port := freePort(t)
	env["PORT"] = strconv.Itoa(port)
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), Options{Getenv: envOf(env), LogWriter: w}) }()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the service did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	stop := func() error {
		stopped = true
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not stop on SIGTERM")
			return nil
		}
	}
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	return base, stop
}

func status(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func demoLogin(t *testing.T, base string) string {
	t.Helper()
	body := `{"query":"mutation { generateCustomerToken(email: \"` + demoEmail + `\", password: \"` + demoPassword + `\") { token refresh_token } }"}`
	res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(b)
}

// TestRunDevelopmentQuickstart starts the service as `make run` does, with
// nothing configured, logs the demo user in, and stops it with SIGTERM.
func TestRunDevelopmentQuickstart(t *testing.T) {
	dir := t.TempDir()
	base, stop := startRun(t, map[string]string{"APP_ENV": "development", "DATA_DIR": dir, "LOG_LEVEL": "error"})
	if b := demoLogin(t, base); !strings.Contains(b, `"refresh_token":"`) {
		t.Fatalf("demo login failed: %s", b)
	}
	if s := status(t, base+"/readyz"); s != http.StatusOK {
		t.Fatalf("/readyz: %d", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "sessions.db")); err != nil {
		t.Fatalf("no embedded store in DATA_DIR: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "dev-secrets.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("development secrets not kept privately: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after SIGTERM: %v", err)
	}
}

func TestRunRefusesBadProductionConfig(t *testing.T) {
	err := Run(context.Background(), Options{Getenv: envOf(map[string]string{"JWT_PRIVATE_KEY": "short-secret-value"})})
	if err == nil {
		t.Fatal("production with no secrets started")
	}
	for _, name := range []string{"JWT_PRIVATE_KEY", "REFRESH_TOKEN_SECRET", "STATIC_USERS_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "short-secret-value") {
		t.Error("error shows a secret")
	}
}

func dynamoEnv(t *testing.T, endpoint string) map[string]string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return map[string]string{
		"APP_ENV": "development", "DATA_DIR": t.TempDir(), "LOG_LEVEL": "error",
		"STORE": "dynamodb", "DYNAMO_DB_AUTH_TABLE": "meshauth-run-" + hex.EncodeToString(b),
		"DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_ENDPOINT": endpoint,
		// DynamoDB Local on a busy 2-core machine can take seconds for its
		// first transactions; the production default (2 s) is for DynamoDB.
		"DYNAMO_DB_TIMEOUT_IN_MILLISECONDS": "15000",
	}
}

// TestRunOnDynamoDB runs the service against DynamoDB Local, creating the
// table at startup, and checks that `migrate` is idempotent.
func TestRunOnDynamoDB(t *testing.T) {
	endpoint := storetest.DynamoDBLocal(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	env := dynamoEnv(t, endpoint)
	env["DYNAMO_DB_CREATE_TABLE"] = "true"
	base, stop := startRun(t, env)
	if b := demoLogin(t, base); !strings.Contains(b, `"refresh_token":"`) {
		t.Fatalf("demo login failed: %s", b)
	}
	if s := status(t, base+"/readyz"); s != http.StatusOK {
		t.Fatalf("/readyz: %d", s)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Migrate(context.Background(), envOf(env)); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
}

// TestRunWithDynamoDBDown: an unreachable table does not stop the service
// from starting; /readyz answers 503 until it is reachable.
func TestRunWithDynamoDBDown(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	env := dynamoEnv(t, "http://127.0.0.1:"+strconv.Itoa(freePort(t)))
	base, _ := startRun(t, env)
	if s := status(t, base+"/readyz"); s != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with DynamoDB down: %d, want 503", s)
	}
	if s := status(t, base+"/healthz"); s != http.StatusOK {
		t.Fatalf("/healthz: %d", s)
	}
}
