// Package eventstore owns the event log: the Store port that every backend
// implements, the types that travel through it, and the rules every backend
// shares (validation, expected versions, positions).
//
// The log is the single source of truth of taskqueue. Streams are append-only
// sequences of events keyed by a stream ID (for example "queue-alice"); every
// event also has a place in one global log. Backends live in sub-packages
// (sqlite, postgres, kurrentdb) and all pass the same contract suite in
// eventstore/storetest.
//
// Contracts every backend keeps:
//
//   - Stream versions start at 1 and have no gaps: the first event of a
//     stream has version 1, the stream's version is its number of events.
//   - Append is atomic: all of its events are stored or none is.
//   - Append is idempotent by event ID: appending events whose IDs are
//     already stored at that place of the stream succeeds and stores nothing
//     twice (a client retrying a command that timed out).
//   - AppendMany appends to many streams in one call: each stream's append
//     is atomic, idempotent and checked against its own expected version
//     exactly as an Append, and has its own outcome; on the SQL backends
//     the successful ones commit in one transaction (one commit, one
//     wake-up of subscribers) and a failed call stores nothing (or, when
//     it failed during the commit, all or nothing).
//     KurrentDB keeps only the per-stream part (see its package doc).
//   - Readers of the global log (ReadAll, Subscribe) see every committed
//     event exactly once and all in one order, even when transactions commit
//     out of order. A long-open write may delay readers; it never makes them
//     skip an event. They get whole appends: a page (ReadAll, a
//     subscription's batch) never ends inside one (SQL backends), so a read
//     model committed page by page never shows half of one command.
//   - Data and metadata read back equal what was written, byte for byte,
//     except OccurredAt, which is kept in UTC to the microsecond.
//
// # Deleted streams
//
// DeleteStream forgets a stream (GDPR erasure of a player: docs/API.md,
// "Forgetting a player"). The global log keeps its positions and erases the
// content: each event of the stream becomes a tombstone row at the SAME
// position, of type DeletedType, in a stream of its own named
// DeletedStreamPrefix+<random UUID> (one per deletion, versions kept), with
// a fresh random event ID, empty data ("{}"), no correlation, causation or
// actor, and OccurredAt set to RecordedAt. Nothing of the stream's name, its
// IDs or its content is left; only that some event was stored there, when.
// Every reader of the global log skips tombstones inside the store (ReadAll,
// Subscribe, the SQL backends' bulk reads): a subscriber's Position moves
// past them like past events its filter does not match. A reader that was
// handed an event before its stream was deleted keeps what it did with it
// (a read model's row): erasing that is the reader's owner's job
// (projections.Runner.Forget).
//
// Why tombstones and not deleted rows with recorded gaps: positions are
// what every reader checkpoints (projections, the relay, WebSocket resume
// with since=<position>, time travel to a position, replays to a bound). A
// deleted row would let the log's head move back (SQLite's position is the
// rowid, reused once the highest row is gone, so an event could be given a
// position readers have already passed and be lost to them), and every gap
// check would need a second table of deleted ranges read in the same
// snapshot. A tombstone keeps the head, keeps "positions only grow" true
// without a second structure, and keeps the proof of the gap-free ordering
// as it was: a tombstone is a row of the same transaction at the same
// position (PostgreSQL: the UPDATE keeps transaction_id and position, so
// the horizon rule is unchanged), merely never handed out.
//
// After DeleteStream the stream reads as never written: ReadStream is empty,
// StreamVersion is 0, its snapshot is gone, and the next append starts at
// version 1 (with NoStream) at a new position after the head. An
// append racing the deletion is ordered by the stream's lock: it lands
// before (and is erased) or after (and starts the new stream). Deleting a
// stream that does not exist deletes nothing and is no error. The old rows'
// bytes may survive in the database's free pages (SQLite: until VACUUM or
// reuse; PostgreSQL: until VACUUM), in the WAL and in backups: the
// operator's retention of those bounds how long (docs/OPERATIONS.md).
// KurrentDB deletes with the client's stream deletion (see its package).
//
// This package is domain-agnostic: it knows nothing of queues or tasks.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Store is the port to the event log. Implementations are safe for
// concurrent use.
type Store interface {
	// Append stores events at the end of stream if the stream's version
	// matches expected, and reports the stream's new version and the global
	// position of the last event. A mismatch returns a *WrongVersionError.
	// Invalid input returns an error wrapping ErrInvalid and writes nothing.
	//
	// Idempotency: event IDs are unique in the whole log. When the events'
	// IDs are already stored, in order, at the place the append would have
	// put them (right after version n for Exact(n) and NoStream, anywhere in
	// the stream for Any and StreamExists), Append writes nothing and
	// returns the stored result with Duplicate set. An ID stored anywhere
	// else is an error wrapping ErrInvalid (or a *WrongVersionError when the
	// expected version does not match either).
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)

	// AppendMany performs many appends, each to a stream of its own, in one
	// call, and returns one outcome per StreamAppend, in the same order.
	//
	// Each append is judged alone, exactly as Append would judge it: its
	// own input validation, expected version and idempotency (an append
	// whose events are already stored at its place succeeds with Duplicate
	// set). An outcome whose Err is not nil carries what Append would have
	// returned (a *WrongVersionError, an error wrapping ErrInvalid for bad
	// input or an event ID stored elsewhere): none of that stream's events
	// is stored, and the other appends are not affected.
	//
	// The appends that succeed are stored together. On the SQL backends
	// they commit in ONE transaction: one commit, one wake-up of the
	// subscribers, and readers of the global log see all of them or none.
	// When the call returns an error, the call as a whole failed and
	// returns no outcomes: the call itself is invalid input (ErrInvalid: a
	// stream or an event ID in two of its appends, more than
	// MaxStreamsPerAppendMany appends), the store is closed, its context
	// ended, or the database failed (a transient error: retry). Nothing of
	// the call was stored, except when the failure came while the
	// transaction committed (a connection lost then, the context ended
	// while the commit was under way): then either all of it was stored or
	// none, never a part. Retrying the same call is always safe: what was
	// stored comes back as Duplicate.
	//
	// Backends without multi-stream transactions (KurrentDB) store each
	// append on its own: their outcomes may then also carry an
	// infrastructure error, after which that stream's events may or may
	// not be stored (retry it with the same events), and readers may see
	// some of the appends before the others. An empty call stores nothing
	// and returns no outcomes.
	AppendMany(ctx context.Context, appends []StreamAppend) ([]AppendOutcome, error)

	// ReadStream returns up to limit events of stream with version >= from,
	// in version order. A stream that does not exist reads as empty.
	// limit <= 0 means no limit.
	ReadStream(ctx context.Context, stream string, from int64, limit int) ([]RecordedEvent, error)

	// ReadStreams reads several streams in one call (one round trip on the
	// SQL backends): for reads[i], up to limit events of its Stream with
	// version >= its From, in version order, in the result's element i.
	// A stream that does not exist reads as empty; limit <= 0 means no
	// limit. A stream named twice, an invalid stream ID, a negative From or
	// more than MaxStreamsPerRead reads is an error wrapping ErrInvalid.
	// Each stream is read as ReadStream would read it; the streams are not
	// read at one instant (a concurrent append to one may show in its
	// result while an append to another committed before it does not).
	ReadStreams(ctx context.Context, reads []StreamRead, limit int) ([][]RecordedEvent, error)

	// ReadAll returns up to limit events of the global log strictly after
	// position after that match filter, in log order. It returns only events
	// that no reader will ever see preceded by a later commit (the safe
	// prefix of the log), so a caller may checkpoint the last position it got.
	// limit <= 0 means a backend-chosen page size. A page never ends inside
	// an append: when the limit cuts one, the page goes on to the append's
	// last (matching) event, at most MaxEventsPerAppend-1 more, so a reader
	// that commits page by page never shows part of one command's events.
	// (SQL backends; KurrentDB's pages are not extended.)
	ReadAll(ctx context.Context, after Position, filter Filter, limit int) ([]RecordedEvent, error)

	// Subscribe reads the global log after position after: first what is
	// stored (catch-up), then new events as they commit (live). An idle
	// subscriber sees a new event within about 50 ms.
	Subscribe(ctx context.Context, after Position, filter Filter) (Subscription, error)

	// StreamVersion returns the version of stream: the version of its last
	// event, or 0 when the stream does not exist.
	StreamVersion(ctx context.Context, stream string) (int64, error)

	// Head returns the position of the last event in the safe prefix of the
	// global log (the zero Position for an empty log).
	Head(ctx context.Context) (Position, error)

	// DeleteStream forgets stream: its events become tombstones that no
	// reader is handed, at the same positions, and its snapshot is removed
	// (see "Deleted streams" in the package doc). It reports how many
	// events were erased (0 for a stream that does not exist).
	DeleteStream(ctx context.Context, stream string) (DeleteResult, error)

	// Close releases the store's resources. Subscriptions end with ErrClosed.
	Close() error
}

// Subscription delivers the global log to one reader. It is not safe for
// concurrent use by several goroutines.
type Subscription interface {
	// Next blocks until at least one event after the last one delivered is
	// available and returns them in log order (a non-empty batch), or returns
	// an error: ctx.Err() when ctx ends, ErrClosed when the store or the
	// subscription was closed.
	Next(ctx context.Context) ([]RecordedEvent, error)

	// Position is the position up to which the log has been scanned: every
	// event at or below it was delivered or did not match the filter. A
	// reader that checkpoints Position resumes without scanning again.
	Position() Position

	// Close ends the subscription and releases its resources.
	Close() error
}

// EventData is an event to append.
type EventData struct {
	// ID identifies the event; appending an ID that is already stored at the
	// same place of the stream is an idempotent no-op. Required.
	ID uuid.UUID
	// Type is the event's stable name, e.g. "TaskEnqueued". Required.
	Type string
	// SchemaVersion is the version of Data's schema, >= 1.
	SchemaVersion int
	// Data is the event's payload, a JSON document. Required.
	Data json.RawMessage
	// Metadata describes where the event came from.
	Metadata Metadata
}

// Metadata travels with every event.
type Metadata struct {
	// OccurredAt is when the event happened in the domain (not when it was
	// stored). Kept in UTC to the microsecond.
	OccurredAt time.Time `json:"occurredAt"`
	// CorrelationID ties together everything caused by one request.
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the ID of the command or event that caused this one.
	CausationID string `json:"causationId,omitempty"`
	// Actor is who caused the event: a player ID, "system", or an admin.
	Actor string `json:"actor,omitempty"`
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	EventData
	// Stream is the stream the event belongs to.
	Stream string
	// Version is the event's version within its stream, from 1.
	Version int64
	// Position is the event's place in the global log.
	Position Position
	// RecordedAt is when the store committed the event (the store's clock).
	RecordedAt time.Time
}

// AppendResult reports a successful append.
type AppendResult struct {
	// Version is the stream's version after the append.
	Version int64
	// Position is the global position of the last event appended.
	Position Position
	// Duplicate is true when every event was already stored (an idempotent
	// retry) and nothing was written.
	Duplicate bool
}

// StreamAppend is one append of an AppendMany call: what Append takes.
type StreamAppend struct {
	Stream   string
	Expected ExpectedVersion
	Events   []EventData
}

// StreamRead is one read of a ReadStreams call: the events of Stream from
// version From.
type StreamRead struct {
	Stream string
	From   int64
}

// ValidateReadStreams checks the reads of a ReadStreams call (see there).
func ValidateReadStreams(reads []StreamRead) error {
	if len(reads) > MaxStreamsPerRead {
		return fmt.Errorf("%w: %d reads, at most %d", ErrInvalid, len(reads), MaxStreamsPerRead)
	}
	seen := make(map[string]bool, len(reads))
	for _, r := range reads {
		if err := ValidateStreamID(r.Stream); err != nil {
			return err
		}
		if r.From < 0 {
			return fmt.Errorf("%w: stream %s from version %d is negative", ErrInvalid, r.Stream, r.From)
		}
		if seen[r.Stream] {
			return fmt.Errorf("%w: stream %s is read twice", ErrInvalid, r.Stream)
		}
		seen[r.Stream] = true
	}
	return nil
}

// ReadStreamsOneByOne implements ReadStreams with one ReadStream per read,
// for backends without a multi-stream query (KurrentDB).
func ReadStreamsOneByOne(ctx context.Context, s interface {
	ReadStream(ctx context.Context, stream string, from int64, limit int) ([]RecordedEvent, error)
}, reads []StreamRead, limit int) ([][]RecordedEvent, error) {
	if err := ValidateReadStreams(reads); err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), err)
	}
	out := make([][]RecordedEvent, len(reads))
	for i, r := range reads {
		evs, err := s.ReadStream(ctx, r.Stream, r.From, limit)
		if err != nil {
			return nil, err
		}
		out[i] = evs
	}
	return out, nil
}

// AppendOutcome is the outcome of one StreamAppend: the AppendResult
// Append would have returned, or, when Err is not nil, the error it would
// have returned (then none of the append's events was stored).
type AppendOutcome struct {
	AppendResult
	Err error
}

// Filter selects events of the global log. The zero Filter selects all.
// An event matches when it matches every non-empty field.
type Filter struct {
	// EventTypes keeps events whose type is one of these.
	EventTypes []string
	// StreamPrefixes keeps events whose stream ID starts with one of these.
	StreamPrefixes []string
	// Streams keeps events of exactly these streams.
	Streams []string
}

// IsZero reports whether f selects every event.
func (f Filter) IsZero() bool {
	return len(f.EventTypes) == 0 && len(f.StreamPrefixes) == 0 && len(f.Streams) == 0
}

// Match reports whether e is selected by f.
func (f Filter) Match(stream, eventType string) bool {
	if len(f.EventTypes) > 0 && !contains(f.EventTypes, eventType) {
		return false
	}
	if len(f.Streams) > 0 && !contains(f.Streams, stream) {
		return false
	}
	if len(f.StreamPrefixes) > 0 {
		ok := false
		for _, p := range f.StreamPrefixes {
			if strings.HasPrefix(stream, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Position is a place in the global log. Positions are totally ordered by
// (Commit, Seq); the zero Position is before the first event.
//
// What the two parts mean is the backend's business: PostgreSQL uses the
// writing transaction's ID and a sequence number, KurrentDB its commit and
// prepare positions, SQLite leaves Commit at 0 and counts events in Seq.
// Callers only compare, store and print positions.
type Position struct {
	Commit uint64
	Seq    uint64
}

// Start is the position before the first event of the log.
var Start = Position{}

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Seq < q.Seq:
		return -1
	case p.Seq > q.Seq:
		return 1
	}
	return 0
}

// Less reports whether p is before q.
func (p Position) Less(q Position) bool { return p.Compare(q) < 0 }

// IsZero reports whether p is Start.
func (p Position) IsZero() bool { return p == Position{} }

// String formats p as "Seq" when Commit is 0 and as "Commit:Seq" otherwise.
// ParsePosition reads both forms back.
func (p Position) String() string {
	if p.Commit == 0 {
		return strconv.FormatUint(p.Seq, 10)
	}
	return strconv.FormatUint(p.Commit, 10) + ":" + strconv.FormatUint(p.Seq, 10)
}

// ParsePosition parses the form written by Position.String.
func ParsePosition(s string) (Position, error) {
	commit, seq, found := strings.Cut(s, ":")
	if !found {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Position{}, fmt.Errorf("%w: position %q is not a number or \"commit:seq\"", ErrInvalid, s)
		}
		return Position{Seq: n}, nil
	}
	c, err1 := strconv.ParseUint(commit, 10, 64)
	n, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("%w: position %q is not a number or \"commit:seq\"", ErrInvalid, s)
	}
	return Position{Commit: c, Seq: n}, nil
}

// MarshalText encodes p with String, so positions travel in JSON as strings.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes the form written by MarshalText.
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ExpectedVersion is the condition an Append puts on the stream's version.
// Build one with Any, NoStream, StreamExists or Exact.
type ExpectedVersion struct {
	kind expectKind
	n    int64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

var (
	// Any appends whatever the stream's version.
	Any = ExpectedVersion{kind: expectAny}
	// NoStream appends only if the stream has no events.
	NoStream = ExpectedVersion{kind: expectNoStream}
	// StreamExists appends only if the stream has at least one event.
	StreamExists = ExpectedVersion{kind: expectStreamExists}
)

// Exact appends only if the stream's version is n. Exact(0) is NoStream.
// A negative n is invalid: Append rejects it with ErrInvalid.
func Exact(n int64) ExpectedVersion { return ExpectedVersion{kind: expectExact, n: n} }

// Version returns n and true for Exact(n) (0 for NoStream), and false for
// Any and StreamExists.
func (e ExpectedVersion) Version() (int64, bool) {
	switch e.kind {
	case expectExact:
		return e.n, true
	case expectNoStream:
		return 0, true
	}
	return 0, false
}

// Check reports whether a stream at version actual satisfies e.
func (e ExpectedVersion) Check(actual int64) bool {
	switch e.kind {
	case expectAny:
		return true
	case expectNoStream:
		return actual == 0
	case expectStreamExists:
		return actual > 0
	default:
		return actual == e.n
	}
}

// IsAny reports whether e is Any.
func (e ExpectedVersion) IsAny() bool { return e.kind == expectAny }

// IsStreamExists reports whether e is StreamExists.
func (e ExpectedVersion) IsStreamExists() bool { return e.kind == expectStreamExists }

func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	default:
		return strconv.FormatInt(e.n, 10)
	}
}

// Validate reports whether e is well formed.
func (e ExpectedVersion) Validate() error {
	if e.kind == expectExact && e.n < 0 {
		return fmt.Errorf("%w: expected version %d is negative", ErrInvalid, e.n)
	}
	if e.kind > expectExact {
		return fmt.Errorf("%w: unknown expected version", ErrInvalid)
	}
	return nil
}

var (
	// ErrInvalid is wrapped by every error about bad input: nothing was written.
	ErrInvalid = errors.New("invalid input")
	// ErrClosed is returned by a closed store or subscription.
	ErrClosed = errors.New("event store closed")
	// ErrWrongVersion is matched (errors.Is) by every *WrongVersionError.
	ErrWrongVersion = errors.New("wrong expected version")
)

// WrongVersionError reports an Append whose expected version did not match.
type WrongVersionError struct {
	Stream   string
	Expected ExpectedVersion
	Actual   int64
}

func (e *WrongVersionError) Error() string {
	return fmt.Sprintf("stream %q: expected version %s, actual %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongVersion) true.
func (e *WrongVersionError) Is(target error) bool { return target == ErrWrongVersion }

// Limits on input, shared by every backend.
const (
	MaxStreamIDLength  = 256
	MaxEventTypeLength = 128
	// MaxEventsPerAppend bounds one atomic append.
	MaxEventsPerAppend = 1000
	// MaxStreamsPerAppendMany bounds the appends of one AppendMany call.
	MaxStreamsPerAppendMany = 1000
	// MaxStreamsPerRead bounds the reads of one ReadStreams call.
	MaxStreamsPerRead = 1000
	// MaxEventDataSize bounds one event's JSON data.
	MaxEventDataSize = 1 << 20
)

// ValidateStreamID reports whether id may name a stream: non-empty, at most
// MaxStreamIDLength bytes of valid UTF-8 with no control characters, not
// starting with DeletedStreamPrefix.
func ValidateStreamID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: stream ID is empty", ErrInvalid)
	case len(id) > MaxStreamIDLength:
		return fmt.Errorf("%w: stream ID is %d bytes, over the limit of %d", ErrInvalid, len(id), MaxStreamIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: stream ID is not valid UTF-8", ErrInvalid)
	case IsDeletedStream(id):
		return fmt.Errorf("%w: stream ID %q names the tombstones of a deleted stream", ErrInvalid, id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: stream ID %q has a control character", ErrInvalid, id)
		}
	}
	return nil
}

// ValidateAppend checks an append's input and returns the events normalized
// as they will be stored (OccurredAt in UTC, to the microsecond; a zero
// SchemaVersion becomes 1). Backends call it before writing anything.
func ValidateAppend(stream string, expected ExpectedVersion, events []EventData) ([]EventData, error) {
	if err := ValidateStreamID(stream); err != nil {
		return nil, err
	}
	if err := expected.Validate(); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: no events to append to %q", ErrInvalid, stream)
	}
	if len(events) > MaxEventsPerAppend {
		return nil, fmt.Errorf("%w: %d events in one append, over the limit of %d", ErrInvalid, len(events), MaxEventsPerAppend)
	}
	out := make([]EventData, len(events))
	seen := make(map[uuid.UUID]bool, len(events))
	for i, e := range events {
		switch {
		case e.ID == uuid.Nil:
			return nil, fmt.Errorf("%w: event %d has no ID", ErrInvalid, i)
		case seen[e.ID]:
			return nil, fmt.Errorf("%w: event %d repeats ID %s", ErrInvalid, i, e.ID)
		case e.Type == "":
			return nil, fmt.Errorf("%w: event %d has no type", ErrInvalid, i)
		case len(e.Type) > MaxEventTypeLength || !utf8.ValidString(e.Type):
			return nil, fmt.Errorf("%w: event %d type is not valid UTF-8 of at most %d bytes", ErrInvalid, i, MaxEventTypeLength)
		case e.Type == DeletedType:
			return nil, fmt.Errorf("%w: event %d has the tombstones' type %s", ErrInvalid, i, DeletedType)
		case e.SchemaVersion < 0:
			return nil, fmt.Errorf("%w: event %d has negative schema version %d", ErrInvalid, i, e.SchemaVersion)
		case len(e.Data) == 0:
			return nil, fmt.Errorf("%w: event %d (%s) has no data", ErrInvalid, i, e.Type)
		case len(e.Data) > MaxEventDataSize:
			return nil, fmt.Errorf("%w: event %d (%s) data is %d bytes, over the limit of %d", ErrInvalid, i, e.Type, len(e.Data), MaxEventDataSize)
		case !json.Valid(e.Data):
			return nil, fmt.Errorf("%w: event %d (%s) data is not valid JSON", ErrInvalid, i, e.Type)
		}
		seen[e.ID] = true
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		e.Metadata.OccurredAt = e.Metadata.OccurredAt.UTC().Truncate(time.Microsecond)
		out[i] = e
	}
	return out, nil
}

// ValidateAppendMany checks what makes appends one AppendMany call: at
// most MaxStreamsPerAppendMany appends, no stream and no event ID in two
// of them. It does not check each append (ValidateAppend does, for that
// append's outcome). Backends call it before writing anything; an error
// fails the whole call.
func ValidateAppendMany(appends []StreamAppend) error {
	if len(appends) > MaxStreamsPerAppendMany {
		return fmt.Errorf("%w: %d appends in one call, over the limit of %d", ErrInvalid, len(appends), MaxStreamsPerAppendMany)
	}
	streams := make(map[string]int, len(appends))
	ids := make(map[uuid.UUID]int)
	for i, a := range appends {
		if j, ok := streams[a.Stream]; ok {
			return fmt.Errorf("%w: appends %d and %d of one call are both to stream %q", ErrInvalid, j, i, a.Stream)
		}
		streams[a.Stream] = i
		for _, e := range a.Events {
			if j, ok := ids[e.ID]; ok && j != i && e.ID != uuid.Nil {
				return fmt.Errorf("%w: event ID %s is in appends %d and %d of one call", ErrInvalid, e.ID, j, i)
			}
			ids[e.ID] = i
		}
	}
	return nil
}

// IdempotentMatch decides an append whose expected version did not match:
// if the events stored in the stream from version from on carry exactly the
// IDs of events, in order, the append is a retry that already happened and
// IdempotentMatch returns true. stored must be the stream's events from
// version from, at least len(events) of them if there are that many.
func IdempotentMatch(stored []RecordedEvent, events []EventData) bool {
	if len(stored) < len(events) {
		return false
	}
	for i, e := range events {
		if stored[i].ID != e.ID {
			return false
		}
	}
	return true
}
