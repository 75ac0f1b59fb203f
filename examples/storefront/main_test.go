package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The proxy passes the cookie and the CSRF header to meshauth and its
// Set-Cookie back, byte for byte.
func TestProxyKeepsCookies(t *testing.T) {
	const setCookie = "meshauth_refresh=abc; Path=/graphql; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly; SameSite=Strict"
	var got *http.Request
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(r.Context())
		w.Header().Add("Set-Cookie", setCookie)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{}}`)
	}))
	defer upstream.Close()
	target, err := parseUpstream(upstream.URL + "/graphql")
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(Handler(target))
	defer front.Close()

	req, _ := http.NewRequest(http.MethodPost, front.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-With", "meshauth-storefront")
	req.Header.Set("Cookie", "meshauth_refresh=old")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if sc := res.Header.Values("Set-Cookie"); len(sc) != 1 || sc[0] != setCookie {
		t.Errorf("Set-Cookie = %q, want %q", sc, setCookie)
	}
	if got == nil {
		t.Fatal("meshauth was not called")
	}
	if got.URL.Path != "/graphql" {
		t.Errorf("upstream path = %q, want /graphql", got.URL.Path)
	}
	if c := got.Header.Get("Cookie"); c != "meshauth_refresh=old" {
		t.Errorf("upstream Cookie = %q", c)
	}
	if h := got.Header.Get("X-Requested-With"); h != "meshauth-storefront" {
		t.Errorf("upstream X-Requested-With = %q", h)
	}
}

func TestPageAndUnknownPaths(t *testing.T) {
	target, _ := url.Parse("http://127.0.0.1:1") // never called
	front := httptest.NewServer(Handler(target))
	defer front.Close()
	for path, want := range map[string]int{"/": 200, "/app.js": 200, "/favicon.ico": 204, "/main.go": 404, "/index.html": 404} {
		res, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
		if want == http.StatusOK && !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no Content-Security-Policy", path)
		}
	}
}

func TestUnreachableMeshauth(t *testing.T) {
	target, _ := url.Parse("http://127.0.0.1:1")
	front := httptest.NewServer(Handler(target))
	defer front.Close()
	res, err := http.Post(front.URL+"/graphql", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "UPSTREAM_UNAVAILABLE") {
		t.Errorf("%d %s", res.StatusCode, body)
	}
}

func TestParseUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4000":          "http://127.0.0.1:4000",
		"http://127.0.0.1:4000/":         "http://127.0.0.1:4000",
		"http://127.0.0.1:4000/graphql":  "http://127.0.0.1:4000",
		"https://auth.example/a/graphql": "https://auth.example/a",
	} {
		u, err := parseUpstream(in)
		if err != nil || u.String() != want {
			t.Errorf("parseUpstream(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:4000", "ftp://x", "http://"} {
		if _, err := parseUpstream(bad); err == nil {
			t.Errorf("parseUpstream(%q): no error", bad)
		}
	}
}
