package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/eventstore"
)

// processorCmd is `taskqueue processor`: the processor (and, with Redis,
// the relay) without the API, with /healthz, /readyz and /metrics on
// TASKQUEUE_ADDR for probes. On SIGINT/SIGTERM (ctx ends) it stops
// claiming, lets the commands in flight finish, releases its claims and
// the relay lease, and exits 0.
func processorCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, fs, _, err := loadConfig("processor", args, stderr, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("processor takes no arguments, got %q", fs.Args())}
	}
	// The probes speak TLS too when the deployment has a certificate: an
	// operator who set one expects no plain-HTTP port. Its files are read
	// before anything starts.
	var certs *certReloader
	if cfg.TLS() {
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey); err != nil {
			return err
		}
	}
	a, cleanup, err := app.NewProcessorApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cleanup()
		}
	}
	defer stop()
	slog.SetDefault(a.Logger)
	stopDebug, err := startDebug(cfg.DebugAddr, a.Logger)
	if err != nil {
		return err
	}
	defer stopDebug()
	srv, url, errc, err := startHTTP(cfg.Addr, a.Handler, certs, a.Logger)
	if err != nil {
		return err
	}
	a.Logger.Info("processor probes listening", "addr", cfg.Addr, "url", url, "tls", certs != nil, "version", versionString())
	fmt.Fprintf(stdout, "taskqueue %s processor running; probes on %s (/healthz /readyz /metrics)\n", versionString(), url)

	select {
	case err := <-errc:
		return fmt.Errorf("probes: %w", err)
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down: no new claims, finishing the commands in flight")
	// The processor first (probes stay up meanwhile), then the probes.
	stop()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	a.Logger.Info("stopped")
	return nil
}

// relayFlagSet returns the flag set of `relay` and its --from.
func relayFlagSet(cmd string) (*flag.FlagSet, *string) {
	if cmd != "relay" {
		return nil, nil
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	from := fs.String("from", "", "re-publish the integration events of the domain events at and after this global position (required; 0: all)")
	return fs, from
}

// relayCmd is `taskqueue relay --from N`: re-publish the integration
// events from global position N on (the seed's EventBridge replay).
func relayCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, from := relayFlagSet("relay")
	cfg, err := parseCommandLine(fs, usageOf("relay"), args, stderr, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("relay takes no arguments, got %q", fs.Args())}
	}
	if *from == "" {
		return &usageError{"relay needs --from N: the global position to re-publish from (0: all), as `taskqueue events` prints it"}
	}
	pos, err := eventstore.ParsePosition(*from)
	if err != nil {
		return &usageError{fmt.Sprintf("--from %q is not a global position: write a number (SQLite, e.g. 42) or commit:seq (PostgreSQL, e.g. 375655:3)", *from)}
	}
	if cfg, err = validated(cfg, false); err != nil {
		return err
	}
	n, err := app.Republish(ctx, cfg, pos, stderr)
	if err != nil {
		if n > 0 {
			return fmt.Errorf("%w (%d messages were published before the error)", err, n)
		}
		return err
	}
	fmt.Fprintf(stdout, "re-published %d integration events from position %s to the streams %s.events.*\n", n, pos, app.TopicPrefix(cfg))
	return nil
}
