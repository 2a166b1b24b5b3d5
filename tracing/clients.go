package tracing

import (
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// PostgresTracer returns the tracer of a pgx connection configuration
// (pgx.ConnConfig.Tracer): one client span per statement (otelpgx), in the
// trace of the request or command that ran it; nil when tracing is off, so
// that an untraced service pays nothing per statement.
func PostgresTracer() pgx.QueryTracer {
	if !Enabled() {
		return nil
	}
	return otelpgx.NewTracer()
}

// Redis adds one client span per Redis command (redisotel) to rdb when
// tracing is on; it does nothing when it is off.
func Redis(rdb redis.UniversalClient) error {
	if !Enabled() {
		return nil
	}
	return redisotel.InstrumentTracing(rdb)
}
