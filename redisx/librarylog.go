package redisx

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// libraryLog receives what go-redis logs by itself. Its pool writes a line
// for every failed dial ("failed to dial after 5 attempts") with the
// standard library's logger, in its own format: hundreds of lines in the
// service's JSON log while Redis is away, beside the one line the Client
// (and every role's outage) already writes when Redis goes and comes back.
// They go to slog's default logger at debug level; a recovered panic, which
// is a bug, stays an error.
type libraryLog struct{}

func (libraryLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := slog.LevelDebug
	if strings.Contains(msg, "panic") {
		level = slog.LevelError
	}
	slog.Default().Log(ctx, level, msg, "component", "go-redis")
}

var quietLibrary sync.Once

// routeLibraryLog installs libraryLog (once per process: go-redis's logger
// is global).
func routeLibraryLog() { quietLibrary.Do(func() { redis.SetLogger(libraryLog{}) }) }
