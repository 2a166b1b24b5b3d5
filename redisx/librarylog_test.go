package redisx_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/redisx"
)

// go-redis's own lines about failed dials reach slog's default logger at
// debug level, not the standard error in their own format: while Redis is
// away the service's log keeps the Client's one line.
func TestGoRedisLogsAtDebug(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	var out testenv.SyncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	c, err := redisx.Open(redisx.Config{URL: "redis://" + addr, HealthInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testenv.WaitFor(t, "go-redis to report a failed dial", func() bool { return strings.Contains(out.String(), "failed to dial") })
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(line, "failed to dial") && (!strings.Contains(line, "level=DEBUG") || !strings.Contains(line, "component=go-redis")) {
			t.Fatalf("go-redis line not routed to debug: %s", line)
		}
	}
}
