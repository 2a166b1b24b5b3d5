package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves Go's profiler (net/http/pprof under /debug/pprof/) on
// addr (TASKQUEUE_DEBUG_ADDR), on its own server and mux, so that nothing
// of it is reachable through the API's port. It has no authentication:
// an address that is not loopback is logged as a warning. The returned
// func stops it. An empty addr starts nothing.
func startDebug(addr string, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on TASKQUEUE_DEBUG_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex… by name
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug server stopped", "addr", addr, "err", err)
		}
	}()
	if !loopback(ln.Addr()) {
		log.Warn("the profiler (TASKQUEUE_DEBUG_ADDR) listens beyond loopback and has no authentication; bind it to 127.0.0.1",
			"addr", ln.Addr().String())
	}
	log.Info("profiler listening", "url", "http://"+displayAddr(ln.Addr())+"/debug/pprof/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}, nil
}

// loopback reports whether a listens on a loopback address only.
func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// startAdmin serves h (app.AdminHandler: /metrics, /healthz, /readyz) on
// TASKQUEUE_ADMIN_ADDR until stop; nothing when addr is empty.
func startAdmin(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	if addr == "" || h == nil {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on TASKQUEUE_ADMIN_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("metrics listening on the admin address (not on the public one)", "url", "http://"+displayAddr(ln.Addr())+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
