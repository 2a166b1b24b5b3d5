package web

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// dist is the built web app (web/app built into web/dist by its CI
// script). The binary serves it at /, so it runs with no Node on the host.
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
// cache policy of their kind), /assets/* that do not exist as 404, and
// every other path as index.html, so that the app's own routes survive a
// reload (SPA fallback). Paths under /api never reach it.
type webApp struct {
	files  fs.FS
	server http.Handler
}

func newWebApp() (*webApp, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil, errors.New("web/dist has no index.html: build the web app")
	}
	return &webApp{files: sub, server: http.FileServerFS(sub)}, nil
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
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			a.server.ServeHTTP(w, r2)
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
	b, err := fs.ReadFile(a.files, "index.html")
	if err != nil {
		http.Error(w, "index.html is missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	info, _ := fs.Stat(a.files, "index.html")
	http.ServeContent(w, r, "index.html", info.ModTime(), strings.NewReader(string(b)))
}
