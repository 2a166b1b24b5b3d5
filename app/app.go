package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/metrics"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/ops"
	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/sessions"
	"github.com/taskqueue/taskqueue/tracing"
	"github.com/taskqueue/taskqueue/web"
)

// SQLiteFileName is the SQLite file in the data directory.
const SQLiteFileName = "taskqueue.db"

// App is the whole application, built by New.
type App struct {
	// Config is the configuration the app was built from, defaults set.
	Config Config
	// Handler serves every HTTP route.
	Handler http.Handler
	// Store is the event log.
	Store eventstore.Store
	// Catalog is the task catalog in use.
	Catalog *domain.Catalog
	// Commands are the command handlers (decorated with logging).
	Commands *command.Handlers
	// Metrics is the Prometheus registry of GET /metrics.
	Metrics *metrics.Registry
	// Processor completes due repetitions (nil with TASKQUEUE_PROCESSOR=false).
	Processor *processor.Processor
	// Realtime is the WebSocket hub of GET /api/ws.
	Realtime *realtime.Hub
	// Projections runs the read models.
	Projections *projections.Runner
	// Tokens mints and verifies the service's own bearer tokens.
	Tokens *auth.Tokens
	// OIDC verifies the OpenID provider's tokens (nil without
	// TASKQUEUE_OIDC_ISSUER).
	OIDC *auth.OIDC
	// Verifier checks every bearer token, REST and WebSocket: Tokens' and
	// OIDC's.
	Verifier auth.Verifier
	// Redis is the Redis client of TASKQUEUE_REDIS_URL (nil without it).
	Redis *redisx.Client
	// Sessions are the login sessions (on Redis, in the database, or in-process).
	Sessions *sessions.Sessions
	// Logger is the app's logger (request IDs attached from contexts).
	Logger *slog.Logger
	// Backend names the event store: "sqlite", "postgres" or "kurrentdb".
	Backend string
	// Audit is the audit trail (log lines, and the table audit_log of the
	// SQL database).
	Audit *audit.Trail
	// Forgetting is what forgetting a player erases here (ops.ForgetPlayer:
	// POST /api/admin/players/{id}/forget, `taskqueue forget`).
	Forgetting ops.Forgetting
	// AdminHandler serves /metrics, /healthz and /readyz on
	// TASKQUEUE_ADMIN_ADDR (nil without it; Handler serves /metrics then).
	AdminHandler http.Handler
}

// New builds the application from cfg: the logger, the event store chosen
// by cfg with its migrations applied, the catalog, the tokens, the command
// handlers and the HTTP handler. The returned cleanup closes what New
// opened, in reverse order; on error New has already closed it.
func New(ctx context.Context, cfg Config) (*App, func(), error) {
	return build(ctx, cfg, os.Stderr)
}

// NewWithLog is New with the log written to logOut (tests send it to
// their own log).
func NewWithLog(ctx context.Context, cfg Config, logOut io.Writer) (*App, func(), error) {
	return build(ctx, cfg, logOut)
}

func build(ctx context.Context, cfg Config, logOut io.Writer) (_ *App, _ func(), err error) {
	var cl closers
	defer func() {
		if err != nil {
			cl.closeAll()
		}
	}()
	b, err := openBase(ctx, "build app", cfg, logOut, Config.Validate, &cl)
	if err != nil {
		return nil, nil, err
	}
	cfg, st, rules := b.cfg, b.st, b.rules
	a := &App{Config: cfg, Logger: b.log, Catalog: b.catalog, Metrics: b.metrics, Store: b.store, Backend: st.backend}
	if a.Tokens, err = NewTokens(cfg); err != nil {
		return nil, nil, err
	}
	if a.OIDC, err = NewOIDC(cfg); err != nil {
		return nil, nil, err
	}
	a.Verifier = auth.Verifiers{Tokens: a.Tokens, OIDC: a.OIDC}
	rr, err := openRedis(cfg, a.Logger, &cl, st.readModels)
	if err != nil {
		return nil, nil, err
	}
	if err := b.instrumentRedis(rr.client); err != nil {
		return nil, nil, err
	}
	a.Redis = rr.client
	a.Sessions = rr.sessions
	a.Audit = startAudit(st.readModels, cfg, a.Logger, &cl)

	var rs *readSide
	admin := &web.Admin{
		PlayerEvents: func(ctx context.Context, player string, params url.Values) (any, error) {
			return ops.AdminEvents(ctx, a.Store, player, params)
		},
		QueueAt: func(ctx context.Context, player string, params url.Values) (any, error) {
			return ops.AdminQueueAt(ctx, a.Store, player, params, rules)
		},
	}
	if st.readModels != nil {
		replicas, err := openReplicas(ctx, cfg, a.Logger, &cl)
		if err != nil {
			return nil, nil, err
		}
		if rs, err = startReadSide(a.Store, st.readModels, replicas, cfg, a.Logger, a.Metrics, a.Metrics.ReplicaRead); err != nil {
			return nil, nil, err
		}
		cl.add(rs.stop)
		a.Projections = rs.runner
		st.ready = append(st.ready, projectionsCheck(rs.runner))
	}

	// The command side and the processor append through local: once an
	// append is durable, the realtime hub delivers it to this instance's
	// sockets at once (the log stays the path for everything else).
	local := realtime.NewLocalAppends(a.Store)
	cc := commandConfig(rules, st.store)
	// With the processor here, the commands and the completions share one
	// queue cache (processor.Config.Queues), which then sees every write of
	// this process: a command decides on the cached queue and appends with
	// its version, reading the stream's tail only when the append finds
	// another (another instance wrote it) or the decision needs a second
	// look.
	cc.Optimistic = st.readModels != nil && cfg.ProcessorOn()
	a.Commands, err = command.NewHandlers(local, cc)
	if err != nil {
		return nil, nil, fmt.Errorf("build app: %w", err)
	}
	a.Commands.Use(tracing.Command(), command.Logging(a.Logger), command.Metrics(a.Metrics.ObserveCommand))

	var relaySource func(context.Context) (eventstore.Position, time.Duration, error)
	if st.readModels != nil {
		var ready []web.ReadinessCheck
		if a.Processor, relaySource, ready, err = processorHere(b, rr, local, a.Commands.Queues, admin, &cl); err != nil {
			return nil, nil, err
		}
		st.ready = append(st.ready, ready...)
	}

	if a.Projections != nil {
		// Every projection this process runs: the read side's and, when the
		// processor runs here, processor_schedule (see projectionAdmin).
		var sched *projections.Runner
		if a.Processor != nil {
			sched = a.Processor.Runner()
		}
		projectionAdmin(admin, a.Projections, sched)
	}

	var watermark realtime.Watermark
	if a.Projections != nil {
		watermark = queueWatermark(a.Projections)
	}
	if a.Realtime, err = startRealtime(ctx, a.Store, rules, a.Verifier, watermark, rr, cfg, a.Metrics, a.Logger); err != nil {
		return nil, nil, err
	}
	cl.add(a.Realtime.Close)
	local.Deliver(a.Realtime)
	rr.sessions.OnRevoke(a.Realtime.RevokeSession)
	if a.Forgetting, err = forgetting(keepers{store: a.Store, log: a.Logger, projections: a.Projections, processor: a.Processor,
		realtime: a.Realtime, commands: a.Commands}, rr, st.readModels, st.pool, cfg, &cl); err != nil {
		return nil, nil, fmt.Errorf("build app: %w", err)
	}
	admin.Forget = func(ctx context.Context, player string, params url.Values) (any, error) {
		return ops.AdminForget(ctx, a.Forgetting, player, params)
	}
	sources := metrics.Sources{WebSocket: func() (int64, int64) {
		st := a.Realtime.Stats()
		return st.Connections, st.SlowDisconnects
	}}
	if a.Projections != nil {
		sources.Projections = a.Projections.Status
		sources.ActiveQueues = metrics.ActiveQueuesIn(st.readModels)
		sources.DeadLetters = metrics.DeadLettersIn(st.readModels)
	}
	sources.Relay = relaySource
	sources.LogHorizon = b.horizon
	a.Metrics.SetSources(sources)
	srv, err := newHTTP(a, rr, rs, admin, append(st.ready, rr.ready()...))
	if err != nil {
		return nil, nil, fmt.Errorf("build app: %w", err)
	}
	a.Handler = tracing.HTTP(srv) // outside web's request ID: the trace is derived from it
	if cfg.AdminAddr != "" {
		a.AdminHandler = adminHandler(a.Metrics.Handler(), web.Readiness(append(st.ready, rr.ready()...), a.Logger))
	}
	if cfg.DevMode() {
		a.Logger.Warn("DEV MODE: anyone who can reach this server can mint an admin token (POST /api/auth/dev-token); " +
			"set TASKQUEUE_DEV=false and TASKQUEUE_JWT_SECRET anywhere but a developer's machine")
	}
	a.Logger.Info("app built", "backend", a.Backend, "dev", cfg.DevMode(), "tasks", len(a.Catalog.Tasks()))
	return a, cl.closeAll, nil
}

// closers are what a builder opened, to close in reverse order.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }

// closeAll closes them, the last opened first.
func (c closers) closeAll() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// NewLogger returns the logger cfg asks for, writing to out, with request
// IDs attached from contexts (web.LogHandler).
func NewLogger(cfg Config, out io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(out, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(out, opts)
	}
	return slog.New(web.LogHandler(h))
}

// LoadCatalog returns the catalog of cfg: the file cfg.Catalog names, or
// the embedded one.
func LoadCatalog(cfg Config) (*domain.Catalog, error) {
	if cfg.Catalog == "" {
		return domain.DefaultCatalog(), nil
	}
	b, err := os.ReadFile(cfg.Catalog)
	if err != nil {
		return nil, fmt.Errorf("load catalog (TASKQUEUE_CATALOG): %w", err)
	}
	c, err := domain.ParseCatalog(b)
	if err != nil {
		return nil, fmt.Errorf("load catalog %s: %w", cfg.Catalog, err)
	}
	return c, nil
}

// NewTokens returns the tokens of cfg: signed with the first key of
// cfg.JWTSecrets, else with cfg.JWTSecret, or in dev mode without either
// with the secret kept in the data directory (generated on first use).
// cfg.JWTSecret beside cfg.JWTSecrets verifies the tokens without a "kid".
func NewTokens(cfg Config) (*auth.Tokens, error) {
	cfg.setDefaults()
	keys, err := ParseJWTSecrets(cfg.JWTSecrets)
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_JWT_SECRETS: %w", err)
	}
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 && len(keys) == 0 {
		if !cfg.DevMode() {
			return nil, errors.New("TASKQUEUE_JWT_SECRET (or TASKQUEUE_JWT_SECRETS) is required outside dev mode")
		}
		if secret, err = auth.LoadOrCreateSecret(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	if len(secret) > 0 {
		keys = append(keys, auth.Key{Secret: secret})
	}
	t, err := auth.NewTokens(auth.TokensConfig{Keys: keys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_JWT_SECRET: %w", err)
	}
	return t, nil
}

// NewOIDC returns the verifier of cfg's OpenID provider, nil without
// TASKQUEUE_OIDC_ISSUER. It does no I/O: the provider is asked on first use.
func NewOIDC(cfg Config) (*auth.OIDC, error) {
	cfg.setDefaults()
	if cfg.OIDCIssuer == "" {
		return nil, nil
	}
	roles, err := ParseRoleMap(cfg.OIDCRoleMap)
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_OIDC_ROLE_MAP: %w", err)
	}
	o, err := auth.NewOIDC(auth.OIDCConfig{
		Issuer:      cfg.OIDCIssuer,
		Audience:    cfg.OIDCAudience,
		RoleClaim:   cfg.OIDCRoleClaim,
		RoleMap:     roles,
		PlayerClaim: cfg.OIDCPlayerClaim,
	})
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_OIDC_ISSUER: %w", err)
	}
	return o, nil
}

// signIn is what the web app is told about signing in with the provider.
func signIn(cfg Config, o *auth.OIDC) *web.SignIn {
	if o == nil {
		return nil
	}
	return &web.SignIn{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID, Scopes: cfg.OIDCScopes, Discover: o.Discover}
}

// commandConfig is the command side's configuration: rules, and the
// snapshots of store (unwrapped: the metrics and tracing decorators of
// App.Store do not carry them) when it keeps them.
func commandConfig(rules domain.Rules, store eventstore.Store) command.Config {
	cc := command.Config{Rules: rules}
	if s, ok := store.(eventstore.SnapshotStore); ok {
		cc.Snapshots = s
	}
	return cc
}

// openedStore is an event store with what /readyz asks about it.
type openedStore struct {
	store   eventstore.Store
	backend string
	ready   []web.ReadinessCheck
	close   func() error
	// readModels is the SQL database of the read models, the processor
	// and the relay (on KurrentDB, the one beside it).
	readModels projections.DB
	// pg is the event store on PostgreSQL (nil on other backends), whose
	// horizon watchHorizon watches.
	pg *postgres.Store
	// pool is the PostgreSQL pool of the read models (nil on SQLite): the
	// outbox of integration events without Redis.
	pool *pgxpool.Pool
}

// watchHorizon starts, on PostgreSQL, the watch of what holds back the
// log's readers (horizonWatch) until cl closes, and adds its check to
// st.ready. It returns the metrics source, nil on other backends.
func (st *openedStore) watchHorizon(log *slog.Logger, cl *closers) func() (time.Duration, int64) {
	if st.pg == nil {
		return nil
	}
	w := &horizonWatch{store: st.pg, log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	cl.add(func() { cancel(); <-done })
	st.ready = append(st.ready, w.readiness())
	return w.state
}

func openStore(ctx context.Context, cfg Config) (openedStore, error) {
	st, err := openBackend(ctx, cfg)
	if err != nil {
		return openedStore{}, err
	}
	if err := bindLog(ctx, st.readModels, logOf(cfg), time.Now()); err != nil {
		_ = st.close()
		return openedStore{}, err
	}
	return st, nil
}

// openBackend opens the event store cfg chooses and the SQL database beside
// it.
func openBackend(ctx context.Context, cfg Config) (openedStore, error) {
	switch {
	case cfg.KurrentDBURL != "":
		return openKurrentDB(ctx, cfg)
	case cfg.DatabaseURL != "":
		return openPostgres(ctx, cfg)
	default:
		path := filepath.Join(cfg.DataDir, SQLiteFileName)
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			return openedStore{}, err
		}
		return openedStore{store: s, backend: "sqlite", close: s.Close, readModels: projections.NewSQLiteStoreDB(s), ready: []web.ReadinessCheck{
			storeCheck(s),
			readModelsCheck(s.ReadDB(), migrations.SQLite),
		}}, nil
	}
}

// storeCheck is ready when the store answers.
func storeCheck(s eventstore.Store) web.ReadinessCheck {
	return web.ReadinessCheck{Name: "store", Check: func(ctx context.Context) error {
		if _, err := s.Head(ctx); err != nil {
			return fmt.Errorf("event store does not answer: %w", err)
		}
		return nil
	}}
}

// readModelsCheck is ready when the database of the read models (beside
// the event log, or its own beside KurrentDB) answers and every migration
// of d is applied to it. It only reads, so it works on a read-only pool.
func readModelsCheck(db *sql.DB, d migrations.Dialect) web.ReadinessCheck {
	return web.ReadinessCheck{Name: "readModels", Check: func(ctx context.Context) error {
		all, err := migrations.List(d)
		if err != nil {
			return err
		}
		rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		defer rows.Close()
		applied := map[int]bool{}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			applied[v] = true
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		var pending []string
		for _, m := range all {
			if !applied[m.Version] {
				pending = append(pending, fmt.Sprintf("%04d_%s", m.Version, m.Name))
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("%d migrations pending: %v", len(pending), pending)
		}
		return nil
	}}
}

// OpenSQL opens the SQL database of cfg without migrating it, for
// `taskqueue migrate`: PostgreSQL when cfg.DatabaseURL is set, else the
// SQLite file in the data directory. The returned func closes it.
func OpenSQL(ctx context.Context, cfg Config) (*sql.DB, migrations.Dialect, func(), error) {
	cfg.setDefaults()
	if cfg.DatabaseURL != "" {
		return openPostgresSQL(ctx, cfg)
	}
	path := filepath.Join(cfg.DataDir, SQLiteFileName)
	if err := sqlite.PrepareDir(cfg.DataDir); err != nil {
		return nil, migrations.Dialect{}, nil, fmt.Errorf("TASKQUEUE_DATA_DIR: %w", err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, migrations.Dialect{}, nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, migrations.Dialect{}, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, migrations.SQLite, func() { db.Close() }, nil
}

// OpenEventStore opens the event store cfg chooses, with its migrations
// applied, for the commands that work on the log without serving it
// (`taskqueue events|queue|export|import`). The returned func closes it.
func OpenEventStore(ctx context.Context, cfg Config) (eventstore.Store, func(), error) {
	cfg.setDefaults()
	if err := cfg.ValidateWithoutTokens(); err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return st.store, func() { _ = st.close() }, nil
}

// Rules returns the game rules cfg asks for (catalog and queue limit).
func Rules(cfg Config) (domain.Rules, error) {
	cfg.setDefaults()
	c, err := LoadCatalog(cfg)
	if err != nil {
		return domain.Rules{}, err
	}
	return domain.Rules{Catalog: c, QueueLimit: cfg.QueueLimit}, nil
}
