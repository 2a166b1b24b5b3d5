package web

import (
	"bytes"
	"embed"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// dist is the built web app (web/app built into web/dist by its CI
// script). The binary serves it at /, so it runs with no Node on the host.
// Beside each text file the build writes its gzip (name.gz) and brotli
// (name.br) forms; a client that accepts one gets it (precompressed).
//
//go:embed all:dist
var dist embed.FS

// Cache policies of the web app's files.
const (
	// cacheImmutable is for files under /assets, whose names carry a hash
	// of their content: a new build has new names.
	cacheImmutable = "public, max-age=31536000, immutable"
	// cacheRevalidate is for every other file (index.html, the service
	// worker, the manifest): the browser asks each time whether it changed.
	cacheRevalidate = "no-cache"
)

// contentSecurityPolicy allows the app's own files only: no inline script
// or style, no other origin; WebSockets to the same host; and the OpenID
// provider's origins the app calls from the page (its token endpoint, for
// the code exchange and refreshes), when sign-in goes through one.
func contentSecurityPolicy(host string, providers []string) string {
	connect := "'self'"
	if validHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	for _, p := range providers {
		connect += " " + p
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src " + connect + "; manifest-src 'self'; worker-src 'self'; object-src 'none'; " +
		"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
}

// validHost accepts a Host header fit to be written into a policy.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// webApp serves the embedded app: files that exist as they are (with the
// cache policy of their kind, precompressed when the client accepts it),
// /assets/* that do not exist as 404, and every other path as index.html,
// so that the app's own routes survive a reload (SPA fallback). Paths under
// /api never reach it.
type webApp struct {
	files fs.FS
}

func newWebApp() (*webApp, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil, errors.New("web/dist has no index.html: build the web app")
	}
	return &webApp{files: sub}, nil
}

func (a *webApp) serve(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.writeProblem(w, r, errMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(r.Host, s.providerOrigins(r.Context())))
		if name == "" || name == "index.html" {
			a.index(w, r)
			return
		}
		info, err := fs.Stat(a.files, name)
		switch {
		case err == nil && !info.IsDir():
			if strings.HasPrefix(name, "assets/") {
				w.Header().Set("Cache-Control", cacheImmutable)
			} else {
				w.Header().Set("Cache-Control", cacheRevalidate)
			}
			a.file(w, r, name)
		case strings.HasPrefix(name, "assets/"):
			w.Header().Del("Content-Security-Policy")
			s.writeProblem(w, r, errNotFound)
		default:
			a.index(w, r)
		}
	}
}

func (a *webApp) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", cacheRevalidate)
	a.file(w, r, "index.html")
}

// precompressed are the forms the build writes beside a file, best first:
// the suffix of the file and its Content-Encoding.
var precompressed = []struct{ suffix, coding string }{{".br", "br"}, {".gz", "gzip"}}

// file writes the file name of the app, or its precompressed form when
// the request accepts one (Vary says the answer depends on it).
func (a *webApp) file(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", contentType(name))
	served := name
	for _, p := range precompressed {
		if _, err := fs.Stat(a.files, name+p.suffix); err == nil && acceptsEncoding(r.Header.Get("Accept-Encoding"), p.coding) {
			served = name + p.suffix
			w.Header().Set("Content-Encoding", p.coding)
			break
		}
	}
	b, err := fs.ReadFile(a.files, served)
	if err != nil {
		http.Error(w, name+" is missing", http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// contentType is the media type of a file of the app by its extension;
// the web app manifest's is not in every system's table.
func contentType(name string) string {
	switch ext := path.Ext(name); ext {
	case ".webmanifest":
		return "application/manifest+json"
	case ".html":
		return "text/html; charset=utf-8"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}

// acceptsEncoding reports whether an Accept-Encoding header accepts coding
// (RFC 9110 12.5.3): named, or matched by "*", with a q-value above zero.
func acceptsEncoding(header, coding string) bool {
	accepted := false
	for _, part := range strings.Split(header, ",") {
		token, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(token, coding) && token != "*" {
			continue
		}
		zero := false
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				v = strings.TrimSpace(v)
				zero = strings.Trim(v, "0.") == "" && v != ""
			}
		}
		if strings.EqualFold(token, coding) {
			return !zero // the coding named outright decides
		}
		accepted = !zero
	}
	return accepted
}
