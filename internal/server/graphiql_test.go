package server_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestGraphiQLFromTheBinary: in development the explorer's page and every
// script and stylesheet it loads come from the service itself, under a
// Content-Security-Policy that allows this origin only; nothing on the page
// names another host. In production neither the page nor its files exist.
// (browser/run.sh runs the page in Chromium with no network.)
func TestGraphiQLFromTheBinary(t *testing.T) {
	dev := start(t, options{dev: true})
	get := func(url string, gz bool) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		} else {
			req.Header.Set("Accept-Encoding", "identity")
		}
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r io.Reader = res.Body
		if res.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(res.Body)
			if err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		return res, string(b)
	}
	res, page := get(dev.url+"/", true)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") || strings.Contains(csp, "*") {
		t.Errorf("Content-Security-Policy %q allows more than this origin", csp)
	}
	if strings.Contains(page, "//") || strings.Contains(page, "<script>") {
		t.Errorf("the page names another origin or holds an inline script:\n%s", page)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 5 {
		t.Fatalf("the page loads %d files, want GraphiQL, React, ReactDOM, its styles and its start script:\n%s", len(refs), page)
	}
	for _, ref := range refs {
		for _, gz := range []bool{true, false} {
			res, body := get(dev.url+ref[1], gz)
			if res.StatusCode != http.StatusOK || len(body) < 40 {
				t.Errorf("%s (gzip %v): %d, %d bytes", ref[1], gz, res.StatusCode, len(body))
				continue
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") && !strings.HasPrefix(ct, "text/css") {
				t.Errorf("%s: Content-Type %q", ref[1], ct)
			}
		}
	}

	prod := start(t, options{})
	for _, p := range append([]string{"/"}, refs[0][1]) {
		if res, _ := get(prod.url+p, true); res.StatusCode != http.StatusNotFound {
			t.Errorf("production serves %s: %d", p, res.StatusCode)
		}
	}
}
