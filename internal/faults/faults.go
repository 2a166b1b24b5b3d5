// Package faults tells a transient failure of the infrastructure from a
// permanent failure of the data, for every component that must decide
// whether to retry (projections, the processor, the relay, the realtime hub)
// or what to answer (the HTTP layer).
//
// Transient means that trying the same thing again later may succeed
// because something outside the data changes: a connection was refused,
// reset or timed out, the database is restarting or failing over, a
// serialization failure or deadlock, a lock not available, too many
// connections, a disk or quota that is full, storage that is read-only for a
// while. Everything else is permanent: the same input fails the same way
// again (a constraint violation, a refusal by a projection's own code, a
// syntax error).
//
// Classify looks through wrapped errors (errors.As) for the drivers' own
// types (pgconn, modernc.org/sqlite, KurrentDB's client, net and syscall
// errors) and falls back to the messages that those drivers produce when an
// error reaches it as text only (through a message bus, say). It must never
// call a data failure transient: a permanent failure wrongly called
// transient is retried forever instead of being shown.
//
// Code that learns of an outage in its own terms wraps ErrUnavailable or
// ErrStorageFull, which Classify recognises.
package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/redis/go-redis/v9"
	"modernc.org/sqlite"
)

// Kind is how a failure should be handled. The set is closed.
type Kind int

const (
	// Permanent: the same input fails the same way again.
	Permanent Kind = iota
	// Unavailable: a dependency cannot be reached, did not answer in
	// time, or asked to be retried. Retry with backoff.
	Unavailable
	// StorageFull: the disk or a quota is full. Retry when space returns.
	StorageFull
)

func (k Kind) String() string {
	switch k {
	case Unavailable:
		return "unavailable"
	case StorageFull:
		return "storage-full"
	}
	return "permanent"
}

// Sentinels that code wraps to say what it learned in its own terms.
var (
	ErrUnavailable = errors.New("a dependency is unavailable")
	ErrStorageFull = errors.New("storage is full")
)

// Transient reports whether err is worth retrying (Classify is not
// Permanent). A nil error is not transient.
func Transient(err error) bool { return err != nil && Classify(err) != Permanent }

// Classify returns the kind of err; nil is Permanent (nothing to retry).
func Classify(err error) Kind {
	if err == nil {
		return Permanent
	}
	if k, ok := classifyTypes(err); ok {
		return k
	}
	return classifyText(err.Error())
}

func classifyTypes(err error) (Kind, bool) {
	switch {
	case errors.Is(err, ErrStorageFull), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return StorageFull, true
	case errors.Is(err, ErrUnavailable):
		return Unavailable, true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if k := pgState(pe.Code); k != Permanent {
			return k, true
		}
		// A FATAL (or PANIC) ends the session, not a statement: the
		// server refused the connection or dropped it (a full disk's
		// "could not write init file" at connection start is XX000).
		// Never the data's fault.
		if pe.Severity == "FATAL" || pe.Severity == "PANIC" {
			return Unavailable, true
		}
		return Permanent, true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return sqliteCode(se.Code()), true
	}
	var ee *esdb.Error
	if errors.As(err, &ee) {
		switch ee.Code() {
		case esdb.ErrorCodeDeadlineExceeded, esdb.ErrorCodeConnectionClosed, esdb.ErrorCodeNotLeader:
			return Unavailable, true
		case esdb.ErrorCodeUnknown, esdb.ErrorCodeInternalServer:
			// gRPC's Unavailable and transport failures arrive here; decide
			// by the cause or the text below.
		default:
			return Permanent, true
		}
	}
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range redisFullPrefixes {
			if strings.HasPrefix(re.Error(), p) {
				return StorageFull, true
			}
		}
		for _, p := range redisRetryPrefixes {
			if strings.HasPrefix(re.Error(), p) {
				return Unavailable, true
			}
		}
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), pgconn.Timeout(err), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, puddle.ErrClosedPool), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EIO), errors.Is(err, syscall.EROFS):
		return Unavailable, true
	case errors.As(err, &ne):
		return Unavailable, true // every net.Error is about the network, not the data
	}
	return Permanent, false
}

// pgState classifies a PostgreSQL SQLSTATE
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
func pgState(code string) Kind {
	switch {
	case code == "53100": // disk_full
		return StorageFull
	case strings.HasPrefix(code, "08"), // connection exception
		code == "40001",                  // serialization_failure
		code == "40P01",                  // deadlock_detected
		code == "55P03",                  // lock_not_available
		code == "55006",                  // object_in_use
		code == "57014",                  // query_canceled (statement_timeout)
		code == "57P01",                  // admin_shutdown
		code == "57P02",                  // crash_shutdown
		code == "57P03",                  // cannot_connect_now (starting up, in recovery)
		code == "57P05",                  // idle_session_timeout
		code == "25006",                  // read_only_sql_transaction (a standby after failover)
		code == "25P03",                  // idle_in_transaction_session_timeout
		strings.HasPrefix(code, "53"),    // insufficient resources
		strings.HasPrefix(code, "58"),    // system error (I/O)
		code == "XX001", code == "XX002": // data/index corrupted: an operator must act, but not the event's fault
		return Unavailable
	}
	return Permanent
}

// sqliteCode classifies a SQLite result code; extended codes keep the
// primary code in their low byte (https://sqlite.org/rescode.html).
func sqliteCode(code int) Kind {
	switch code & 0xff {
	case 13: // SQLITE_FULL
		return StorageFull
	case 5, // SQLITE_BUSY
		6,  // SQLITE_LOCKED
		7,  // SQLITE_NOMEM
		8,  // SQLITE_READONLY
		10, // SQLITE_IOERR
		14, // SQLITE_CANTOPEN
		15: // SQLITE_PROTOCOL
		return Unavailable
	}
	return Permanent
}

// redisRetryPrefixes start Redis's answers that say "not now": loading its
// data, a replica, a failover or a cluster reconfiguration under way
// (UNBLOCKED: a blocking read cut short because its master became a
// replica in a Redis Cluster failover; MOVED and ASK: a slot still moving
// after go-redis followed its redirections).
var redisRetryPrefixes = []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "BUSY ", "UNBLOCKED ", "MOVED ", "ASK "}

// redisFullPrefixes start Redis's refusals to write: its maxmemory reached
// under the noeviction policy (OOM), or a server that cannot save its data
// to disk (MISCONF). Reads still answer; writes return when there is room.
var redisFullPrefixes = []string{"OOM ", "MISCONF "}

// The texts the drivers print for transient failures, for errors that
// reach Classify as text only (compared without regard to case).
var (
	storageFullTexts = []string{
		"database or disk is full", "no space left on device", "disk quota exceeded", ErrStorageFull.Error(),
		"OOM command not allowed when used memory", "MISCONF Redis is configured to save",
	}
	unavailableTexts = []string{
		"connection refused", "connection reset", "broken pipe", "i/o timeout", "timeout:",
		"conn closed", "connection closed", "closed pool", "unexpected eof", "failed to connect",
		"context deadline exceeded", "context canceled", "no route to host", "network is unreachable",
		"server closed the connection", "the database system is starting up",
		"the database system is shutting down", "terminating connection", "use of closed network connection",
		ErrUnavailable.Error(), "database is locked", "(SQLITE_BUSY)", "disk I/O error", "unable to open database file",
		"attempt to write a readonly database", "code = Unavailable", "code = DeadlineExceeded",
	}
)

func classifyText(s string) Kind {
	if i := strings.Index(s, "(SQLSTATE "); i >= 0 && len(s) >= i+15 {
		if k := pgState(s[i+10 : i+15]); k != Permanent {
			return k
		}
	}
	l := strings.ToLower(s)
	for _, t := range storageFullTexts {
		if strings.Contains(l, strings.ToLower(t)) {
			return StorageFull
		}
	}
	for _, t := range unavailableTexts {
		if strings.Contains(l, strings.ToLower(t)) {
			return Unavailable
		}
	}
	return Permanent
}
