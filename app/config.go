package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/web/auth"
)

// Config is everything the service can be told. Every field is an
// environment variable TASKQUEUE_* and a flag of `taskqueue serve` (see
// Options, where each default is written): the flag wins over the
// variable, the variable over the default. The zero Config is the embedded
// default once setDefaults has run.
type Config struct {
	// Addr is the address the HTTP server listens on.
	// TASKQUEUE_ADDR, --addr.
	Addr string

	// DataDir holds the SQLite file (events and read models in the embedded
	// default) and the generated JWT secret. It is created when missing; a
	// directory that cannot be created or written is reported at start in
	// those words (sqlite.PrepareDir).
	// TASKQUEUE_DATA_DIR, --data-dir.
	DataDir string

	// DatabaseURL is a PostgreSQL connection string. When set, the event
	// store (unless KurrentDBURL is set) and the read models live in
	// PostgreSQL, and the service is not in dev mode unless Dev says so.
	// TASKQUEUE_DATABASE_URL, --database-url.
	DatabaseURL string

	// DatabaseReplicaURLs are PostgreSQL hot standbys of DatabaseURL that
	// serve the read side's queries (queue view, history, progress,
	// analytics) in turn; the primary serves a query whose replica fails,
	// or has not replayed a queue view's minVersion within ReplicaWait.
	// Commands, projections and the processor use the primary.
	// TASKQUEUE_DATABASE_REPLICA_URLS, --database-replica-urls (comma-
	// separated).
	DatabaseReplicaURLs []string

	// DatabaseMaxConns bounds the PostgreSQL connection pool.
	// TASKQUEUE_DATABASE_MAX_CONNS, --database-max-conns.
	DatabaseMaxConns int

	// KurrentDBURL is a KurrentDB connection string (kurrentdb:// or
	// esdb://). When set, the event store is KurrentDB; read models stay in
	// PostgreSQL when DatabaseURL is set, else in SQLite in DataDir.
	// TASKQUEUE_KURRENTDB_URL, --kurrentdb-url.
	KurrentDBURL string

	// KurrentDBNamespace prefixes every stream on the KurrentDB server, so
	// that several deployments (or test runs) can share one server.
	// Changing it hides every event written under the old one.
	// TASKQUEUE_KURRENTDB_NAMESPACE, --kurrentdb-namespace.
	KurrentDBNamespace string

	// RedisURL is a Redis server (redis:// or rediss://) or a Redis
	// Cluster (redis+cluster://host:port,host:port, rediss+cluster://: seed
	// addresses, the others are discovered) for caches, rate limits,
	// sessions, cross-instance fanout and the processor's streams. Without
	// it all of these are in-process.
	// TASKQUEUE_REDIS_URL, --redis-url.
	RedisURL string

	// RedisPrefix starts every Redis key and channel, so that several
	// deployments (or test runs) can share one server. Changing it drops
	// the caches, sessions and rate limits stored under the old one.
	// TASKQUEUE_REDIS_PREFIX, --redis-prefix.
	RedisPrefix string

	// RateLimitPlayer is how many commands (POST, PUT, DELETE on a queue)
	// one player may send per minute on average, in bursts of a sixth of
	// it; negative: no limit. Shared by every instance with Redis, per
	// instance without.
	// TASKQUEUE_RATE_LIMIT_PLAYER, --rate-limit-player.
	RateLimitPlayer int

	// RateLimitIP is how many commands one client address may send per
	// minute on average, in bursts of a tenth of it; negative: no limit.
	// TASKQUEUE_RATE_LIMIT_IP, --rate-limit-ip.
	RateLimitIP int

	// JWTSecret signs and verifies tokens (HS256), at least 32 bytes.
	// Required outside dev mode. In dev mode without it, a secret is
	// generated once and kept in DataDir/jwt-secret (mode 0600).
	// TASKQUEUE_JWT_SECRET, --jwt-secret.
	JWTSecret string

	// JWTSecrets are HS256 keys with IDs, "kid1:secret1,kid2:secret2": the
	// first signs (its ID in the tokens' "kid" header), every one verifies,
	// so that a secret can be rotated with an overlap. With JWTSecret also
	// set, JWTSecret verifies the tokens without a "kid" (those minted
	// before the rotation) and signs nothing. Secrets hold no comma.
	// TASKQUEUE_JWT_SECRETS, --jwt-secrets.
	JWTSecrets string

	// OIDCIssuer is the issuer URL of the OpenID provider whose tokens are
	// accepted (verified against its JWKS, found by discovery); the web
	// app signs players in with it. TASKQUEUE_OIDC_ISSUER, --oidc-issuer
	// (empty: no provider).
	OIDCIssuer string

	// OIDCClientID is the web app's client ID at the provider (a public
	// client: authorization code with PKCE, no secret).
	// TASKQUEUE_OIDC_CLIENT_ID, --oidc-client-id, required with OIDCIssuer.
	OIDCClientID string

	// OIDCAudience must be among the provider's tokens' "aud".
	// TASKQUEUE_OIDC_AUDIENCE, --oidc-audience.
	OIDCAudience string

	// OIDCRoleClaim is the claim that carries the role: a dot-separated
	// path, whose value is a string, an array of strings or an object
	// keyed by role names. TASKQUEUE_OIDC_ROLE_CLAIM, --oidc-role-claim.
	OIDCRoleClaim string

	// OIDCRoleMap maps the provider's role names to taskqueue's,
	// "name:role,..." ("game-admins:admin,ops:system"); player, admin and
	// system map to themselves. Of several the strongest wins; none is a
	// player. TASKQUEUE_OIDC_ROLE_MAP, --oidc-role-map.
	OIDCRoleMap string

	// OIDCPlayerClaim is the claim that carries the player ID (1-64
	// characters of [A-Za-z0-9_-]). TASKQUEUE_OIDC_PLAYER_CLAIM,
	// --oidc-player-claim.
	OIDCPlayerClaim string

	// OIDCScopes are the scopes the web app asks for at sign-in.
	// TASKQUEUE_OIDC_SCOPES, --oidc-scopes.
	OIDCScopes []string

	// JWTIssuer, when set, is required as the tokens' "iss" and written
	// into the tokens the service mints.
	// TASKQUEUE_JWT_ISSUER, --jwt-issuer.
	JWTIssuer string

	// JWTAudience, when set, must be among the tokens' "aud" and is written
	// into the tokens the service mints.
	// TASKQUEUE_JWT_AUDIENCE, --jwt-audience.
	JWTAudience string

	// TokenTTL is the lifetime of the tokens the service mints
	// (POST /api/auth/dev-token, and the default of `taskqueue token`).
	// TASKQUEUE_TOKEN_TTL, --token-ttl.
	TokenTTL time.Duration

	// Catalog is the path of a task catalog file replacing the embedded one.
	// TASKQUEUE_CATALOG, --catalog.
	Catalog string

	// QueueLimit is how many tasks a queue holds at most (1–1000).
	// TASKQUEUE_QUEUE_LIMIT, --queue-limit.
	QueueLimit int

	// HistoryRetentionDays is how many days of finished tasks the history
	// read model keeps (GET /api/queue/{playerId}/history).
	// TASKQUEUE_HISTORY_RETENTION_DAYS, --history-retention-days.
	HistoryRetentionDays int

	// CORSOrigins are the origins allowed to call the API from a browser,
	// comma separated ("https://game.example,https://admin.example"), or "*".
	// TASKQUEUE_CORS_ORIGINS, --cors-origins.
	CORSOrigins []string

	// Dev turns on what a developer's machine needs and production must not
	// have: POST /api/auth/dev-token and the generated JWT secret.
	// TASKQUEUE_DEV, --dev; unset, it is on for the embedded default and
	// off when DatabaseURL or KurrentDBURL is set.
	Dev *bool

	// LogFormat is "text" (for a terminal) or "json" (for a log collector).
	// TASKQUEUE_LOG_FORMAT, --log-format.
	LogFormat string

	// LogLevel is "debug", "info", "warn" or "error".
	// TASKQUEUE_LOG_LEVEL, --log-level.
	LogLevel string

	// RequestTimeout bounds every API request's work (each database call
	// made for it, and the wait of GET /api/queue?minVersion) and every new
	// connection to PostgreSQL: a request that cannot get its answer from
	// the store in time is answered 503 unavailable with Retry-After instead
	// of waiting on an unreachable database. The WebSocket's stream is not
	// bounded by it; its subscribe and catch-up are.
	// TASKQUEUE_REQUEST_TIMEOUT, --request-timeout.
	RequestTimeout time.Duration

	// ShutdownTimeout bounds how long a graceful shutdown waits for requests
	// in flight before closing them.
	// TASKQUEUE_SHUTDOWN_TIMEOUT, --shutdown-timeout.
	ShutdownTimeout time.Duration

	// TLSCert and TLSKey are the PEM files of the server's certificate
	// (chain) and private key. Both set: the server speaks HTTPS only,
	// TLS 1.3 at least; both empty: plain HTTP (behind a proxy that ends
	// TLS). One without the other is an error.
	// TASKQUEUE_TLS_CERT, --tls-cert; TASKQUEUE_TLS_KEY, --tls-key.
	TLSCert string
	TLSKey  string

	// AnalystPassword, when set, is the password of the read-only
	// PostgreSQL role taskqueue_analyst that the migrations create for
	// analysts; empty: the role is not created (or left as it is).
	// TASKQUEUE_ANALYST_PASSWORD, --analyst-password.
	AnalystPassword string

	// OfflineCap is how much offline progress a queue gets: a repetition
	// due longer ago than this is completed up to this much after its due
	// time, and the queue stops there with a reason the player sees.
	// TASKQUEUE_OFFLINE_CAP, --offline-cap.
	OfflineCap time.Duration

	// TrustedProxies are the addresses (or CIDR ranges) of the reverse
	// proxies in front of the service: for a request from one of them the
	// client is the last untrusted address of X-Forwarded-For, for the
	// access log and the per-address rate limit. Empty: the peer is the
	// client and X-Forwarded-For is ignored.
	// TASKQUEUE_TRUSTED_PROXIES, --trusted-proxies.
	TrustedProxies []netip.Prefix

	// PresenceGrace is how long a player's last WebSocket must stay closed
	// (on every instance, with Redis) before player.offline is published;
	// a reconnect within it is not an absence.
	// TASKQUEUE_PRESENCE_GRACE, --presence-grace.
	PresenceGrace time.Duration

	// DebugAddr, when set, is the address of a second HTTP server with Go's
	// profiler (net/http/pprof under /debug/pprof/), for `go tool pprof`
	// during a soak or an incident. It has no authentication: bind it to
	// loopback ("127.0.0.1:6060") and reach it over SSH or kubectl
	// port-forward, never expose it. Empty: no such server.
	// TASKQUEUE_DEBUG_ADDR, --debug-addr.
	DebugAddr string

	// AdminAddr, when set, is the address of an internal HTTP server that
	// serves GET /metrics (and /healthz, /readyz), and the public listener
	// (Addr) then serves no /metrics. Bind it to a private network.
	// TASKQUEUE_ADMIN_ADDR, --admin-addr.
	AdminAddr string

	// AuditRetentionDays is how many days the audit trail (table
	// audit_log) keeps its entries (at least 1).
	// TASKQUEUE_AUDIT_RETENTION_DAYS, --audit-retention-days.
	AuditRetentionDays int

	// Processor says whether `taskqueue serve` runs the processor (the
	// loop that completes due repetitions) beside the API. Turn it off to
	// run processors as separate `taskqueue processor` processes.
	// TASKQUEUE_PROCESSOR, --processor.
	Processor *bool
}

const (
	// MinJWTSecretLength is the least number of bytes of a JWT secret.
	MinJWTSecretLength = 32
	// MaxQueueLimit bounds QueueLimit.
	MaxQueueLimit = 1000
)

// setDefaults fills every field left at its zero value: with the default
// of its option (the table below, the one place a default is written),
// or, for the options whose default depends on other settings, as their
// Default says.
func (c *Config) setDefaults() {
	var zero Config
	for _, o := range options {
		if computedDefaults[o.Env] || o.Default == "" || o.value(c).String() != o.value(&zero).String() {
			continue
		}
		if err := o.value(c).Set(o.Default); err != nil {
			panic(fmt.Sprintf("the default of %s does not parse: %v", o.Env, err)) // a mistake in the table: TestOptionDefaultsParse
		}
	}
	if c.Dev == nil {
		dev := c.DatabaseURL == "" && c.KurrentDBURL == ""
		c.Dev = &dev
	}
	if c.OIDCAudience == "" {
		c.OIDCAudience = c.OIDCClientID
	}
}

// ParseJWTSecrets parses TASKQUEUE_JWT_SECRETS, "kid1:secret1,kid2:secret2",
// into keys in order (the first signs).
func ParseJWTSecrets(s string) ([]auth.Key, error) {
	var keys []auth.Key
	var errs []error
	seen := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kid, secret, ok := strings.Cut(part, ":")
		switch {
		case !ok || !auth.ValidKeyID(kid):
			errs = append(errs, fmt.Errorf("entry %d is not kid:secret with a kid of 1-64 characters of [A-Za-z0-9_.-]", i+1))
		case len(secret) < MinJWTSecretLength:
			errs = append(errs, fmt.Errorf("the secret of %q is %d bytes, fewer than %d", kid, len(secret), MinJWTSecretLength))
		case seen[kid]:
			errs = append(errs, fmt.Errorf("kid %q is given twice", kid))
		default:
			seen[kid] = true
			keys = append(keys, auth.Key{ID: kid, Secret: []byte(secret)})
		}
	}
	return keys, errors.Join(errs...)
}

// ParseRoleMap parses TASKQUEUE_OIDC_ROLE_MAP, "name:role,...".
func ParseRoleMap(s string) (map[string]auth.Role, error) {
	m := map[string]auth.Role{}
	var errs []error
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, role, ok := strings.Cut(part, ":")
		r, err := auth.ParseRole(strings.TrimSpace(role))
		switch {
		case !ok || strings.TrimSpace(name) == "":
			errs = append(errs, fmt.Errorf("%q is not name:role", part))
		case err != nil:
			errs = append(errs, fmt.Errorf("%q: %v", part, err))
		default:
			m[strings.TrimSpace(name)] = r
		}
	}
	return m, errors.Join(errs...)
}

// ProcessorOn reports whether serve runs the processor (after defaults).
func (c Config) ProcessorOn() bool { return c.Processor == nil || *c.Processor }

// TLS reports whether the server speaks HTTPS (both TLS files are set).
func (c Config) TLS() bool { return c.TLSCert != "" && c.TLSKey != "" }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// usesDataDir reports whether the service keeps files in DataDir: the
// SQLite file (without a database URL, or beside KurrentDB without one),
// or the JWT secret it generates in dev mode.
func (c Config) usesDataDir() bool {
	return c.DatabaseURL == "" || (c.DevMode() && c.JWTSecret == "" && c.JWTSecrets == "")
}

// DevMode reports whether dev mode is on (after defaults).
func (c Config) DevMode() bool {
	if c.Dev == nil {
		return c.DatabaseURL == "" && c.KurrentDBURL == ""
	}
	return *c.Dev
}

// Validate reports every problem of c at once (errors.Join), each naming
// its environment variable. It expects defaults to be set.
func (c Config) Validate() error { return c.validate(true) }

// ValidateWithoutTokens is Validate for the commands that neither mint nor
// verify tokens (processor, relay, migrate and the operator commands): a
// missing TASKQUEUE_JWT_SECRET is fine there, a too short one is not.
func (c Config) ValidateWithoutTokens() error { return c.validate(false) }

func (c Config) validate(tokens bool) error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("TASKQUEUE_ADDR", "%q is not host:port: %v", c.Addr, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("TASKQUEUE_ADDR", "%q has no valid port", c.Addr)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("TASKQUEUE_DATA_DIR", "is empty")
	}
	if c.DatabaseURL != "" && !validPostgresURL(c.DatabaseURL) {
		bad("TASKQUEUE_DATABASE_URL", "is not a PostgreSQL URL (postgres://user@host:5432/db) or key=value string")
	}
	if c.DatabaseMaxConns < 1 || c.DatabaseMaxConns > 1000 {
		bad("TASKQUEUE_DATABASE_MAX_CONNS", "%d is not between 1 and 1000", c.DatabaseMaxConns)
	}
	if c.KurrentDBURL != "" && !hasScheme(c.KurrentDBURL, "kurrentdb", "kurrentdb+discover", "esdb", "esdb+discover") {
		bad("TASKQUEUE_KURRENTDB_URL", "is not a kurrentdb:// or esdb:// connection string")
	}
	if strings.HasPrefix(c.KurrentDBNamespace, "$") {
		bad("TASKQUEUE_KURRENTDB_NAMESPACE", "%q starts with '$', which KurrentDB keeps for system streams", c.KurrentDBNamespace)
	}
	if c.RedisURL != "" {
		if !hasScheme(c.RedisURL, "redis", "rediss", "unix", "redis+cluster", "rediss+cluster") {
			bad("TASKQUEUE_REDIS_URL", "is not a redis://, rediss:// or redis+cluster:// URL")
		} else if _, err := redisx.ParseTarget(c.RedisURL); err != nil {
			bad("TASKQUEUE_REDIS_URL", "%v", err)
		}
	}
	if c.RateLimitPlayer > 1_000_000 {
		bad("TASKQUEUE_RATE_LIMIT_PLAYER", "%d is above 1000000 per minute", c.RateLimitPlayer)
	}
	if c.RateLimitIP > 1_000_000 {
		bad("TASKQUEUE_RATE_LIMIT_IP", "%d is above 1000000 per minute", c.RateLimitIP)
	}
	switch {
	case c.JWTSecret == "" && c.JWTSecrets == "" && !c.DevMode() && tokens:
		bad("TASKQUEUE_JWT_SECRET", "is required outside dev mode (at least %d bytes)", MinJWTSecretLength)
	case c.JWTSecret != "" && len(c.JWTSecret) < MinJWTSecretLength:
		bad("TASKQUEUE_JWT_SECRET", "is %d bytes, fewer than %d", len(c.JWTSecret), MinJWTSecretLength)
	}
	if _, err := ParseJWTSecrets(c.JWTSecrets); err != nil {
		bad("TASKQUEUE_JWT_SECRETS", "%v", err)
	}
	if c.OIDCIssuer != "" {
		if u, err := url.Parse(c.OIDCIssuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("TASKQUEUE_OIDC_ISSUER", "%q is not an https:// URL (http:// only for a test provider)", c.OIDCIssuer)
		}
		if c.OIDCClientID == "" {
			bad("TASKQUEUE_OIDC_CLIENT_ID", "is required with TASKQUEUE_OIDC_ISSUER (the web app's client ID at the provider)")
		}
		if c.JWTIssuer == c.OIDCIssuer {
			bad("TASKQUEUE_JWT_ISSUER", "equals TASKQUEUE_OIDC_ISSUER: the service's own tokens need an issuer of their own")
		}
	}
	if _, err := ParseRoleMap(c.OIDCRoleMap); err != nil {
		bad("TASKQUEUE_OIDC_ROLE_MAP", "%v", err)
	}
	if c.TokenTTL <= 0 {
		bad("TASKQUEUE_TOKEN_TTL", "%s is not positive", c.TokenTTL)
	}
	if c.QueueLimit < 1 || c.QueueLimit > MaxQueueLimit {
		bad("TASKQUEUE_QUEUE_LIMIT", "%d is not between 1 and %d", c.QueueLimit, MaxQueueLimit)
	}
	if c.HistoryRetentionDays < 1 || c.HistoryRetentionDays > 3650 {
		bad("TASKQUEUE_HISTORY_RETENTION_DAYS", "%d is not between 1 and 3650", c.HistoryRetentionDays)
	}
	if len(c.DatabaseReplicaURLs) > 0 && c.DatabaseURL == "" {
		bad("TASKQUEUE_DATABASE_REPLICA_URLS", "needs TASKQUEUE_DATABASE_URL: replicas are standbys of the PostgreSQL primary")
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("TASKQUEUE_CORS_ORIGINS", "%q is not an origin like https://game.example or \"*\"", o)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("TASKQUEUE_LOG_FORMAT", "%q is not text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("TASKQUEUE_LOG_LEVEL", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if c.ShutdownTimeout <= 0 {
		bad("TASKQUEUE_SHUTDOWN_TIMEOUT", "%s is not positive", c.ShutdownTimeout)
	}
	if c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > 10*time.Minute {
		bad("TASKQUEUE_REQUEST_TIMEOUT", "%s is not between 100ms and 10m", c.RequestTimeout)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("TASKQUEUE_TLS_CERT", "TASKQUEUE_TLS_CERT and TASKQUEUE_TLS_KEY go together: set both or neither")
	}
	if c.AnalystPassword != "" && c.DatabaseURL == "" {
		bad("TASKQUEUE_ANALYST_PASSWORD", "needs TASKQUEUE_DATABASE_URL: the analyst role is a PostgreSQL role")
	}
	if c.OfflineCap < time.Minute {
		bad("TASKQUEUE_OFFLINE_CAP", "%s is shorter than a minute", c.OfflineCap)
	}
	if c.AuditRetentionDays < 1 || c.AuditRetentionDays > 3650 {
		bad("TASKQUEUE_AUDIT_RETENTION_DAYS", "%d is not between 1 and 3650", c.AuditRetentionDays)
	}
	if c.AdminAddr != "" {
		if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil {
			bad("TASKQUEUE_ADMIN_ADDR", "%q is not host:port: %v", c.AdminAddr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("TASKQUEUE_ADMIN_ADDR", "%q has no valid port", c.AdminAddr)
		}
	}
	if c.DebugAddr != "" {
		if _, port, err := net.SplitHostPort(c.DebugAddr); err != nil {
			bad("TASKQUEUE_DEBUG_ADDR", "%q is not host:port: %v", c.DebugAddr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("TASKQUEUE_DEBUG_ADDR", "%q has no valid port", c.DebugAddr)
		}
	}
	if c.PresenceGrace <= 0 || c.PresenceGrace > time.Hour {
		bad("TASKQUEUE_PRESENCE_GRACE", "%s is not between 0 and an hour", c.PresenceGrace)
	}
	return errors.Join(errs...)
}

func validPostgresURL(s string) bool {
	if hasScheme(s, "postgres", "postgresql") {
		u, err := url.Parse(s)
		return err == nil && u.Host != ""
	}
	return strings.Contains(s, "=") // key=value form
}

func hasScheme(s string, schemes ...string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	for _, want := range schemes {
		if strings.EqualFold(scheme, want) {
			return true
		}
	}
	return false
}

// Option describes one setting: its environment variable, its flag and its
// default, as the README's configuration table and `taskqueue help serve`
// show them. The table of options is the one place a default is written:
// setDefaults applies Default to a field left at its zero value.
type Option struct {
	Env     string
	Flag    string
	Default string // as a value would be written, or, when computed, in words
	Usage   string
	value   func(c *Config) flag.Value
}

// computedDefaults are the options whose default depends on other
// settings: setDefaults computes it, and their Default says how in words.
var computedDefaults = map[string]bool{"TASKQUEUE_DEV": true, "TASKQUEUE_OIDC_AUDIENCE": true}

// Arg names the kind of value the option takes, for help: string, int,
// duration or list; empty for a boolean (a flag given alone means true).
func (o Option) Arg() string {
	switch o.value(&Config{}).(type) {
	case *intValue:
		return "int"
	case *durationValue:
		return "duration"
	case *listValue, *prefixListValue:
		return "list"
	case *boolPtrValue:
		return ""
	}
	return "string"
}

// Options lists every setting of Config, in the order of the README table.
func Options() []Option { return options }

var options = []Option{
	{"TASKQUEUE_ADDR", "addr", ":8080", "address to listen on", func(c *Config) flag.Value { return (*stringValue)(&c.Addr) }},
	{"TASKQUEUE_DATA_DIR", "data-dir", "./data", "directory of the SQLite file and the generated JWT secret", func(c *Config) flag.Value { return (*stringValue)(&c.DataDir) }},
	{"TASKQUEUE_DATABASE_URL", "database-url", "", "PostgreSQL connection string (events and read models); empty: SQLite in the data directory", func(c *Config) flag.Value { return (*stringValue)(&c.DatabaseURL) }},
	{"TASKQUEUE_DATABASE_REPLICA_URLS", "database-replica-urls", "", "comma-separated PostgreSQL hot standbys that serve the read side's queries; empty: the primary serves them", func(c *Config) flag.Value { return (*listValue)(&c.DatabaseReplicaURLs) }},
	{"TASKQUEUE_DATABASE_MAX_CONNS", "database-max-conns", "16", "PostgreSQL pool size", func(c *Config) flag.Value { return (*intValue)(&c.DatabaseMaxConns) }},
	{"TASKQUEUE_KURRENTDB_URL", "kurrentdb-url", "", "KurrentDB connection string; when set, events are stored in KurrentDB", func(c *Config) flag.Value { return (*stringValue)(&c.KurrentDBURL) }},
	{"TASKQUEUE_KURRENTDB_NAMESPACE", "kurrentdb-namespace", "", "prefix of every stream on the KurrentDB server", func(c *Config) flag.Value { return (*stringValue)(&c.KurrentDBNamespace) }},
	{"TASKQUEUE_REDIS_URL", "redis-url", "", "Redis URL (redis://, or redis+cluster://host:port,host:port for a Redis Cluster) for caches, rate limits, sessions, cross-instance fanout; empty: in-process", func(c *Config) flag.Value { return (*stringValue)(&c.RedisURL) }},
	{"TASKQUEUE_REDIS_PREFIX", "redis-prefix", "", "prefix of every Redis key and channel", func(c *Config) flag.Value { return (*stringValue)(&c.RedisPrefix) }},
	{"TASKQUEUE_RATE_LIMIT_PLAYER", "rate-limit-player", "120", "commands per minute per player (bursts of a sixth); negative: no limit", func(c *Config) flag.Value { return (*intValue)(&c.RateLimitPlayer) }},
	{"TASKQUEUE_RATE_LIMIT_IP", "rate-limit-ip", "600", "commands per minute per client address (bursts of a tenth); negative: no limit", func(c *Config) flag.Value { return (*intValue)(&c.RateLimitIP) }},
	{"TASKQUEUE_JWT_SECRET", "jwt-secret", "", "HS256 secret, at least 32 bytes; required outside dev mode, generated into the data directory in dev mode", func(c *Config) flag.Value { return (*stringValue)(&c.JWTSecret) }},
	{"TASKQUEUE_JWT_SECRETS", "jwt-secrets", "", "HS256 keys with IDs for rotation, kid1:secret1,kid2:secret2: the first signs, all verify", func(c *Config) flag.Value { return (*stringValue)(&c.JWTSecrets) }},
	{"TASKQUEUE_OIDC_ISSUER", "oidc-issuer", "", "issuer URL of the OpenID provider whose tokens are accepted and with which the web app signs in; empty: none", func(c *Config) flag.Value { return (*stringValue)(&c.OIDCIssuer) }},
	{"TASKQUEUE_OIDC_CLIENT_ID", "oidc-client-id", "", "the web app's client ID at the OpenID provider (public client, PKCE)", func(c *Config) flag.Value { return (*stringValue)(&c.OIDCClientID) }},
	{"TASKQUEUE_OIDC_AUDIENCE", "oidc-audience", "the client ID", "audience (aud) the provider's tokens must carry", func(c *Config) flag.Value { return (*stringValue)(&c.OIDCAudience) }},
	{"TASKQUEUE_OIDC_ROLE_CLAIM", "oidc-role-claim", auth.DefaultRoleClaim, "claim of the provider's tokens that carries the role (a dot-separated path)", func(c *Config) flag.Value { return (*stringValue)(&c.OIDCRoleClaim) }},
	{"TASKQUEUE_OIDC_ROLE_MAP", "oidc-role-map", "", "provider role names to taskqueue roles, name:role,... (player, admin, system map to themselves)", func(c *Config) flag.Value { return (*stringValue)(&c.OIDCRoleMap) }},
	{"TASKQUEUE_OIDC_PLAYER_CLAIM", "oidc-player-claim", auth.DefaultPlayerClaim, "claim of the provider's tokens that carries the player ID", func(c *Config) flag.Value { return (*stringValue)(&c.OIDCPlayerClaim) }},
	{"TASKQUEUE_OIDC_SCOPES", "oidc-scopes", "openid,offline_access", "scopes the web app asks the provider for", func(c *Config) flag.Value { return (*listValue)(&c.OIDCScopes) }},
	{"TASKQUEUE_JWT_ISSUER", "jwt-issuer", "", "required token issuer (iss); empty: not checked", func(c *Config) flag.Value { return (*stringValue)(&c.JWTIssuer) }},
	{"TASKQUEUE_JWT_AUDIENCE", "jwt-audience", "", "required token audience (aud); empty: not checked", func(c *Config) flag.Value { return (*stringValue)(&c.JWTAudience) }},
	{"TASKQUEUE_TOKEN_TTL", "token-ttl", "24h", "lifetime of the tokens the service mints", func(c *Config) flag.Value { return (*durationValue)(&c.TokenTTL) }},
	{"TASKQUEUE_CATALOG", "catalog", "", "path of a task catalog JSON file; empty: the embedded catalog", func(c *Config) flag.Value { return (*stringValue)(&c.Catalog) }},
	{"TASKQUEUE_QUEUE_LIMIT", "queue-limit", strconv.Itoa(domain.DefaultQueueLimit), "most tasks a queue holds (1-1000)", func(c *Config) flag.Value { return (*intValue)(&c.QueueLimit) }},
	{"TASKQUEUE_HISTORY_RETENTION_DAYS", "history-retention-days", "30", "days of finished tasks the history keeps", func(c *Config) flag.Value { return (*intValue)(&c.HistoryRetentionDays) }},
	{"TASKQUEUE_CORS_ORIGINS", "cors-origins", "", "comma-separated origins allowed to call the API from a browser, or *; empty: none", func(c *Config) flag.Value { return (*listValue)(&c.CORSOrigins) }},
	{"TASKQUEUE_DEV", "dev", "true on SQLite, false with a database URL", "dev mode: POST /api/auth/dev-token and a generated JWT secret", func(c *Config) flag.Value { return &boolPtrValue{&c.Dev} }},
	{"TASKQUEUE_LOG_FORMAT", "log-format", "text", "log format: text or json", func(c *Config) flag.Value { return (*stringValue)(&c.LogFormat) }},
	{"TASKQUEUE_LOG_LEVEL", "log-level", "info", "log level: debug, info, warn or error", func(c *Config) flag.Value { return (*stringValue)(&c.LogLevel) }},
	{"TASKQUEUE_TLS_CERT", "tls-cert", "", "PEM certificate file; with --tls-key the server speaks HTTPS (TLS 1.3)", func(c *Config) flag.Value { return (*stringValue)(&c.TLSCert) }},
	{"TASKQUEUE_TLS_KEY", "tls-key", "", "PEM private key file of --tls-cert", func(c *Config) flag.Value { return (*stringValue)(&c.TLSKey) }},
	{"TASKQUEUE_ANALYST_PASSWORD", "analyst-password", "", "password of the read-only PostgreSQL role taskqueue_analyst; empty: no role", func(c *Config) flag.Value { return (*stringValue)(&c.AnalystPassword) }},
	{"TASKQUEUE_OFFLINE_CAP", "offline-cap", "24h", "how far back offline progress reaches before a queue stops", func(c *Config) flag.Value { return (*durationValue)(&c.OfflineCap) }},
	{"TASKQUEUE_PRESENCE_GRACE", "presence-grace", "30s", "how long a player's last WebSocket must stay closed before player.offline", func(c *Config) flag.Value { return (*durationValue)(&c.PresenceGrace) }},
	{"TASKQUEUE_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For names the client", func(c *Config) flag.Value { return (*prefixListValue)(&c.TrustedProxies) }},
	{"TASKQUEUE_PROCESSOR", "processor", "true", "run the processor inside serve (false: run `taskqueue processor` separately)", func(c *Config) flag.Value { return &boolPtrValue{&c.Processor} }},
	{"TASKQUEUE_DEBUG_ADDR", "debug-addr", "", "address of the profiler (net/http/pprof, no auth): bind to loopback, e.g. 127.0.0.1:6060; empty: off", func(c *Config) flag.Value { return (*stringValue)(&c.DebugAddr) }},
	{"TASKQUEUE_ADMIN_ADDR", "admin-addr", "", "internal address serving /metrics (then not served on --addr), /healthz and /readyz; empty: /metrics on --addr", func(c *Config) flag.Value { return (*stringValue)(&c.AdminAddr) }},
	{"TASKQUEUE_AUDIT_RETENTION_DAYS", "audit-retention-days", "90", "days the audit trail keeps its entries", func(c *Config) flag.Value { return (*intValue)(&c.AuditRetentionDays) }},
	{"TASKQUEUE_REQUEST_TIMEOUT", "request-timeout", "5s", "how long an API request may wait on the database (and a new PostgreSQL connection on connecting) before it answers 503 with Retry-After", func(c *Config) flag.Value { return (*durationValue)(&c.RequestTimeout) }},
	{"TASKQUEUE_SHUTDOWN_TIMEOUT", "shutdown-timeout", "15s", "how long a graceful shutdown waits for requests in flight", func(c *Config) flag.Value { return (*durationValue)(&c.ShutdownTimeout) }},
}

// FromEnv reads the TASKQUEUE_* variables through getenv (os.Getenv when
// nil) into a Config, reporting every unparsable value at once. Defaults
// are not applied: call Load, or WithDefaults.
func FromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var c Config
	var errs []error
	for _, o := range options {
		v := getenv(o.Env)
		if v == "" {
			continue
		}
		if err := o.value(&c).Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.Env, err))
		}
	}
	return c, errors.Join(errs...)
}

// RegisterFlags adds a flag per setting to fs, each writing into c. Call
// it after FromEnv, so that a flag overrides the variable and a flag not
// given keeps the variable's value.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	for _, o := range options {
		usage := fmt.Sprintf("%s (%s", o.Usage, o.Env)
		if o.Default != "" {
			usage += ", default " + o.Default
		}
		usage += ")"
		fs.Var(o.value(c), o.Flag, usage)
	}
}

// Load builds the Config of a command: the environment through getenv,
// then the flags in args (parsed by fs, which may carry the command's own
// flags), then the defaults, then Validate. The error joins every problem.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	c, err := FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// EnvNames lists every TASKQUEUE_* variable, sorted.
func EnvNames() []string {
	out := make([]string, len(options))
	for i, o := range options {
		out[i] = o.Env
	}
	sort.Strings(out)
	return out
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v = intValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s or 24h", s)
	}
	*v = durationValue(d)
	return nil
}

type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, strings.TrimSuffix(p, "/"))
		}
	}
	*v = out
	return nil
}

type prefixListValue []netip.Prefix

func (v *prefixListValue) String() string {
	parts := make([]string, len(*v))
	for i, p := range *v {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func (v *prefixListValue) Set(s string) error {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return fmt.Errorf("%q is not an address range like 10.0.0.0/8", part)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return fmt.Errorf("%q is not an IP address or a range like 10.0.0.0/8", part)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	*v = out
	return nil
}

type boolPtrValue struct{ p **bool }

func (v *boolPtrValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	return strconv.FormatBool(**v.p)
}
func (v *boolPtrValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v.p = &b
	return nil
}
func (v *boolPtrValue) IsBoolFlag() bool { return true }
