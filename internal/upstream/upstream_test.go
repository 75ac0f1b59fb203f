package upstream_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/meshauth/meshauth/internal/upstream"
)

func TestReadBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		max  int64
		want string
		err  error
	}{
		{name: "empty", body: "", max: 4, want: ""},
		{name: "under the limit", body: "abc", max: 4, want: "abc"},
		{name: "at the limit", body: "abcd", max: 4, want: "abcd"},
		{name: "one over the limit", body: "abcde", max: 4, err: upstream.ErrTooLarge},
		{name: "far over the limit", body: strings.Repeat("x", 1<<16), max: 4, err: upstream.ErrTooLarge},
		{name: "zero limit, empty body", body: "", max: 0, want: ""},
		{name: "zero limit, one byte", body: "x", max: 0, err: upstream.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: strings.NewReader(tc.body)}
			b, err := upstream.ReadBody(r, tc.max)
			if err != tc.err {
				t.Fatalf("ReadBody error = %v, want %v", err, tc.err)
			}
			if tc.err != nil && b != nil {
				t.Errorf("ReadBody returned %d bytes with its error", len(b))
			}
			if tc.err == nil && string(b) != tc.want {
				t.Errorf("ReadBody = %q, want %q", b, tc.want)
			}
			if r.n > tc.max+1 {
				t.Errorf("ReadBody read %d bytes; it may read at most max+1 = %d", r.n, tc.max+1)
			}
		})
	}
}

func TestReadBodyReadError(t *testing.T) {
	cause := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(&url.Error{Op: "Get", URL: "https://h.example/?key=secret", Err: cause}))
	_, err := upstream.ReadBody(r, 10)
	if !errors.Is(err, cause) || errors.Is(err, upstream.ErrTooLarge) {
		t.Fatalf("ReadBody error = %v, want one wrapping %v", err, cause)
	}
	if got := err.Error(); got != "read response: connection reset" {
		t.Errorf("ReadBody error = %q, want %q", got, "read response: connection reset")
	}
}

func TestDrain(t *testing.T) {
	r := strings.NewReader(strings.Repeat("x", 100))
	upstream.Drain(r, 30)
	if r.Len() != 70 {
		t.Errorf("Drain(30) left %d of 100 bytes, want 70", r.Len())
	}
	upstream.Drain(r, 1000)
	if r.Len() != 0 {
		t.Errorf("Drain(1000) left %d bytes, want 0", r.Len())
	}
	upstream.Drain(iotest.ErrReader(errors.New("broken")), 10) // must not panic
}

func TestTransportError(t *testing.T) {
	const secretURL = "https://shop.example/login?token=SECRET-in-query"
	tests := []struct {
		name string
		err  error
		is   error  // must still match
		want string // the whole text
	}{
		{
			name: "deadline",
			err:  &url.Error{Op: "Post", URL: secretURL, Err: context.DeadlineExceeded},
			is:   context.DeadlineExceeded,
			want: context.DeadlineExceeded.Error(),
		},
		{
			name: "canceled, wrapped",
			err:  errors.Join(errors.New("outer"), &url.Error{Op: "Post", URL: secretURL, Err: context.Canceled}),
			is:   context.Canceled,
			want: context.Canceled.Error(),
		},
		{
			name: "not a url.Error",
			err:  context.DeadlineExceeded,
			is:   context.DeadlineExceeded,
			want: context.DeadlineExceeded.Error(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := upstream.TransportError(tc.err)
			if !errors.Is(got, tc.is) {
				t.Errorf("TransportError = %v, which does not wrap %v", got, tc.is)
			}
			if strings.Contains(got.Error(), "SECRET") || strings.Contains(got.Error(), "shop.example") {
				t.Errorf("TransportError = %q still names the URL", got)
			}
			if got.Error() != tc.want {
				t.Errorf("TransportError = %q, want %q", got, tc.want)
			}
		})
	}
	if err := upstream.TransportError(nil); err != nil {
		t.Errorf("TransportError(nil) = %v, want nil", err)
	}
}

// TestTransportErrorFromClient checks a real client timeout: the URL, with
// the secret in its query, is gone, and the deadline survives.
func TestTransportErrorFromClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?key=SECRET-in-query", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = upstream.NewClient().Do(req)
	if err == nil {
		t.Fatal("Do succeeded against a hanging server")
	}
	got := upstream.TransportError(err)
	if !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("TransportError = %v, want one wrapping context.DeadlineExceeded", got)
	}
	if strings.Contains(got.Error(), "SECRET") || strings.Contains(got.Error(), srv.URL) {
		t.Errorf("TransportError = %q still names the URL", got)
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url  string
		want string // the error's text; "" for none
	}{
		{"https://shop.example/login", ""},
		{"http://10.0.0.1:8080/login?x=1", ""},
		{"http://localhost", ""},
		{"HTTPS://shop.example", ""}, // url.Parse lower-cases the scheme
		{"", "is required"},
		{"https://shop.example/%zz", "is not a valid URL"},
		{"/login", "must be an absolute http or https URL"},
		{"shop.example/login", "must be an absolute http or https URL"},
		{"ftp://shop.example/login", "must be an absolute http or https URL"},
		{"ws://shop.example/graphql", "must be an absolute http or https URL"},
		{"https:///login", "has no host"},
		{"https:shop.example", "has no host"},
	}
	for _, tc := range tests {
		err := upstream.CheckURL(tc.url)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// TestPredicates checks IsInteger, ValidHeaderName and ValidHeaderValue.
func TestPredicates(t *testing.T) {
	tests := []struct {
		name string
		f    func(string) bool
		yes  []string // accepted
		no   []string // rejected
	}{
		{
			name: "IsInteger", f: upstream.IsInteger,
			yes: []string{"0", "7", "42", "-7", "-0", "9007199254740993", "123456789012345678901234567890"},
			no: []string{
				"", "-", "--1", "+1", "007", "-007", "00", "1e3", "1E3", "12.0", "1.5",
				" 1", "1 ", "0x1F", `"42"`, "null", "true",
			},
		},
		{
			name: "ValidHeaderName", f: upstream.ValidHeaderName,
			yes: []string{"X-Login-Secret", "x-auth-token", "Authorization", "A1!#$%&'*+-.^_`|~"},
			no:  []string{"", "X Secret", "X-Secret:", "X-Secret\r\nX-Evil", "X-Secret\t", "(comment)", "X/Y", "X-Ünïcode"},
		},
		{
			name: "ValidHeaderValue", f: upstream.ValidHeaderValue,
			yes: []string{"", "shared-secret-Kx41", "Bearer abc.def.ghi", "with\ttab and spaces", "ünïcode"},
			no:  []string{"secret\r\nX-Evil: 1", "secret\n", "secret\r", "nul\x00", "del\x7f", "\x1b[31m"},
		},
	}
	for _, tc := range tests {
		for _, s := range tc.yes {
			if !tc.f(s) {
				t.Errorf("%s(%q) = false, want true", tc.name, s)
			}
		}
		for _, s := range tc.no {
			if tc.f(s) {
				t.Errorf("%s(%q) = true, want false", tc.name, s)
			}
		}
	}
}

func TestNewClient(t *testing.T) {
	c := upstream.NewClient()
	if c.Jar != nil {
		t.Error("client has a cookie jar")
	}
	tr, ok := c.Transport.(*http.Transport)
	switch {
	case !ok:
		t.Fatalf("Transport is %T, want *http.Transport", c.Transport)
	case tr == http.DefaultTransport:
		t.Error("client shares http.DefaultTransport; want a clone")
	case tr.MaxIdleConnsPerHost != 64 || tr.MaxIdleConns != 128:
		t.Errorf("idle connections: %d per host, %d in all; want 64 and 128", tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
	if upstream.NewClient().Transport == c.Transport {
		t.Error("two clients share one transport")
	}

	var conns atomic.Int32
	var cookies atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Cookies()) > 0 {
			cookies.Add(1)
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "customer-1", Path: "/"})
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	for i, path := range []string{"/login", "/login", "/redirect", "/login"} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		upstream.Drain(resp.Body, 1<<10)
		resp.Body.Close()
		want := http.StatusOK
		if path == "/redirect" {
			want = http.StatusTemporaryRedirect
		}
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	if n := cookies.Load(); n != 0 {
		t.Errorf("%d requests carried a cookie the server set", n)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("4 sequential requests opened %d connections, want 1", n)
	}
}

func TestPostJSON(t *testing.T) {
	type seen struct {
		method, contentType, accept, secret, body string
	}
	saw := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		saw <- seen{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Accept"), r.Header.Get("X-Secret"), string(b)}
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, `{"ok":true}`)
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 100))
		case "/denied":
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, strings.Repeat("x", 100))
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/hang":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	header := http.Header{}
	header.Set("x-secret", "s3")

	tests := []struct {
		name, path string
		header     http.Header
		status     int
		body       string
		is         error
	}{
		{name: "200", path: "/ok", header: header, status: 200, body: `{"ok":true}`},
		{name: "no extra header", path: "/ok", status: 200, body: `{"ok":true}`},
		{name: "200 too large", path: "/big", status: 200, is: upstream.ErrTooLarge},
		{name: "other status", path: "/denied", status: 403},
		{name: "redirect not followed", path: "/redirect", status: 302},
		{name: "timeout", path: "/hang", is: context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := 5 * time.Second
			if tc.path == "/hang" {
				timeout = 100 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			status, body, err := upstream.PostJSON(ctx, upstream.NewClient(), srv.URL+tc.path+"?key=SECRET", tc.header, []byte(`{"a":1}`), 50)
			if status != tc.status || string(body) != tc.body || !errors.Is(err, tc.is) || (tc.is == nil) != (err == nil) {
				t.Fatalf("PostJSON = %d, %q, %v; want %d, %q, %v", status, body, err, tc.status, tc.body, tc.is)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q names the URL", err)
			}
			want := seen{"POST", "application/json", "application/json", tc.header.Get("X-Secret"), `{"a":1}`}
			if got := <-saw; got != want {
				t.Errorf("server saw %+v, want %+v", got, want)
			}
		})
	}

	t.Run("header replaces a default", func(t *testing.T) {
		h := http.Header{"Content-Type": {"application/vnd.custom+json"}}
		cts := make(chan string, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { cts <- r.Header.Get("Content-Type") }))
		defer srv.Close()
		if _, _, err := upstream.PostJSON(context.Background(), upstream.NewClient(), srv.URL, h, nil, 10); err != nil {
			t.Fatal(err)
		}
		if ct := <-cts; ct != "application/vnd.custom+json" {
			t.Errorf("Content-Type = %q", ct)
		}
	})

	t.Run("bad URL", func(t *testing.T) {
		status, _, err := upstream.PostJSON(context.Background(), upstream.NewClient(), "http://h.example/%zz?key=SECRET", nil, nil, 10)
		if status != 0 || !errors.Is(err, upstream.ErrBuildRequest) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("PostJSON = %d, %v; want 0, ErrBuildRequest", status, err)
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
