package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// This file holds the pure mappings between the port and the esdb client:
// versions, positions, errors, filters and metadata. They touch no network
// and are unit-tested in mapping_test.go.

// expectedRevision maps an expected version to the client's. Our versions
// count events from 1; KurrentDB revisions number them from 0, so Exact(n)
// expects revision n-1 and Exact(0) means no stream.
func expectedRevision(e eventstore.ExpectedVersion) esdb.ExpectedRevision {
	switch {
	case e.IsAny():
		return esdb.Any{}
	case e.IsStreamExists():
		return esdb.StreamExists{}
	}
	n, _ := e.Version()
	if n <= 0 {
		return esdb.NoStream{}
	}
	return esdb.Revision(uint64(n - 1))
}

// versionOf maps a KurrentDB event number (revision, from 0) to our stream
// version (from 1).
func versionOf(eventNumber uint64) int64 { return int64(eventNumber) + 1 }

// streamFrom maps "read from version from" to a stream position: versions
// below 2 read from the start.
func streamFrom(from int64) esdb.StreamPosition {
	if from <= 1 {
		return esdb.Start{}
	}
	return esdb.Revision(uint64(from - 1))
}

// toPosition maps a $all position (commit, prepare) to ours: Commit stays
// Commit, Prepare becomes Seq. $all is ordered by (commit, prepare), which
// is exactly eventstore.Position's order.
func toPosition(p esdb.Position) eventstore.Position {
	return eventstore.Position{Commit: p.Commit, Seq: p.Prepare}
}

// fromPosition maps our position to a $all position: the zero Position is
// the start of $all.
func fromPosition(p eventstore.Position) esdb.AllPosition {
	if p.IsZero() {
		return esdb.Start{}
	}
	return esdb.Position{Commit: p.Commit, Prepare: p.Seq}
}

// noPosition is what servers before 22.6 report as the position of an
// event read from a stream (they report none).
const noPosition = math.MaxUint64

// wrongVersionActual matches the client's wrong-expected-version message,
// "wrong expected version: expecting '%s' but got '%s'", where the actual
// is "no_stream" or a revision. The client keeps the actual revision only
// in this text (esdb v4.2.0, client.go AppendToStream).
var wrongVersionActual = regexp.MustCompile(`but got '([^']*)'`)

// actualVersion extracts the stream's actual version from a wrong expected
// version error of the client, and reports whether it could.
func actualVersion(err error) (int64, bool) {
	if !isWrongVersion(err) {
		return 0, false
	}
	return parseActualVersion(err.Error())
}

// parseActualVersion reads the actual version out of the client's wrong
// expected version message.
func parseActualVersion(msg string) (int64, bool) {
	m := wrongVersionActual.FindStringSubmatch(msg)
	if m == nil {
		return 0, false
	}
	if m[1] == "no_stream" {
		return 0, true
	}
	rev, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || rev < 0 {
		return 0, false
	}
	return rev + 1, true
}

// errorCode returns the client's error code of err, or ErrorCodeUnknown.
func errorCode(err error) esdb.ErrorCode {
	var esErr *esdb.Error
	if errors.As(err, &esErr) {
		return esErr.Code()
	}
	return esdb.ErrorCodeUnknown
}

// isWrongVersion reports whether err is the server's wrong expected version.
func isWrongVersion(err error) bool { return errorCode(err) == esdb.ErrorCodeWrongExpectedVersion }

// isNotFound reports whether err says the stream does not exist.
func isNotFound(err error) bool { return errorCode(err) == esdb.ErrorCodeResourceNotFound }

// isClosed reports whether err says the client's connection is closed.
func isClosed(err error) bool { return errorCode(err) == esdb.ErrorCodeConnectionClosed }

// isSystem reports whether an event is KurrentDB's own (a system stream or
// event type starts with '$'): such events are never part of our log.
func isSystem(stream, eventType string) bool {
	return strings.HasPrefix(stream, "$") || strings.HasPrefix(eventType, "$")
}

// exactRegex returns a regular expression matching exactly one of names.
// regexp.QuoteMeta escapes only characters that .NET regular expressions
// (the server's) read the same way.
func exactRegex(prefix string, names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(prefix + n)
	}
	return "^(?:" + strings.Join(quoted, "|") + ")$"
}

// serverFilter returns the filter the server applies to a subscription to
// $all for f within namespace (a stream-name prefix, possibly empty). The
// server filters on one thing only, event type or stream name, so it gets
// the most selective part and the client applies the rest (match). System
// events are excluded on the server when it can, and always on the client.
//
//   - Streams           → stream regex ^(?:ns+s1|ns+s2)$
//   - StreamPrefixes    → stream prefixes ns+p1, ns+p2
//   - namespace only    → stream prefix ns
//   - EventTypes only   → event-type regex ^(?:t1|t2)$
//   - nothing           → the event-type regex excluding '$' types
func serverFilter(f eventstore.Filter, namespace string) *esdb.SubscriptionFilter {
	switch {
	case len(f.Streams) > 0:
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: exactRegex(namespace, f.Streams)}
	case len(f.StreamPrefixes) > 0:
		prefixes := make([]string, len(f.StreamPrefixes))
		for i, p := range f.StreamPrefixes {
			prefixes[i] = namespace + p
		}
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: prefixes}
	case namespace != "":
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{namespace}}
	case len(f.EventTypes) > 0:
		return &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: exactRegex("", f.EventTypes)}
	}
	return esdb.ExcludeSystemEventsFilter()
}

// wireMetadata is the JSON kept in each event's user metadata. The
// correlation and causation IDs use KurrentDB's own keys ("$correlationId",
// "$causationId"), so the server's $by_correlation_id projection works.
// Renaming a key makes stored events read back without it.
type wireMetadata struct {
	SchemaVersion int       `json:"schemaVersion"`
	OccurredAt    time.Time `json:"occurredAt"`
	CorrelationID string    `json:"$correlationId,omitempty"`
	CausationID   string    `json:"$causationId,omitempty"`
	Actor         string    `json:"actor,omitempty"`
}

// encodeEvent maps a validated event to the client's EventData, under the
// stream name the server sees.
func encodeEvent(e eventstore.EventData) (esdb.EventData, error) {
	meta, err := json.Marshal(wireMetadata{
		SchemaVersion: e.SchemaVersion,
		OccurredAt:    e.Metadata.OccurredAt.UTC(),
		CorrelationID: e.Metadata.CorrelationID,
		CausationID:   e.Metadata.CausationID,
		Actor:         e.Metadata.Actor,
	})
	if err != nil {
		return esdb.EventData{}, fmt.Errorf("encode metadata of event %s: %w", e.ID, err)
	}
	return esdb.EventData{
		EventID:     e.ID,
		EventType:   e.Type,
		ContentType: esdb.ContentTypeJson,
		Data:        e.Data,
		Metadata:    meta,
	}, nil
}

// decodeEvent maps a recorded event back, with the namespace cut from its
// stream name. Events written by other clients, without our metadata, read
// with schema version 1 and empty metadata rather than failing the read.
func decodeEvent(r *esdb.RecordedEvent, namespace string) eventstore.RecordedEvent {
	out := eventstore.RecordedEvent{
		EventData: eventstore.EventData{
			ID:            r.EventID,
			Type:          r.EventType,
			SchemaVersion: 1,
			Data:          r.Data,
		},
		Stream:     strings.TrimPrefix(r.StreamID, namespace),
		Version:    versionOf(r.EventNumber),
		Position:   toPosition(r.Position),
		RecordedAt: r.CreatedDate.UTC(),
	}
	var m wireMetadata
	if len(r.UserMetadata) > 0 && json.Unmarshal(r.UserMetadata, &m) == nil {
		if m.SchemaVersion > 0 {
			out.SchemaVersion = m.SchemaVersion
		}
		out.Metadata = eventstore.Metadata{
			OccurredAt:    m.OccurredAt.UTC(),
			CorrelationID: m.CorrelationID,
			CausationID:   m.CausationID,
			Actor:         m.Actor,
		}
	}
	return out
}

// idempotencyVerdict applies the port's idempotency rules to an append of
// events to a stream whose last events are tail (in version order, ending
// at the stream's current version). It reports dup with the stored result
// when every event is already stored, in order, at the place the append
// would have put it; an error when some ID is stored elsewhere in tail
// (a *WrongVersionError when expected does not match current either); and
// neither when tail holds none of the IDs.
func idempotencyVerdict(stream string, expected eventstore.ExpectedVersion, current int64, tail []eventstore.RecordedEvent, events []eventstore.EventData) (bool, eventstore.AppendResult, error) {
	at := make(map[uuid.UUID]int, len(tail))
	for i, e := range tail {
		at[e.ID] = i
	}
	first, found := -1, false
	for i, e := range events {
		if j, ok := at[e.ID]; ok {
			found = true
			if i == 0 {
				first = j
			}
		}
	}
	if !found {
		return false, eventstore.AppendResult{}, nil
	}
	if first >= 0 {
		place := true
		if n, ok := expected.Version(); ok {
			place = tail[first].Version == n+1
		}
		if place && eventstore.IdempotentMatch(tail[first:], events) {
			last := tail[first+len(events)-1]
			return true, eventstore.AppendResult{Version: last.Version, Position: last.Position, Duplicate: true}, nil
		}
	}
	if !expected.Check(current) {
		return false, eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: current}
	}
	return false, eventstore.AppendResult{}, fmt.Errorf("%w: an event ID of this append is already stored in stream %q at another place", eventstore.ErrInvalid, stream)
}

// clientURL rewrites KurrentDB's newer connection-string schemes
// (kurrentdb://, kurrentdb+discover://) to the ones esdb v4.2.0 parses
// (esdb://, esdb+discover://); the rest of the string means the same.
func clientURL(url string) string {
	for _, s := range [...]struct{ from, to string }{
		{"kurrentdb+discover://", "esdb+discover://"},
		{"kurrentdb://", "esdb://"},
	} {
		if len(url) >= len(s.from) && strings.EqualFold(url[:len(s.from)], s.from) {
			return s.to + url[len(s.from):]
		}
	}
	return url
}

// slogLogging sends the client's log lines to l, at the matching level.
func slogLogging(l *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		lv := slog.LevelInfo
		switch level {
		case esdb.LogDebug:
			lv = slog.LevelDebug
		case esdb.LogWarn:
			lv = slog.LevelWarn
		case esdb.LogError:
			lv = slog.LevelError
		}
		l.Log(context.Background(), lv, fmt.Sprintf(format, args...), "component", "esdb")
	}
}
