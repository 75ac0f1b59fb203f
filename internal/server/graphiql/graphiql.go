// Package graphiql serves the GraphiQL explorer from files embedded in the
// binary, so that it works with no network beyond the service itself: the
// page at / and its scripts and styles under /graphiql/. The vendored files
// in assets/ come from the npm packages named in assets/VERSIONS, fetched
// by scripts/update-graphiql.sh, their licenses beside them.
package graphiql

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed index.html init.js page.css assets/*.gz
var files embed.FS

// Prefix is the path under which the explorer's files are served.
const Prefix = "/graphiql/"

// CSP is the page's and its files' Content-Security-Policy: everything from
// this origin only, and no inline script (the page's start script is a file
// too). Inline styles are allowed: GraphiQL's dialogs add <style> elements
// of their own when they open (browser/graphiql.mjs opens them and checks
// that nothing is refused). Fonts and a few images are data: URLs inside
// GraphiQL's stylesheet, which is served from here.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"font-src 'self' data:; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one served file: its bytes (gzipped when gz), type and ETag.
type file struct {
	body  []byte
	gz    bool
	ctype string
	etag  string
}

// Handler serves the page at "/" and the files under Prefix; it answers
// 404 for anything else.
func Handler() http.Handler {
	served := map[string]file{}
	add := func(name, urlPath string, gz bool) {
		b, err := files.ReadFile(name)
		if err != nil {
			panic("graphiql: " + err.Error()) // embedded at build time: cannot fail
		}
		ext := path.Ext(strings.TrimSuffix(name, ".gz"))
		ctype := mime.TypeByExtension(ext)
		if ext == ".js" {
			ctype = "text/javascript; charset=utf-8"
		}
		sum := sha256.Sum256(b)
		served[urlPath] = file{body: b, gz: gz, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	add("index.html", "/", false)
	add("init.js", Prefix+"init.js", false)
	add("page.css", Prefix+"page.css", false)
	gzipped, _ := fs.Glob(files, "assets/*.gz")
	for _, name := range gzipped {
		add(name, Prefix+strings.TrimSuffix(path.Base(name), ".gz"), true)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if f.gz {
			h.Add("Vary", "Accept-Encoding")
		}
		if match := r.Header.Get("If-None-Match"); match != "" && match == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if !f.gz {
			_, _ = w.Write(f.body)
			return
		}
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			_, _ = w.Write(f.body)
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(f.body))
		if err != nil {
			http.Error(w, "corrupt embedded file", http.StatusInternalServerError)
			return
		}
		_, _ = io.Copy(w, zr)
	})
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(enc), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}
