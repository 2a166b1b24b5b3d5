package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// unmatchedRoute labels requests no route matched (404s of random paths):
// one label value, whatever the path, so scanners cannot blow up the series.
const unmatchedRoute = "unmatched"

// HTTP counts and times every request handled by next, labelled by the chi
// route pattern that matched ("/api/queue/{playerId}"). It works as a chi
// middleware (router.Use) and around a chi router: outside one it installs
// the route context that the router then fills.
func (r *Registry) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rctx := chi.RouteContext(req.Context())
		if rctx == nil {
			rctx = chi.NewRouteContext()
			req = req.WithContext(context.WithValue(req.Context(), chi.RouteCtxKey, rctx))
		}
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, req.ProtoMajor)
		defer func() {
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := rctx.RoutePattern()
			if route == "" {
				route = unmatchedRoute
			}
			r.httpRequests.WithLabelValues(route, req.Method, strconv.Itoa(status)).Inc()
			if status != http.StatusSwitchingProtocols {
				r.httpDuration.WithLabelValues(route, req.Method).Observe(time.Since(start).Seconds())
			}
		}()
		next.ServeHTTP(ww, req)
	})
}
