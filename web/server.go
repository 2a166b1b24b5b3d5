package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/api"
	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
)

// ReadinessCheck is one dependency /readyz asks about: nil when it is
// fine, else what is wrong. Checks run concurrently, each time /readyz is
// asked (nothing is cached, so a dependency that comes back is seen at
// once), within a deadline, so each must honour ctx.
type ReadinessCheck struct {
	// Name keys the check in /readyz's body ("store", "readModels",
	// "redis", "projections", ...).
	Name  string
	Check func(ctx context.Context) error
	// Optional marks a dependency the service serves without, from a
	// fallback (Redis: in-process caches, limits and sessions): its failure
	// shows in the body as "degraded: …" but leaves the instance ready, so
	// that a shared dependency going down never takes every instance out of
	// rotation at once.
	Optional bool
}

// Config is what the HTTP layer is built from; app.New fills it.
type Config struct {
	// Tokens mints the service's own tokens (dev tokens, refreshed
	// sessions). Required.
	Tokens *auth.Tokens
	// Verifier checks bearer tokens (auth.Verifiers: the service's own and
	// the OpenID provider's); default Tokens.
	Verifier auth.Verifier
	// SignIn is what GET /api/auth/config tells the web app about signing
	// in; nil: the app offers dev sign-in (in dev mode) or a pasted token.
	SignIn *SignIn
	// Dev enables POST /api/auth/dev-token.
	Dev bool
	// TokenTTL is the lifetime of dev tokens (default 24h).
	TokenTTL time.Duration
	// CORSOrigins are the origins allowed to call from a browser; "*" for any.
	CORSOrigins []string
	// Logger receives the access log and errors (default slog.Default()).
	// It is decorated with LogHandler.
	Logger *slog.Logger
	// Catalog is served at GET /api/catalog. Required.
	Catalog *domain.Catalog
	// Queues runs the queue's commands and reads. Required.
	Queues Queues
	// History serves GET /api/queue/{playerId}/history; nil: 501 until the
	// read side is wired.
	History History
	// Progress serves GET /api/players/{playerId}/progress; nil: 501 until
	// the read side is wired.
	Progress Progress
	// Analytics serves the admin-only GET /api/analytics/{report}; nil: 501
	// until the read side is wired.
	Analytics Analytics
	// Metrics serves GET /metrics (Prometheus); nil: 404 (served on
	// another listener, TASKQUEUE_ADMIN_ADDR).
	Metrics http.Handler
	// Middleware wraps every request inside the router, after the request
	// ID and before the access log (e.g. the HTTP metrics, which need the
	// route pattern chi fills in).
	Middleware []func(http.Handler) http.Handler
	// Admin serves /api/admin (admin role only); nil: 501.
	Admin *Admin
	// Realtime serves GET /api/ws (realtime.Hub): it authenticates the
	// socket itself (header, ?access_token= or a first message). Nil: 501.
	Realtime Sockets
	// Ready are the checks of /readyz.
	Ready []ReadinessCheck
	// RequestTimeout bounds the work of every /api request but the
	// WebSocket's stream (its context's deadline: each database call made
	// for it honours it); one that runs out answers 503 unavailable with
	// Retry-After. Default 5 s.
	RequestTimeout time.Duration
	// Subscribable, when set, is asked (within RequestTimeout) before
	// GET /api/ws upgrades: an error (the store cannot be reached) answers
	// its problem (503 with Retry-After) instead of a socket that could
	// only be closed.
	Subscribable func(ctx context.Context) error
	// Sessions, when set, is asked after authentication whether a token's
	// session is still active (401 unauthorized otherwise).
	Sessions SessionChecker
	// NewSession, when set, starts a session for each dev token, whose ID
	// the token carries in "sid" (sessions.Sessions.Create).
	NewSession func(ctx context.Context, player string, role auth.Role) (sessionID string, err error)
	// SessionStore, when set, serves POST /api/auth/refresh and
	// POST /api/auth/logout behind authentication; nil: not routed.
	SessionStore SessionStore
	// CommandLimit, when set, counts the queue's commands after
	// authentication, per client address and per player (429 rate-limited
	// with Retry-After over the limit).
	CommandLimit Limiter
	// Now is the clock of serverTime (default time.Now).
	Now func() time.Time
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (see clientAddr); empty: the peer is the client.
	TrustedProxies []netip.Prefix
	// Audit records sign-ins, refreshes, logouts, every admin request and
	// every 401 and 403 (audit.go); nil records nothing.
	Audit *audit.Trail
}

func (c *Config) setDefaults() {
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Verifier == nil && c.Tokens != nil {
		c.Verifier = c.Tokens
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
}

// Validate reports every missing dependency at once.
func (c Config) Validate() error {
	var errs []error
	if c.Tokens == nil {
		errs = append(errs, errors.New("web config: Tokens is required"))
	}
	if c.Catalog == nil {
		errs = append(errs, errors.New("web config: Catalog is required"))
	}
	if c.Queues == nil {
		errs = append(errs, errors.New("web config: Queues is required"))
	}
	if c.TokenTTL < 0 {
		errs = append(errs, fmt.Errorf("web config: TokenTTL %s is negative", c.TokenTTL))
	}
	return errors.Join(errs...)
}

// Server is the HTTP face of taskqueue. It is safe for concurrent use.
type Server struct {
	tokens       *auth.Tokens
	verifier     auth.Verifier
	signIn       *SignIn
	dev          bool
	tokenTTL     time.Duration
	corsOrigins  []string
	log          *slog.Logger
	catalog      *domain.Catalog
	queues       Queues
	history      History
	progress     Progress
	analytics    Analytics
	realtime     Sockets
	admin        *Admin
	metrics      http.Handler
	middleware   []func(http.Handler) http.Handler
	ready        http.Handler
	sessions     SessionChecker
	newSession   func(ctx context.Context, player string, role auth.Role) (string, error)
	sessionStore SessionStore
	timeout      time.Duration
	subscribable func(ctx context.Context) error
	limit        Limiter
	now          func() time.Time
	trusted      []netip.Prefix
	audit        *audit.Trail
	app          *webApp
	router       chi.Router
}

// NewServer builds the router of every route in docs/API.md.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	app, err := newWebApp()
	if err != nil {
		return nil, fmt.Errorf("new web server: %w", err)
	}
	s := &Server{
		tokens:       cfg.Tokens,
		verifier:     cfg.Verifier,
		signIn:       cfg.SignIn,
		dev:          cfg.Dev,
		tokenTTL:     cfg.TokenTTL,
		corsOrigins:  cfg.CORSOrigins,
		log:          slog.New(LogHandler(cfg.Logger.Handler())),
		catalog:      cfg.Catalog,
		queues:       cfg.Queues,
		history:      cfg.History,
		progress:     cfg.Progress,
		analytics:    cfg.Analytics,
		realtime:     cfg.Realtime,
		admin:        cfg.Admin,
		metrics:      cfg.Metrics,
		middleware:   cfg.Middleware,
		sessions:     cfg.Sessions,
		newSession:   cfg.NewSession,
		sessionStore: cfg.SessionStore,
		timeout:      cfg.RequestTimeout,
		subscribable: cfg.Subscribable,
		limit:        cfg.CommandLimit,
		now:          cfg.Now,
		trusted:      cfg.TrustedProxies,
		audit:        cfg.Audit,
		app:          app,
	}
	s.ready = Readiness(cfg.Ready, s.log)
	s.router = s.routes()
	return s, nil
}

// ServeHTTP serves r.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(clientAddr(s.trusted), requestID)
	r.Use(s.middleware...)
	r.Use(s.accessLog, securityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, fmt.Errorf("%w: no route %s %s", errNotFound, r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, fmt.Errorf("%w: %s %s", errMethodNotAllowed, r.Method, r.URL.Path))
	})
	r.Get("/healthz", s.healthz)
	r.Method(http.MethodGet, "/readyz", s.ready)
	if s.metrics != nil {
		r.Method(http.MethodGet, "/metrics", s.metrics)
	} else {
		// Served elsewhere (TASKQUEUE_ADMIN_ADDR), or not at all: never
		// the web app's page in its place.
		r.Get("/metrics", func(w http.ResponseWriter, r *http.Request) {
			s.writeProblem(w, r, fmt.Errorf("%w: /metrics is not served on this listener", errNotFound))
		})
	}

	r.Route("/api", func(r chi.Router) {
		r.Use(s.cors, s.limitBody, noStore)
		r.Get("/catalog", s.getCatalog)
		r.Get("/openapi.json", s.getOpenAPI)
		r.Get("/ws", s.websocket) // its stream outlives any deadline; it bounds its own subscribe
		r.Group(func(r chi.Router) {
			r.Use(s.deadline)
			s.boundedRoutes(r)
		})
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			s.writeProblem(w, r, fmt.Errorf("%w: no route %s %s", errNotFound, r.Method, r.URL.Path))
		})
	})
	r.Get("/*", s.app.serve(s))
	r.Head("/*", s.app.serve(s))
	return r
}

// boundedRoutes are the /api routes that answer within the request
// deadline.
func (s *Server) boundedRoutes(r chi.Router) {
	r.Post("/auth/dev-token", s.devToken)
	r.Get("/auth/config", s.authConfig)
	r.Route("/admin", s.adminRoutes)
	r.Route("/analytics", s.analyticsRoutes)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		if s.sessions != nil {
			r.Use(s.checkSession)
		}
		r.Get("/auth/me", s.me)
		if s.sessionStore != nil {
			r.Post("/auth/refresh", s.refreshSession)
			r.Post("/auth/logout", s.logout)
		}
		r.Route("/players/{playerId}", func(r chi.Router) {
			r.Use(s.authorizePlayer)
			r.Get("/progress", s.getProgress)
		})
		r.Route("/queue/{playerId}", func(r chi.Router) {
			r.Use(s.authorizePlayer)
			r.Get("/", s.getQueue)
			r.Get("/history", s.getHistory)
			r.Group(func(r chi.Router) {
				if s.limit != nil {
					r.Use(s.limitCommands)
				}
				r.Post("/tasks", s.enqueue)
				r.Delete("/tasks/{taskId}", s.removeTask)
				r.Post("/stop", s.stop)
				r.Post("/start", s.start)
				r.Put("/reorder", s.reorder)
			})
		})
	})
}

// deadline bounds the request's work by the request timeout: every
// database call made for it honours its context, so an unreachable or
// partitioned store costs the client at most this long, and the error
// (context.DeadlineExceeded, or the driver's own timeout) answers 503.
func (s *Server) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// noStore keeps API answers out of shared caches.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// authenticate requires a valid bearer token and puts its principal in the
// request's context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			s.writeProblem(w, r, fmt.Errorf("%w: %w", auth.ErrUnauthorized, errNoToken))
			return
		}
		p, err := s.verifier.Verify(r.Context(), token)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		s.log.DebugContext(r.Context(), "authenticated", "player", p.PlayerID, "role", string(p.Role))
		noteAuthenticated(r.Context(), p)
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// authorizePlayer checks {playerId} and that the principal may act on it.
func (s *Server) authorizePlayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		player := chi.URLParam(r, "playerId")
		if _, err := domain.ParsePlayerID(player); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		p, _ := auth.PrincipalFrom(r.Context())
		if !p.CanActOn(player) {
			s.writeProblem(w, r, fmt.Errorf("%w: %s may not act on the queue of %s", errForbidden, p.PlayerID, player))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// defaultReadyTimeout bounds /readyz: a check that does not answer in time
// (a partitioned database, or a check that ignores its context) is
// reported as such, and never holds the probe.
const defaultReadyTimeout = 3 * time.Second

// readyGrace is how long /readyz waits past its deadline for the checks to
// report it.
const readyGrace = 100 * time.Millisecond

// Readiness serves GET /readyz over checks, for the API server and for the
// probes of processes without the API (`taskqueue processor`): 200 when
// every required check passes, else 503 with Retry-After. The body names
// each dependency and its state: "ok", "degraded: …" (an optional one,
// served from a fallback) or what is wrong with it.
func Readiness(checks []ReadinessCheck, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return readiness{checks: checks, timeout: defaultReadyTimeout, log: log}
}

type readiness struct {
	checks  []ReadinessCheck
	timeout time.Duration
	log     *slog.Logger
}

func (rd readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The checks get the deadline; the answer waits a moment longer, so a
	// check that honours it reports its own error.
	ctx, cancel := context.WithTimeout(r.Context(), rd.timeout)
	defer cancel()
	late := time.NewTimer(rd.timeout + readyGrace)
	defer late.Stop()
	type result struct {
		check ReadinessCheck
		err   error
	}
	results := make(chan result, len(rd.checks))
	for _, c := range rd.checks {
		go func() { results <- result{c, c.Check(ctx)} }()
	}
	checks := map[string]string{}
	ready := true
	record := func(res result) {
		switch {
		case res.err == nil:
			checks[res.check.Name] = "ok"
		case res.check.Optional:
			checks[res.check.Name] = "degraded: " + res.err.Error()
		default:
			ready = false
			checks[res.check.Name] = res.err.Error()
			rd.log.WarnContext(r.Context(), "not ready", "check", res.check.Name, "err", res.err)
		}
	}
collect:
	for range rd.checks {
		select {
		case res := <-results:
			record(res)
		case <-late.C:
			break collect
		case <-r.Context().Done():
			return // the prober went away
		}
	}
	// A check still running now ignored its deadline.
	for _, c := range rd.checks {
		if _, ok := checks[c.Name]; !ok {
			record(result{c, fmt.Errorf("no answer within %s", rd.timeout)})
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(retryUnavailable/time.Second)))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}

// getOpenAPI serves the HTTP API's spec (package api), the contract that
// the tests hold every response to.
func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	b, err := api.OpenAPIJSON()
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) getCatalog(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.catalog)
}

type devTokenRequest struct {
	Player string `json:"player"`
	Role   string `json:"role"`
}

type devTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// devToken mints a token for anyone who asks: only in dev mode.
func (s *Server) devToken(w http.ResponseWriter, r *http.Request) {
	if !s.dev {
		s.writeProblem(w, r, fmt.Errorf("%w: dev tokens exist only in dev mode", errNotFound))
		return
	}
	var req devTokenRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !auth.ValidPlayerID(req.Player) {
		s.writeProblem(w, r, badField("player", "must be 1-64 characters of [A-Za-z0-9_-]"))
		return
	}
	role := auth.RolePlayer
	if req.Role != "" {
		var err error
		if role, err = auth.ParseRole(req.Role); err != nil {
			s.writeProblem(w, r, badField("role", "must be player, admin or system"))
			return
		}
	}
	sid := ""
	if s.newSession != nil {
		var err error
		if sid, err = s.newSession(r.Context(), req.Player, role); err != nil {
			s.writeProblem(w, r, fmt.Errorf("start a session for %s: %w", req.Player, err))
			return
		}
	}
	token, exp, err := s.tokens.MintSession(req.Player, role, sid, s.tokenTTL)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.RecordSignIn(r, auth.Principal{PlayerID: req.Player, Role: role, SessionID: sid}, "dev-token")
	writeJSON(w, http.StatusOK, devTokenResponse{Token: token, ExpiresAt: exp})
}

// Sockets is the realtime hub as GET /api/ws uses it (*realtime.Hub
// implements it). Serve authenticates and upgrades; an error means it
// refused the request before the upgrade and wrote nothing, and web answers
// it like any other: one wrapping auth.ErrUnauthorized is 401, one wrapping
// faults.ErrUnavailable (the hub is not running, the token cannot be
// checked now) 503 with Retry-After.
type Sockets interface {
	Serve(w http.ResponseWriter, r *http.Request) error
}

// websocket hands GET /api/ws to the realtime hub, once the store answers
// (Subscribable): while it cannot be reached the client gets 503 with
// Retry-After before the upgrade, not a socket closed at once. The hub's
// own refusals before the upgrade are answered here too.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	if s.realtime == nil {
		s.notImplemented(w, r)
		return
	}
	if s.subscribable != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		err := s.subscribable(ctx)
		cancel()
		if err != nil {
			s.writeProblem(w, r, fmt.Errorf("subscribe: %w", err))
			return
		}
	}
	if err := s.realtime.Serve(w, r); err != nil {
		s.writeProblem(w, r, fmt.Errorf("websocket: %w", err))
	}
}

func (s *Server) notImplemented(w http.ResponseWriter, r *http.Request) {
	s.writeProblem(w, r, fmt.Errorf("%w: %s is not wired in this server (backend without a read side)", errNotImplemented, r.URL.Path))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
