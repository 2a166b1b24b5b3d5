package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/tracing"
	"github.com/taskqueue/taskqueue/web/auth"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const usage = `taskqueue runs the task queues of a game's players.

Usage:
  taskqueue [serve] [flags]                 serve the API and the web app (the default)
  taskqueue processor [flags]               run only the processor (and the relay, with Redis); probes on --addr
  taskqueue relay --from N [flags]          re-publish the integration events from global position N
  taskqueue migrate up|status [flags]       apply or list the SQL migrations
  taskqueue token --player ID [--role player|admin|system] [--ttl 24h] [flags]
                                            print a bearer token signed with the configured secret
  taskqueue bench [--url URL] [--rate 500] [--duration 30s] [--players N]
                                            load a running server with POST .../tasks, report latency
  taskqueue bench ws --centrifugo PATH [--rounds 3] [--clients 10000] [--rate 1000]
                                            WebSocket memory per connection and latency, beside Centrifugo
  taskqueue soak [--url URL] [--debug-url URL] [--duration 1h] [--players 100]
                                            play a steady load for long and sample the server's memory
  taskqueue events --player ID [--from MOMENT] [--type T,...] [--limit N]
                                            print a player's events as JSON lines
  taskqueue queue --player ID [--at MOMENT] print a player's queue as it was at a moment (time travel)
  taskqueue export [--from T] [--to T]      write the event log as JSON lines to stdout
  taskqueue import [FILE]                   append an export (FILE or stdin) to an EMPTY store
  taskqueue backup --to DIR                 copy the SQLite data directory while serving (restore: serve with DIR)
  taskqueue replay --projection NAME|all [--to-position N | --to-time T [--into FILE]]
                                            rebuild read models blue-green, or as they were at a bound into a new SQLite file
  taskqueue forget --player ID               forget a player (GDPR erasure): their events, read models, sessions,
                                            cached data; publishes player.forgotten
  taskqueue audit [--since 24h] [--player ID] [--action A] [--limit N]
                                            print the audit trail's entries as JSON lines
  taskqueue version                         print the version
  taskqueue help [command]                  print this help, or a command's flags

Every setting is an environment variable TASKQUEUE_* and a flag; see
"taskqueue help serve" and the README's configuration table.
`

// usageError is bad usage: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run runs the command in args and returns the exit status. It never
// panics on bad input: every failure is a message on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, rest, stdout, stderr, getenv)
	case "migrate":
		err = migrate(ctx, rest, stdout, stderr, getenv)
	case "processor":
		err = processorCmd(ctx, rest, stdout, stderr, getenv)
	case "relay":
		err = relayCmd(ctx, rest, stdout, stderr, getenv)
	case "token":
		err = token(rest, stdout, stderr, getenv)
	case "bench":
		err = bench(ctx, rest, stdout, stderr, getenv)
	case "soak":
		err = soak(ctx, rest, stdout, stderr, getenv)
	case "events", "queue", "export", "import", "replay", "backup", "forget":
		err = opsCommand(ctx, cmd, rest, stdin, stdout, stderr, getenv)
	case "audit":
		err = auditCmd(ctx, rest, stdout, stderr, getenv)
	case "version":
		if len(rest) > 0 {
			err = &usageError{"version takes no arguments"}
		} else {
			fmt.Fprintln(stdout, "taskqueue", versionString())
		}
	case "help", "-h", "--help":
		err = help(rest, stdout, getenv)
	default:
		err = &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "taskqueue: %s\n\n%s", ue.msg, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "taskqueue %s: %v\n", cmd, err)
		return exitFail
	}
}

func help(args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if args[0] == "bench" {
		return bench(context.Background(), []string{"-h"}, stdout, stdout, getenv)
	}
	if args[0] == "soak" {
		return soak(context.Background(), []string{"-h"}, stdout, stdout, getenv)
	}
	fs, _ := commandFlags(args[0])
	if fs == nil {
		fs, _ = opsFlagSet(args[0])
	}
	if fs == nil {
		fs, _ = relayFlagSet(args[0])
	}
	if fs == nil && args[0] == "audit" {
		fs, _ = auditFlagSet()
	}
	if fs == nil {
		return &usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	var cfg app.Config
	cfg.RegisterFlags(fs)
	fs.SetOutput(stdout)
	fmt.Fprintf(stdout, "Usage of taskqueue %s:\n", args[0])
	printFlags(stdout, fs)
	return nil
}

// printFlags prints the flags of fs as flag.PrintDefaults does, except
// that a configuration option names the kind of value it takes (string,
// int, duration, list: app.Option.Arg) instead of "value", and each flag
// is written with two dashes, as the README writes them.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	args := map[string]string{}
	for _, o := range app.Options() {
		args[o.Flag] = o.Arg()
	}
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		opt, isOption := args[f.Name]
		if isOption {
			arg = opt
		}
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		if !isOption && f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "\n    \t%s\n", strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// tokenFlags are the flags of `token` beside the configuration's.
type tokenFlags struct {
	player string
	role   string
	ttl    time.Duration
}

// commandFlags returns the flag set of a command with its own flags.
func commandFlags(cmd string) (*flag.FlagSet, *tokenFlags) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	switch cmd {
	case "serve", "migrate", "processor":
		return fs, nil
	case "token":
		tf := &tokenFlags{}
		fs.StringVar(&tf.player, "player", "", "player ID the token is for (the sub claim); required")
		fs.StringVar(&tf.role, "role", string(auth.RolePlayer), "role: player, admin or system")
		fs.DurationVar(&tf.ttl, "ttl", 0, "lifetime of the token (default TASKQUEUE_TOKEN_TTL, 24h)")
		return fs, tf
	}
	return nil, nil
}

// loadConfig parses the configuration of cmd: the environment, then the
// flags in args, then defaults and Validate. A bad flag is a usage error
// (exit 2); a bad setting is a failure naming every problem (exit 1).
func loadConfig(cmd string, args []string, stderr io.Writer, getenv func(string) string) (app.Config, *flag.FlagSet, *tokenFlags, error) {
	fs, tf := commandFlags(cmd)
	cfg, err := parseCommandLine(fs, usageOf(cmd), args, stderr, getenv)
	if err != nil {
		return cfg, fs, tf, err
	}
	cfg, err = validated(cfg, cmd == "serve" || cmd == "token")
	return cfg, fs, tf, err
}

// usageOf heads the -h output of cmd.
func usageOf(cmd string) string { return "Usage of taskqueue " + cmd + ":" }

// parseCommandLine reads the environment, then the flags in args (parsed
// by fs, which may carry the command's own flags) into a Config, without
// defaults or validation. -h prints help and fs's flags (flag.ErrHelp); a
// bad flag is a usage error (exit 2), a bad variable a failure (exit 1).
func parseCommandLine(fs *flag.FlagSet, help string, args []string, stderr io.Writer, getenv func(string) string) (app.Config, error) {
	cfg, err := app.FromEnv(getenv)
	if err != nil {
		return cfg, fmt.Errorf("invalid environment:\n%w", err)
	}
	cfg.RegisterFlags(fs)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, help)
			printFlags(stderr, fs)
			return cfg, err
		}
		return cfg, &usageError{err.Error()}
	}
	return cfg, nil
}

// validated applies the defaults and checks cfg, every problem named;
// tokens says whether the command mints or verifies tokens (only then is
// TASKQUEUE_JWT_SECRET required outside dev mode).
func validated(cfg app.Config, tokens bool) (app.Config, error) {
	cfg = cfg.WithDefaults()
	check := cfg.ValidateWithoutTokens
	if tokens {
		check = cfg.Validate
	}
	if err := check(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, fs, _, err := loadConfig("serve", args, stderr, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	// TLS files are read before anything else starts: a missing file or a
	// bad pair fails here, not at the first connection.
	var certs *certReloader
	if cfg.TLS() {
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey); err != nil {
			return err
		}
	}
	shutdownTracing, err := tracing.Setup(ctx, "taskqueue", versionString())
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(ctx); err != nil {
			fmt.Fprintln(stderr, "flush traces:", err)
		}
	}()
	a, cleanup, err := app.NewWithLog(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	slog.SetDefault(a.Logger) // packages that log through slog's default logger get the same format
	stopDebug, err := startDebug(cfg.DebugAddr, a.Logger)
	if err != nil {
		return err
	}
	defer stopDebug()
	stopAdmin, err := startAdmin(cfg.AdminAddr, a.AdminHandler, a.Logger)
	if err != nil {
		return err
	}
	defer stopAdmin()
	srv, url, errc, err := startHTTP(cfg.Addr, a.Handler, certs, a.Logger)
	if err != nil {
		return err
	}
	a.Logger.Info("listening", "addr", cfg.Addr, "url", url, "tls", certs != nil, "version", versionString())
	fmt.Fprintf(stdout, "taskqueue %s listening on %s\n", versionString(), url)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down: no new connections, waiting for requests in flight", "timeout", cfg.ShutdownTimeout)
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	a.Logger.Info("stopped")
	return nil
}

// startHTTP listens on addr and serves h there, over TLS (1.3 at least,
// certificates re-read when they change) when certs is set, else plain
// HTTP. It returns the server, the URL it answers on, and the channel that
// gets Serve's error.
func startHTTP(addr string, h http.Handler, certs *certReloader, log *slog.Logger) (*http.Server, string, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	if certs == nil {
		go func() { errc <- srv.Serve(ln) }()
		return srv, "http://" + displayAddr(ln.Addr()), errc, nil
	}
	certs.log = log
	certs.logLoaded("TLS certificate loaded", certs.cert)
	srv.TLSConfig = certs.tlsConfig()
	srv.Handler = hsts(h)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	return srv, "https://" + displayAddr(ln.Addr()), errc, nil
}

// displayAddr turns ":8080" into "localhost:8080" for a clickable URL.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub != "up" && sub != "status" {
		return &usageError{"migrate needs a subcommand: up or status"}
	}
	cfg, fs, _, err := loadConfig("migrate", args, stderr, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("migrate %s takes no arguments, got %q", sub, fs.Args())}
	}
	db, dialect, closeDB, err := app.OpenSQL(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	if sub == "up" {
		done, err := migrations.Up(ctx, db, dialect)
		for _, m := range done {
			fmt.Fprintf(stdout, "applied %04d_%s\n", m.Version, m.Name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s schema is up to date (%d applied now)\n", dialect, len(done))
		if dialect == migrations.Postgres && cfg.AnalystPassword != "" {
			if err := migrations.EnsureAnalystRole(ctx, db, cfg.AnalystPassword); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "analyst role %s created or updated (password from TASKQUEUE_ANALYST_PASSWORD)\n", migrations.AnalystRole)
		}
		return nil
	}
	states, err := migrations.Status(ctx, db, dialect)
	if err != nil {
		return err
	}
	pending := 0
	for _, s := range states {
		state := "pending"
		switch {
		case s.Modified:
			state = "MODIFIED since applied " + s.AppliedAt.Format(time.RFC3339)
		case s.Applied:
			state = "applied " + s.AppliedAt.Format(time.RFC3339)
		default:
			pending++
		}
		fmt.Fprintf(stdout, "%04d_%-32s %s\n", s.Version, s.Name, state)
	}
	fmt.Fprintf(stdout, "%s: %d migrations, %d pending\n", dialect, len(states), pending)
	return nil
}

func token(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, fs, tf, err := loadConfig("token", args, stderr, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("token takes no arguments, got %q", fs.Args())}
	}
	if tf.player == "" {
		return &usageError{"token needs --player"}
	}
	if !auth.ValidPlayerID(tf.player) {
		return &usageError{fmt.Sprintf("--player %q is not 1-64 characters of [A-Za-z0-9_-]", tf.player)}
	}
	role, err := auth.ParseRole(tf.role)
	if err != nil {
		return &usageError{"--role: " + err.Error()}
	}
	ttl := tf.ttl
	if ttl == 0 {
		ttl = cfg.TokenTTL
	}
	if ttl < 0 {
		return &usageError{fmt.Sprintf("--ttl %s is negative", ttl)}
	}
	tokens, err := app.NewTokens(cfg)
	if err != nil {
		return err
	}
	tok, _, err := tokens.Mint(tf.player, role, ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}
