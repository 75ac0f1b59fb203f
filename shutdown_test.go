package meshauth

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowPlatform answers a login once release is closed.
type slowPlatform struct{ entered, release chan struct{} }

func (p slowPlatform) Login(ctx context.Context, email, password string) (Identity, error) {
	close(p.entered)
	select {
	case <-p.release:
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
	return Identity{CustomerID: "77"}, nil
}

// TestGracefulShutdown: on SIGTERM the service stops accepting connections
// but finishes the request in flight (here a login waiting on its platform)
// before closing the store.
func TestGracefulShutdown(t *testing.T) {
	p := slowPlatform{entered: make(chan struct{}), release: make(chan struct{})}
	port := strconv.Itoa(freePort(t))
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{Login: p, Getenv: envOf(map[string]string{
			"APP_ENV": "development", "PORT": port, "DATA_DIR": t.TempDir(), "LOG_LEVEL": "error",
		})})
	}()
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the service did not come up")
		}
	}

	type answer struct {
		body string
		err  error
	}
	inflight := make(chan answer, 1)
	go func() {
		body := `{"query":"mutation { generateCustomerToken(email: \"a@example.com\", password: \"pw\") { refresh_token } }"}`
		res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(body))
		if err != nil {
			inflight <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		inflight <- answer{body: string(b)}
	}()
	<-p.entered
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused while the login is still in flight.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := http.Get(base + "/healthz"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after SIGTERM")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the request in flight finished", err)
	default:
	}
	close(p.release)
	a := <-inflight
	if a.err != nil || !strings.Contains(a.body, `"refresh_token":"`) {
		t.Fatalf("the request in flight: %v %s", a.err, a.body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
}
