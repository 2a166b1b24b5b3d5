package app

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, envOf(env))
}

func TestLoadDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if c.Addr != ":8080" || c.DataDir != "./data" || c.QueueLimit != 10 || c.LogFormat != "text" ||
		c.TokenTTL != 24*time.Hour || !c.DevMode() || len(c.CORSOrigins) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

var loadCases = []struct {
	name  string
	env   map[string]string
	args  []string
	check func(Config) bool
}{
	{"env sets a field", map[string]string{"TASKQUEUE_ADDR": "127.0.0.1:9000"}, nil,
		func(c Config) bool { return c.Addr == "127.0.0.1:9000" }},
	{"flag overrides env", map[string]string{"TASKQUEUE_QUEUE_LIMIT": "20"}, []string{"--queue-limit", "30"},
		func(c Config) bool { return c.QueueLimit == 30 }},
	{"env kept when flag absent", map[string]string{"TASKQUEUE_QUEUE_LIMIT": "20"}, []string{"--addr", ":1"},
		func(c Config) bool { return c.QueueLimit == 20 && c.Addr == ":1" }},
	{"database URL turns dev mode off", map[string]string{
		"TASKQUEUE_DATABASE_URL": "postgres://u@h:5432/db", "TASKQUEUE_JWT_SECRET": strings.Repeat("s", 32)}, nil,
		func(c Config) bool { return !c.DevMode() }},
	{"dev forced on with a database", map[string]string{
		"TASKQUEUE_DATABASE_URL": "postgres://u@h:5432/db", "TASKQUEUE_DEV": "true"}, nil,
		func(c Config) bool { return c.DevMode() && c.JWTSecret == "" }},
	{"dev flag off on sqlite", nil, []string{"--dev=false", "--jwt-secret", strings.Repeat("k", 40)},
		func(c Config) bool { return !c.DevMode() }},
	{"CORS list split and trimmed", map[string]string{"TASKQUEUE_CORS_ORIGINS": " https://a.example/ , http://b.example:3000"}, nil,
		func(c Config) bool {
			return len(c.CORSOrigins) == 2 && c.CORSOrigins[0] == "https://a.example" && c.CORSOrigins[1] == "http://b.example:3000"
		}},
	{"trusted proxies: ranges and single addresses", map[string]string{"TASKQUEUE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1"}, nil,
		func(c Config) bool {
			return len(c.TrustedProxies) == 3 && c.TrustedProxies[0].String() == "10.0.0.0/8" &&
				c.TrustedProxies[1].String() == "192.168.1.7/32" && c.TrustedProxies[2].String() == "::1/128"
		}},
	{"offline cap, processor off, TLS pair", map[string]string{"TASKQUEUE_OFFLINE_CAP": "2h", "TASKQUEUE_PROCESSOR": "false",
		"TASKQUEUE_TLS_CERT": "c.pem", "TASKQUEUE_TLS_KEY": "k.pem"}, nil,
		func(c Config) bool { return c.OfflineCap == 2*time.Hour && !c.ProcessorOn() && c.TLS() }},
	{"processor on and 24h cap by default", nil, nil,
		func(c Config) bool { return c.ProcessorOn() && c.OfflineCap == 24*time.Hour && !c.TLS() }},
	{"durations", map[string]string{"TASKQUEUE_TOKEN_TTL": "1h", "TASKQUEUE_SHUTDOWN_TIMEOUT": "3s"}, nil,
		func(c Config) bool { return c.TokenTTL == time.Hour && c.ShutdownTimeout == 3*time.Second }},
}

func TestLoad(t *testing.T) {
	for _, tc := range loadCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env, tc.args...)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := load(t, map[string]string{
		"TASKQUEUE_ADDR":          "nope",
		"TASKQUEUE_DATABASE_URL":  "mysql://x",
		"TASKQUEUE_REDIS_URL":     "http://x",
		"TASKQUEUE_KURRENTDB_URL": "tcp://x",
		"TASKQUEUE_JWT_SECRET":    "short",
		"TASKQUEUE_QUEUE_LIMIT":   "-1",
		"TASKQUEUE_CORS_ORIGINS":  "ftp://x",
		"TASKQUEUE_LOG_FORMAT":    "xml",
		"TASKQUEUE_LOG_LEVEL":     "loud",
		"TASKQUEUE_RATE_LIMIT_IP": "2000000",
		"TASKQUEUE_TLS_CERT":      "cert.pem",
		"TASKQUEUE_OFFLINE_CAP":   "30s",
		"TASKQUEUE_DEBUG_ADDR":    "6060",
	})
	if err == nil {
		t.Fatal("load accepted a bad config")
	}
	for _, want := range []string{"TASKQUEUE_ADDR", "TASKQUEUE_DATABASE_URL", "TASKQUEUE_REDIS_URL", "TASKQUEUE_KURRENTDB_URL",
		"TASKQUEUE_JWT_SECRET", "TASKQUEUE_QUEUE_LIMIT", "TASKQUEUE_CORS_ORIGINS", "TASKQUEUE_LOG_FORMAT", "TASKQUEUE_LOG_LEVEL", "TASKQUEUE_RATE_LIMIT_IP",
		"TASKQUEUE_TLS_CERT", "TASKQUEUE_OFFLINE_CAP", "TASKQUEUE_DEBUG_ADDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// A Redis Cluster URL is checked as it will be opened: a bad one is named
// at startup, not at the first command.
func TestRedisClusterURL(t *testing.T) {
	c, err := load(t, map[string]string{"TASKQUEUE_REDIS_URL": "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"})
	if err != nil || c.RedisURL != "redis+cluster://10.0.0.1:7000,10.0.0.2:7000" {
		t.Fatalf("a cluster URL: %+v, %v", c.RedisURL, err)
	}
	for url, want := range map[string]string{
		"redis+cluster://10.0.0.1:7000/2": "no database",
		"redis+cluster:///":               "no seed address",
		"redis://x:notaport":              "TASKQUEUE_REDIS_URL",
	} {
		_, err := load(t, map[string]string{"TASKQUEUE_REDIS_URL": url})
		if err == nil || !strings.Contains(err.Error(), "TASKQUEUE_REDIS_URL") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want TASKQUEUE_REDIS_URL named with %q, got %v", url, want, err)
		}
	}
}

func TestUnparsableValuesAreNamed(t *testing.T) {
	_, err := load(t, map[string]string{"TASKQUEUE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local", "TASKQUEUE_PROCESSOR": "maybe"})
	if err == nil || !strings.Contains(err.Error(), `TASKQUEUE_TRUSTED_PROXIES: "proxy.local" is not an IP address`) ||
		!strings.Contains(err.Error(), "TASKQUEUE_PROCESSOR") {
		t.Fatalf("want both bad values named, got %v", err)
	}
}

func TestAnalystPasswordNeedsPostgres(t *testing.T) {
	_, err := load(t, map[string]string{"TASKQUEUE_ANALYST_PASSWORD": "pw"})
	if err == nil || !strings.Contains(err.Error(), "TASKQUEUE_ANALYST_PASSWORD") {
		t.Fatalf("want the analyst password refused without a database URL, got %v", err)
	}
}

func TestSecretRequiredOutsideDevMode(t *testing.T) {
	_, err := load(t, map[string]string{"TASKQUEUE_DATABASE_URL": "postgres://u@h/db"})
	if err == nil || !strings.Contains(err.Error(), "TASKQUEUE_JWT_SECRET") {
		t.Fatalf("want a missing-secret error, got %v", err)
	}
}

func TestUnparsableEnvIsNamed(t *testing.T) {
	_, err := load(t, map[string]string{"TASKQUEUE_QUEUE_LIMIT": "ten", "TASKQUEUE_DEV": "maybe", "TASKQUEUE_TOKEN_TTL": "1 day"})
	for _, want := range []string{"TASKQUEUE_QUEUE_LIMIT", "TASKQUEUE_DEV", "TASKQUEUE_TOKEN_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestEveryOptionIsAFlag(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	for _, o := range Options() {
		if fs.Lookup(o.Flag) == nil {
			t.Errorf("%s has no flag --%s", o.Env, o.Flag)
		}
		if !strings.HasPrefix(o.Env, "TASKQUEUE_") {
			t.Errorf("%s is not a TASKQUEUE_ variable", o.Env)
		}
	}
}

func TestRateLimits(t *testing.T) {
	c, err := load(t, map[string]string{"TASKQUEUE_RATE_LIMIT_PLAYER": "30", "TASKQUEUE_REDIS_PREFIX": "eu:"}, "--rate-limit-ip", "-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimitPlayer != 30 || c.RateLimitIP != -1 || c.RedisPrefix != "eu:" {
		t.Fatalf("rate limits %d/%d, prefix %q", c.RateLimitPlayer, c.RateLimitIP, c.RedisPrefix)
	}
	l := limits(c)
	if l.Player.Per != 30 || l.Player.Burst != 5 || l.Player.Period != time.Minute || l.IP.Per >= 0 {
		t.Fatalf("limiter config %+v", l)
	}
	d, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := limits(d); l.Player.Per != 120 || l.Player.Burst != 20 || l.IP.Per != 600 || l.IP.Burst != 60 {
		t.Fatalf("default limiter config %+v, want 120/20 and 600/60", l)
	}
}

// Every default is written once, in the table of options: the zero Config
// gets each option's default from there, as help and the README show it.
func TestOptionDefaultsParse(t *testing.T) {
	c := Config{}.WithDefaults()
	for _, o := range Options() {
		if computedDefaults[o.Env] || o.Default == "" {
			continue
		}
		want := Config{}
		if err := o.value(&want).Set(o.Default); err != nil {
			t.Errorf("%s: default %q does not parse: %v", o.Env, o.Default, err)
			continue
		}
		if got := o.value(&c).String(); got != o.value(&want).String() {
			t.Errorf("%s: the zero Config gets %q, its option says %q", o.Env, got, o.Default)
		}
	}
	if c.Dev == nil || !*c.Dev {
		t.Errorf("dev mode of the embedded default: %v, want on", c.Dev)
	}
	if pg := (Config{DatabaseURL: "postgres://x/db", JWTSecret: strings.Repeat("s", 32)}).WithDefaults(); *pg.Dev {
		t.Error("dev mode with a database URL: on, want off")
	}
	if a := (Config{OIDCClientID: "web"}).WithDefaults().OIDCAudience; a != "web" {
		t.Errorf("OIDC audience by default: %q, want the client ID", a)
	}
}

// A value given is kept: a default fills only what was left unset.
func TestDefaultsKeepWhatIsSet(t *testing.T) {
	c := Config{Addr: ":9999", RateLimitIP: -1, OfflineCap: time.Hour}.WithDefaults()
	if c.Addr != ":9999" || c.RateLimitIP != -1 || c.OfflineCap != time.Hour {
		t.Errorf("set values changed by the defaults: %q %d %s", c.Addr, c.RateLimitIP, c.OfflineCap)
	}
}
