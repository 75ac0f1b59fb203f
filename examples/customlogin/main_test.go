package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExampleBuildsAndRuns builds the example as a user would, runs it, logs
// in through its own login service and stops it with SIGTERM.
func TestExampleBuildsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "customlogin")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	cmd := exec.Command(bin)
	// Production settings: the custom login service needs no users file.
	cmd.Env = append(os.Environ(), "APP_ENV=production", "PORT="+port, "DATA_DIR="+dir,
		"JWT_PRIVATE_KEY=example-jwt-secret-example-jwt-secret", "REFRESH_TOKEN_SECRET=example-refresh-secret-example-refresh")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("example exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("example did not come up\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	login := func(password string) map[string]any {
		body := `{"query":"mutation { generateCustomerToken(email: \"Grace@example.com\", password: \"` + password + `\") { token } }"}`
		res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return out
	}
	ok := login("cobol-forever")
	tok, _ := ok["data"].(map[string]any)["generateCustomerToken"].(map[string]any)["token"].(string)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("no token: %v", ok)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	if claims["customer_id"] != "C-1906" || claims["customer_group"] != "wholesale" {
		t.Fatalf("claims %v", claims)
	}
	bad := login("wrong")
	if errs, _ := bad["errors"].([]any); len(errs) != 1 || !strings.Contains(toJSON(errs), `"INVALID_CREDENTIALS"`) {
		t.Fatalf("wrong password: %v", bad)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("example did not stop on SIGTERM")
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
