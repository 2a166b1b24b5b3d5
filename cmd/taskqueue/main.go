// Command taskqueue is the one binary of taskqueue: it serves the API and
// the web app (serve, the default), runs the processor alone (processor),
// re-publishes integration events (relay), applies migrations (migrate),
// mints tokens (token), loads a server (bench), inspects and moves the
// event log (events, queue, export, import), rebuilds read models (replay)
// and prints its version (version). Run `taskqueue help`.
//
// It stays thin: configuration and wiring live in package app, the
// commands in cli.go. Exit status: 0 success, 1 failure, 2 bad usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx: serve shuts down gracefully.
	// A second one kills the process (the default action, restored by stop).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
