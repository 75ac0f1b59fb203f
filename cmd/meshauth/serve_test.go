package main

import (
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

// TestServeDevelopmentQuickstart starts the service as `make run` does, with
// nothing configured, logs the demo user in, and stops it with SIGTERM.
func TestServeDevelopmentQuickstart(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	done := make(chan error, 1)
	go func() {
		done <- serve(envOf(map[string]string{"APP_ENV": "development", "PORT": strconv.Itoa(port), "DATA_DIR": dir, "LOG_LEVEL": "error"}))
	}()
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
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the service did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}

	body := `{"query":"mutation { generateCustomerToken(email: \"` + demoEmail + `\", password: \"` + demoPassword + `\") { token refresh_token } }"}`
	res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"refresh_token":"`) {
		t.Fatalf("demo login failed: %s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "sessions.db")); err != nil {
		t.Fatalf("no embedded store in DATA_DIR: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "dev-secrets.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("development secrets not kept privately: %v", err)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

func TestServeRefusesBadProductionConfig(t *testing.T) {
	err := serve(envOf(map[string]string{"JWT_PRIVATE_KEY": "short-secret-value"}))
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
