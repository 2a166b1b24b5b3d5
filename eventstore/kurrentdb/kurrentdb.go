// Package kurrentdb is eventstore.Store on a KurrentDB (EventStoreDB)
// server, through github.com/EventStore/EventStore-Client-Go/v4/esdb over
// gRPC. It needs KurrentDB or EventStoreDB 22.6 or later (older servers
// report no global position for events read from a stream).
//
// # Mapping
//
//   - Streams map one to one to KurrentDB streams, under an optional
//     namespace prefix (Config.Namespace). Stream IDs starting with '$'
//     are KurrentDB's system streams and are rejected as invalid input.
//   - Versions count from 1, KurrentDB revisions from 0: version v is
//     revision v-1, Exact(n) expects revision n-1, Exact(0) and NoStream
//     expect no stream, Any and StreamExists map to the same names.
//   - A wrong expected version becomes *eventstore.WrongVersionError. The
//     client keeps the actual revision only in its error text, which is
//     parsed; when that fails the stream's version is read instead.
//   - Positions are $all positions: Commit is the commit position, Seq the
//     prepare position. $all holds only committed events, in one order, so
//     the whole log is the safe prefix and no reader ever skips an event.
//     The server answers an append with its commit position only; for an
//     append of several events Append reads the last one back (one more
//     round trip) so AppendResult.Position is that event's $all position.
//   - Data is stored as JSON content; the metadata (schema version,
//     occurred-at, correlation and causation IDs, actor) as JSON in the
//     event's user metadata, the IDs under KurrentDB's own keys
//     "$correlationId" and "$causationId".
//   - KurrentDB's own events (type or stream starting with '$') never
//     appear in ReadAll, Subscribe or Head.
//
// # Idempotency, and how it differs from the port
//
// KurrentDB deduplicates by event ID itself: with an expected revision it
// compares the IDs stored from that revision on and acknowledges a full
// match without writing (a partial match is a wrong expected version);
// with Any it only checks a cache of recent writes. It reports neither as a
// duplicate, and it allows the same ID in different streams. To keep the
// port's rules, Append first reads the stream's last IdempotencyWindow
// events (one extra round trip per append) and decides retries itself from
// them (Duplicate set, the stored result returned, ErrInvalid for an ID
// stored at another place). What remains different:
//
//   - An ID stored in ANOTHER stream is not detected: KurrentDB has no index
//     by event ID, so the append writes the ID a second time.
//   - With Any or StreamExists, an ID stored further back than the window
//     is left to the server's best-effort cache.
//   - An append cancelled or timed out after the request left may or may
//     not have been applied (it is atomic either way); a retry with the
//     same IDs then resolves it.
//
// # AppendMany: one append per stream
//
// KurrentDB has no transaction across streams, and this client (v4) only
// appends to one stream per request. AppendMany therefore sends each of
// its appends as an Append of its own (up to manyInFlight at once), which
// keeps what the port promises per stream (atomic, checked against its
// expected version, idempotent, its own outcome) and gives up what it
// promises for the call on the SQL backends:
//
//   - The appends are not one commit: subscribers may see some of them
//     before the others, and wake up once per append.
//   - A failure stops no other append: an outcome may carry an
//     infrastructure error (the server unreachable, the context ended),
//     after which that stream's events may or may not be stored, while the
//     other appends of the call are. The call itself fails (and sends
//     nothing) only when it is invalid, the store is closed or its context
//     has already ended. Retrying the whole call with the same events is
//     safe, as with Append.
//
// # Reads and subscriptions
//
// ReadAll pages through $all forward and filters on the client (this
// client's ReadAll has no server-side filter). Subscribe subscribes to $all
// from an explicit position (the client's default is the END of the log)
// with a server-side filter on stream names or event types (see
// serverFilter); whatever the server cannot filter is filtered on the
// client. The server's checkpoints move Subscription.Position past
// filtered events. A dropped subscription resubscribes from the last
// position it saw.
//
// # Contract tests
//
// No KurrentDB server runs on the CI machine, and no fake one is used.
// The contract suite runs only when TASKQUEUE_TEST_KURRENTDB_URL names a
// real server (and is skipped otherwise; TASKQUEUE_TEST_REQUIRE_KURRENTDB=1
// turns the skip into a failure):
//
//	docker run -d --name kurrentdb -p 2113:2113 \
//	    docker.kurrent.io/kurrent-latest/kurrentdb:latest --insecure --run-projections=None
//	TASKQUEUE_TEST_KURRENTDB_URL='esdb://127.0.0.1:2113?tls=false' \
//	    go test -race ./eventstore/kurrentdb
//
// Each test gets a namespace of its own (a random stream-name prefix), so
// a server can be reused across runs. The pure mappings (versions,
// positions, errors, filters, metadata, idempotency) have unit tests that
// always run.
package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/taskqueue/taskqueue/eventstore"
)

const (
	// IdempotencyWindow is how many of a stream's last events Append reads
	// to recognize a retry (see the package doc).
	IdempotencyWindow = 64
	// defaultPage is ReadAll's page size when limit <= 0.
	defaultPage = 500
	// allPage is how many $all events one ReadAll request reads.
	allPage = 512
	// manyInFlight is how many appends of one AppendMany call are sent at
	// once.
	manyInFlight = 16
)

// Config says how to reach the server.
type Config struct {
	// URL is the connection string, e.g. "esdb://127.0.0.1:2113?tls=false"
	// (TASKQUEUE_KURRENTDB_URL). KurrentDB's newer schemes kurrentdb:// and
	// kurrentdb+discover:// are accepted too. Required.
	URL string
	// Namespace, when set, prefixes every stream name on the server and
	// confines reads of the global log to streams under it, so several
	// stores (or test runs) can share one server. Changing it hides every
	// event written under the old one. Default: none.
	Namespace string
	// Logger receives the client's log lines (discovery, reconnects,
	// dropped subscriptions). Default: slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("kurrentdb: URL is required"))
	}
	if strings.HasPrefix(c.Namespace, "$") {
		errs = append(errs, fmt.Errorf("kurrentdb: namespace %q starts with '$', which KurrentDB keeps for system streams", c.Namespace))
	}
	return errors.Join(errs...)
}

// Store is eventstore.Store on KurrentDB. It is safe for concurrent use.
type Store struct {
	client *esdb.Client
	ns     string

	closed chan struct{}
	once   sync.Once
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the server cfg names and checks that it answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open kurrentdb event store: %w", err)
	}
	conf, err := esdb.ParseConnectionString(clientURL(cfg.URL))
	if err != nil {
		return nil, fmt.Errorf("open kurrentdb event store: parse URL: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	conf.Logger = slogLogging(logger)
	client, err := esdb.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("open kurrentdb event store: %w", err)
	}
	s := &Store{client: client, ns: cfg.Namespace, closed: make(chan struct{})}
	if err := s.ping(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("open kurrentdb event store: %w", err)
	}
	return s, nil
}

// ping reads the last record of $all, whatever it is: the server answers.
func (s *Store) ping(ctx context.Context) error {
	rs, err := s.client.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return err
	}
	defer rs.Close()
	if _, err := rs.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Close closes the client. Subscriptions end with eventstore.ErrClosed.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.client.Close()
	})
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// fail maps a client error: ErrClosed once the store is closed, the
// context's error when it ended, else err.
func (s *Store) fail(ctx context.Context, err error) error {
	switch {
	case s.isClosed() || isClosed(err):
		return eventstore.ErrClosed
	case ctx.Err() != nil:
		return errors.Join(ctx.Err(), err)
	}
	return err
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	n := len(events)
	events, err := eventstore.ValidateAppend(stream, expected, events)
	if err == nil && strings.HasPrefix(stream, "$") {
		err = fmt.Errorf("%w: stream ID %q starts with '$', which KurrentDB keeps for system streams", eventstore.ErrInvalid, stream)
	}
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", n, stream, err)
	}
	if s.isClosed() {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", n, stream, eventstore.ErrClosed)
	}
	res, err := s.append(ctx, stream, expected, events)
	if err != nil {
		return res, fmt.Errorf("append %d events to %s: %w", n, stream, err)
	}
	return res, nil
}

// AppendMany implements eventstore.Store without a multi-stream
// transaction, which KurrentDB does not offer: each append is an Append of
// its own (atomic, idempotent, checked against its expected version), at
// most manyInFlight at a time. See the package doc for what that gives up.
func (s *Store) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	if err := eventstore.ValidateAppendMany(appends); err != nil {
		return nil, fmt.Errorf("append to %d streams: %w", len(appends), err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("append to %d streams: %w", len(appends), eventstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("append to %d streams: %w", len(appends), err)
	}
	outs := make([]eventstore.AppendOutcome, len(appends))
	slots := make(chan struct{}, manyInFlight)
	var wg sync.WaitGroup
	for i, a := range appends {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			outs[i].AppendResult, outs[i].Err = s.Append(ctx, a.Stream, a.Expected, a.Events...)
		}()
	}
	wg.Wait()
	return outs, nil
}

func (s *Store) append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	name := s.ns + stream
	tail, err := s.readStream(ctx, name, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, IdempotencyWindow)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("read stream tail: %w", s.fail(ctx, err))
	}
	reverse(tail)
	var current int64
	if len(tail) > 0 {
		current = tail[len(tail)-1].Version
	}
	// A late retry of Exact(n) whose place lies before the tail.
	if n, ok := expected.Version(); ok && len(tail) > 0 && n+1 < tail[0].Version {
		placed, err := s.readStream(ctx, name, esdb.ReadStreamOptions{From: streamFrom(n + 1)}, uint64(len(events)))
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("read stream at %d: %w", n+1, s.fail(ctx, err))
		}
		if eventstore.IdempotentMatch(placed, events) {
			last := placed[len(events)-1]
			return eventstore.AppendResult{Version: last.Version, Position: last.Position, Duplicate: true}, nil
		}
	}
	if dup, res, err := idempotencyVerdict(stream, expected, current, tail, events); err != nil || dup {
		return res, err
	}
	if !expected.Check(current) {
		// The version read above is a real state of the stream: reject
		// without a round trip the server would reject anyway.
		return eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: current}
	}
	data := make([]esdb.EventData, len(events))
	for i, e := range events {
		if data[i], err = encodeEvent(e); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	wr, err := s.client.AppendToStream(ctx, name, esdb.AppendToStreamOptions{ExpectedRevision: expectedRevision(expected)}, data...)
	if err != nil {
		if isWrongVersion(err) {
			actual, ok := actualVersion(err)
			if !ok {
				if actual, err = s.StreamVersion(ctx, stream); err != nil {
					return eventstore.AppendResult{}, fmt.Errorf("wrong expected version %s: %w", expected, err)
				}
			}
			return eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: actual}
		}
		return eventstore.AppendResult{}, s.fail(ctx, err)
	}
	res := eventstore.AppendResult{
		Version:  versionOf(wr.NextExpectedVersion),
		Position: toPosition(esdb.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition}),
	}
	if len(events) > 1 {
		// The server reports the write's commit position as both parts,
		// which for several events is not the last event's place in $all
		// (its prepare position differs). Read the last event back, so the
		// result equals what readers and a later idempotent retry see.
		last, err := s.readStream(ctx, name, esdb.ReadStreamOptions{From: esdb.Revision(wr.NextExpectedVersion)}, 1)
		if err == nil && len(last) == 1 && last[0].ID == events[len(events)-1].ID && last[0].Position.Seq != noPosition {
			res.Position = last[0].Position
		}
	}
	return res, nil
}

func reverse(evs []eventstore.RecordedEvent) {
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
}

// readStream reads up to count events of the server stream name. A stream
// that does not exist reads as empty.
func (s *Store) readStream(ctx context.Context, name string, opts esdb.ReadStreamOptions, count uint64) ([]eventstore.RecordedEvent, error) {
	rs, err := s.client.ReadStream(ctx, name, opts, count)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	defer rs.Close()
	var out []eventstore.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		if ev.Event == nil {
			continue
		}
		out = append(out, decodeEvent(ev.Event, s.ns))
	}
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if from < 0 {
		return nil, fmt.Errorf("read stream %s: %w: from version %d is negative", stream, eventstore.ErrInvalid, from)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrClosed)
	}
	count := uint64(noPosition)
	if limit > 0 {
		count = uint64(limit)
	}
	evs, err := s.readStream(ctx, s.ns+stream, esdb.ReadStreamOptions{From: streamFrom(from)}, count)
	if err != nil {
		return nil, fmt.Errorf("read stream %s from %d: %w", stream, from, s.fail(ctx, err))
	}
	return evs, nil
}

// ReadStreams implements eventstore.Store with one stream read per stream
// (KurrentDB has no multi-stream read).
func (s *Store) ReadStreams(ctx context.Context, reads []eventstore.StreamRead, limit int) ([][]eventstore.RecordedEvent, error) {
	return eventstore.ReadStreamsOneByOne(ctx, s, reads, limit)
}

// StreamVersion implements eventstore.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return 0, fmt.Errorf("read version of %s: %w", stream, err)
	}
	if s.isClosed() {
		return 0, fmt.Errorf("read version of %s: %w", stream, eventstore.ErrClosed)
	}
	last, err := s.readStream(ctx, s.ns+stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return 0, fmt.Errorf("read version of %s: %w", stream, s.fail(ctx, err))
	}
	if len(last) == 0 {
		return 0, nil
	}
	return last[0].Version, nil
}

// ours reports whether an event of $all belongs to this store's log.
func (s *Store) ours(r *esdb.RecordedEvent) bool {
	return !isSystem(r.StreamID, r.EventType) && strings.HasPrefix(r.StreamID, s.ns)
}

// ReadAll implements eventstore.Store. It filters on the client, paging
// through $all until it has limit events or reaches the end.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, filter eventstore.Filter, limit int) ([]eventstore.RecordedEvent, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("read all after %s: %w", after, eventstore.ErrClosed)
	}
	if limit <= 0 {
		limit = defaultPage
	}
	var out []eventstore.RecordedEvent
	cursor := after
	for len(out) < limit {
		page, n, err := s.readAllPage(ctx, cursor)
		if err != nil {
			return nil, fmt.Errorf("read all after %s: %w", cursor, s.fail(ctx, err))
		}
		for _, r := range page {
			pos := toPosition(r.Position)
			if !cursor.Less(pos) {
				continue // reading from a position includes it
			}
			cursor = pos
			if !s.ours(r) {
				continue
			}
			e := decodeEvent(r, s.ns)
			if !filter.Match(e.Stream, e.Type) {
				continue
			}
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
		if n < allPage {
			break // the end of $all
		}
	}
	return out, nil
}

// readAllPage reads allPage events of $all forward from pos (inclusive)
// and reports how many the server returned.
func (s *Store) readAllPage(ctx context.Context, pos eventstore.Position) ([]*esdb.RecordedEvent, int, error) {
	rs, err := s.client.ReadAll(ctx, esdb.ReadAllOptions{From: fromPosition(pos)}, allPage)
	if err != nil {
		return nil, 0, err
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	n := 0
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, n, nil
		}
		if err != nil {
			return nil, 0, err
		}
		n++
		if ev.Event != nil {
			out = append(out, ev.Event)
		}
	}
}

// Head implements eventstore.Store: the position of the last event of
// this store's log, read backwards from the end of $all past KurrentDB's
// own events and other namespaces. On a server shared by many namespaces
// that is a scan back to this namespace's last event (to the start of $all
// for an empty one).
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if s.isClosed() {
		return eventstore.Position{}, fmt.Errorf("read head: %w", eventstore.ErrClosed)
	}
	var from esdb.AllPosition = esdb.End{}
	for {
		rs, err := s.client.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: from}, allPage)
		if err != nil {
			return eventstore.Position{}, fmt.Errorf("read head: %w", s.fail(ctx, err))
		}
		n := 0
		var last *esdb.RecordedEvent
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rs.Close()
				return eventstore.Position{}, fmt.Errorf("read head: %w", s.fail(ctx, err))
			}
			n++
			if ev.Event == nil {
				continue
			}
			if s.ours(ev.Event) {
				rs.Close()
				return toPosition(ev.Event.Position), nil
			}
			last = ev.Event
		}
		rs.Close()
		if n < allPage || last == nil {
			return eventstore.Position{}, nil
		}
		// Reading backwards from a position includes it; the event there
		// is not ours, so reading it again is harmless.
		from = last.Position
	}
}
