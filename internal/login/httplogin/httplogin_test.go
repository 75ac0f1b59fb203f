package httplogin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/login/httplogin"
)

const (
	email    = "alice@example.com"
	password = "pw-Zq8!never-in-errors"
	secret   = "shared-secret-Kx41"
	header   = "X-Login-Secret"
	// marker is put in every body the fake endpoint sends; it must never
	// reach an error.
	marker = "UPSTREAM-MARKER-93ab"
)

// checkNoLeak fails the test when err's text carries a secret or a piece of
// an upstream body.
func checkNoLeak(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{password, secret, marker, email} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

func newProvider(t *testing.T, url string, mod func(*httplogin.Options)) *httplogin.Provider {
	t.Helper()
	o := httplogin.Options{URL: url, HeaderName: header, HeaderValue: secret}
	if mod != nil {
		mod(&o)
	}
	p, err := httplogin.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// reply returns a handler that answers status and body.
func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestLoginSuccess(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   string
		claims map[string]any
		// numeric: the id was a JSON integer JavaScript holds exactly.
		numeric bool
	}{
		{name: "string id", body: `{"customer_id":"cust-1"}`, want: "cust-1"},
		{name: "digits in a string stay a string", body: `{"customer_id":"123"}`, want: "123"},
		{name: "numeric id", body: `{"customer_id":12345}`, want: "12345", numeric: true},
		{name: "large numeric id is exact", body: `{"customer_id":9007199254740993}`, want: "9007199254740993"},
		{name: "negative numeric id", body: `{"customer_id":-7}`, want: "-7", numeric: true},
		{name: "null claims", body: `{"customer_id":"c","claims":null}`, want: "c"},
		{
			name: "claims",
			body: `{"customer_id":"c-2","claims":{"group":"vip","tier":9007199254740993,"tags":["a"]},"other":"` + marker + `"}`,
			want: "c-2",
			claims: map[string]any{
				"group": "vip",
				"tier":  json.Number("9007199254740993"),
				"tags":  []any{"a"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(reply(http.StatusOK, tc.body))
			defer srv.Close()
			id, err := newProvider(t, srv.URL, nil).Login(context.Background(), email, password)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if id.CustomerID != tc.want || id.NumericID != tc.numeric {
				t.Errorf("CustomerID = %q numeric=%v, want %q numeric=%v", id.CustomerID, id.NumericID, tc.want, tc.numeric)
			}
			if !reflect.DeepEqual(id.Claims, tc.claims) {
				t.Errorf("Claims = %#v, want %#v", id.Claims, tc.claims)
			}
		})
	}
}

func TestLoginRequest(t *testing.T) {
	tests := []struct {
		name       string
		header     bool
		wantSecret string
	}{
		{name: "with shared secret", header: true, wantSecret: secret},
		{name: "without shared secret", header: false, wantSecret: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			var body map[string]any
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Clone(context.Background())
				d := json.NewDecoder(r.Body)
				if err := d.Decode(&body); err != nil {
					t.Errorf("decode request body: %v", err)
				}
				_, _ = io.WriteString(w, `{"customer_id":"c"}`)
			}))
			defer srv.Close()
			p := newProvider(t, srv.URL+"/auth/check?x=1", func(o *httplogin.Options) {
				if !tc.header {
					o.HeaderName, o.HeaderValue = "", ""
				}
			})
			if _, err := p.Login(context.Background(), email, password); err != nil {
				t.Fatalf("Login: %v", err)
			}
			if got.Method != http.MethodPost || got.URL.Path != "/auth/check" || got.URL.RawQuery != "x=1" {
				t.Errorf("request = %s %s", got.Method, got.URL)
			}
			if ct := got.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if a := got.Header.Get("Accept"); a != "application/json" {
				t.Errorf("Accept = %q", a)
			}
			if h := got.Header.Get(header); h != tc.wantSecret {
				t.Errorf("%s = %q, want %q", header, h, tc.wantSecret)
			}
			want := map[string]any{"email": email, "password": password}
			if !reflect.DeepEqual(body, want) {
				t.Errorf("body = %v, want exactly %v", body, want)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	huge := `{"customer_id":"c","claims":{"pad":"` + marker + strings.Repeat("x", 4096) + `"}}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		opts    func(*httplogin.Options)
		invalid bool // want login.ErrInvalidCredentials, else an upstream error
		is      error
		msg     string // a part of the error's text
	}{
		{name: "401", handler: reply(401, `{"error":"`+marker+`"}`), invalid: true},
		{name: "403", handler: reply(403, marker), invalid: true},
		{name: "401 with a huge body", handler: reply(401, huge), opts: maxBody(1024), invalid: true},
		{name: "404", handler: reply(404, marker)},
		{name: "500", handler: reply(500, `{"error":"`+marker+`"}`)},
		{name: "502", handler: reply(502, marker)},
		{name: "201 is not 200", handler: reply(201, `{"customer_id":"c"}`)},
		{name: "redirect is not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?"+marker, http.StatusTemporaryRedirect)
		}},
		{name: "malformed JSON", handler: reply(200, `{"customer_id": `+marker)},
		{name: "trailing data", handler: reply(200, `{"customer_id":"c"} `+marker)},
		{name: "not an object", handler: reply(200, `["`+marker+`"]`)},
		{name: "empty body", handler: reply(200, ``)},
		{name: "null body", handler: reply(200, `null`)},
		{name: "customer_id missing", handler: reply(200, `{"id":"`+marker+`"}`)},
		{name: "customer_id null", handler: reply(200, `{"customer_id":null}`)},
		{name: "customer_id empty", handler: reply(200, `{"customer_id":""}`)},
		{name: "customer_id blank", handler: reply(200, `{"customer_id":"  "}`)},
		{name: "customer_id boolean", handler: reply(200, `{"customer_id":true}`)},
		{name: "customer_id fraction", handler: reply(200, `{"customer_id":1.5}`)},
		{name: "customer_id integral fraction", handler: reply(200, `{"customer_id":12.0}`)},
		{name: "customer_id exponent", handler: reply(200, `{"customer_id":1e3}`)},
		{name: "customer_id object", handler: reply(200, `{"customer_id":{"v":"`+marker+`"}}`)},
		{name: "customer_id array", handler: reply(200, `{"customer_id":["`+marker+`"]}`)},
		{name: "claims not an object", handler: reply(200, `{"customer_id":"c","claims":["`+marker+`"]}`)},
		{name: "body larger than MaxBodyBytes", handler: reply(200, huge), opts: maxBody(1024), msg: "too large"},
		{
			name:    "body larger than MaxBodyBytes that parses when cut",
			handler: reply(200, `{"customer_id":"c"}`+strings.Repeat(" ", 4096)+marker),
			opts:    maxBody(1024),
			msg:     "too large",
		},
		{
			name:    "timeout",
			handler: hang,
			opts:    func(o *httplogin.Options) { o.Timeout = 100 * time.Millisecond },
			is:      context.DeadlineExceeded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			id, err := newProvider(t, srv.URL, tc.opts).Login(context.Background(), email, password)
			checkNoLeak(t, err)
			switch {
			case err == nil:
				t.Fatalf("Login = %+v, want an error", id)
			case tc.invalid && err != login.ErrInvalidCredentials:
				t.Fatalf("Login error = %v, want exactly login.ErrInvalidCredentials", err)
			case !tc.invalid && errors.Is(err, login.ErrInvalidCredentials):
				t.Fatalf("Login error = %v, want an upstream error", err)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("Login error = %v, want one wrapping %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.msg):
				t.Fatalf("Login error = %v, want one saying %q", err, tc.msg)
			}
		})
	}
}

// hang blocks until the request's context ends. It reads the request body
// first: the server notices a closed connection only after that.
func hang(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func maxBody(n int64) func(*httplogin.Options) {
	return func(o *httplogin.Options) { o.MaxBodyBytes = n }
}

func TestLoginConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(reply(200, `{"customer_id":"c"}`))
	url := srv.URL
	srv.Close()
	_, err := newProvider(t, url, nil).Login(context.Background(), email, password)
	checkNoLeak(t, err)
	if err == nil || errors.Is(err, login.ErrInvalidCredentials) {
		t.Fatalf("Login error = %v, want an upstream error", err)
	}
}

func TestLoginRespectsCallerContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hang))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newProvider(t, srv.URL, nil).Login(ctx, email, password)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, login.ErrInvalidCredentials) {
		t.Fatalf("Login error = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Login took %v; the caller's deadline was 50ms", d)
	}
}

// TestKeepAlive checks that sequential logins, accepted or refused, share
// one connection.
func TestKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Password string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in.Password != password {
			reply(401, `{"error":"`+marker+`"}`)(w, r)
			return
		}
		reply(200, `{"customer_id":"c"}`)(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := newProvider(t, srv.URL, nil)
	for i := range 20 {
		pw := password
		if i%2 == 1 {
			pw = "wrong"
		}
		_, err := p.Login(context.Background(), email, pw)
		if (i%2 == 0 && err != nil) || (i%2 == 1 && err != login.ErrInvalidCredentials) {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential logins opened %d connections, want 1", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		o    httplogin.Options
		ok   bool
	}{
		{name: "minimal", o: httplogin.Options{URL: "https://shop.example/login"}, ok: true},
		{name: "with header", o: httplogin.Options{URL: "http://10.0.0.1:8080/login", HeaderName: header, HeaderValue: secret}, ok: true},
		{name: "no URL", o: httplogin.Options{}},
		{name: "relative URL", o: httplogin.Options{URL: "/login"}},
		{name: "other scheme", o: httplogin.Options{URL: "ftp://shop.example/login"}},
		{name: "no host", o: httplogin.Options{URL: "https:///login"}},
		{name: "bad URL", o: httplogin.Options{URL: "https://shop.example/%zz"}},
		{name: "value without name", o: httplogin.Options{URL: "https://a.example", HeaderValue: secret}},
		{name: "name without value", o: httplogin.Options{URL: "https://a.example", HeaderName: header}},
		{name: "bad header name", o: httplogin.Options{URL: "https://a.example", HeaderName: "X Secret", HeaderValue: secret}},
		{name: "header value with newline", o: httplogin.Options{URL: "https://a.example", HeaderName: header, HeaderValue: secret + "\r\nX-Evil: 1"}},
		{name: "negative timeout", o: httplogin.Options{URL: "https://a.example", Timeout: -time.Second}},
		{name: "negative max body", o: httplogin.Options{URL: "https://a.example", MaxBodyBytes: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := httplogin.New(tc.o)
			checkNoLeak(t, err)
			if tc.ok != (err == nil) || tc.ok != (p != nil) {
				t.Fatalf("New = %v, %v; want ok=%v", p, err, tc.ok)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := httplogin.New(httplogin.Options{URL: "ftp://x", Timeout: -1, MaxBodyBytes: -1})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{"URL", "timeout", "max body"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func ExampleNew() {
	p, err := httplogin.New(httplogin.Options{
		URL:        "https://shop.example/api/check-login",
		HeaderName: "X-Login-Secret", HeaderValue: "from the environment",
	})
	fmt.Println(p != nil, err)
	// Output: true <nil>
}
