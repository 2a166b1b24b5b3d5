package kurrentdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

var expectedRevisions = []struct {
	in   eventstore.ExpectedVersion
	want esdb.ExpectedRevision
}{
	{eventstore.Any, esdb.Any{}},
	{eventstore.NoStream, esdb.NoStream{}},
	{eventstore.StreamExists, esdb.StreamExists{}},
	{eventstore.Exact(0), esdb.NoStream{}},
	{eventstore.Exact(1), esdb.Revision(0)},
	{eventstore.Exact(42), esdb.Revision(41)},
}

func TestExpectedRevision(t *testing.T) {
	for _, tc := range expectedRevisions {
		if got := expectedRevision(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expectedRevision(%v) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestVersionsAndStreamPositions(t *testing.T) {
	if v := versionOf(0); v != 1 {
		t.Errorf("versionOf(0) = %d, want 1", v)
	}
	if v := versionOf(41); v != 42 {
		t.Errorf("versionOf(41) = %d, want 42", v)
	}
	for from, want := range map[int64]esdb.StreamPosition{0: esdb.Start{}, 1: esdb.Start{}, 2: esdb.Revision(1), 10: esdb.Revision(9)} {
		if got := streamFrom(from); !reflect.DeepEqual(got, want) {
			t.Errorf("streamFrom(%d) = %#v, want %#v", from, got, want)
		}
	}
}

func TestPositions(t *testing.T) {
	if got := fromPosition(eventstore.Start); !reflect.DeepEqual(got, esdb.Start{}) {
		t.Errorf("fromPosition(Start) = %#v, want the start of $all (never the client's default, the end)", got)
	}
	p := esdb.Position{Commit: 7315, Prepare: 7300}
	ours := toPosition(p)
	if ours != (eventstore.Position{Commit: 7315, Seq: 7300}) {
		t.Errorf("toPosition(%v) = %v", p, ours)
	}
	if back := fromPosition(ours); !reflect.DeepEqual(back, p) {
		t.Errorf("fromPosition(toPosition(%v)) = %#v", p, back)
	}
	// $all's order, (commit, prepare), is kept.
	order := []esdb.Position{{Commit: 10, Prepare: 10}, {Commit: 20, Prepare: 12}, {Commit: 20, Prepare: 15}, {Commit: 21, Prepare: 21}}
	for i := 1; i < len(order); i++ {
		if !toPosition(order[i-1]).Less(toPosition(order[i])) {
			t.Errorf("%v is not before %v once mapped", order[i-1], order[i])
		}
	}
}

var wrongVersionMessages = []struct {
	msg    string
	actual int64
	ok     bool
}{
	// The texts esdb v4.2.0 builds (client.go AppendToStream, errors.go).
	{"[ErrorCodeWrongExpectedVersion] an append request failed the optimistic concurrency on the server: wrong expected version: expecting '3' but got '7'", 8, true},
	{"[ErrorCodeWrongExpectedVersion] an append request failed the optimistic concurrency on the server: wrong expected version: expecting 'no_stream' but got '0'", 1, true},
	{"[ErrorCodeWrongExpectedVersion] an append request failed the optimistic concurrency on the server: wrong expected version: expecting 'stream_exists' but got 'no_stream'", 0, true},
	{"[ErrorCodeWrongExpectedVersion] an append request failed the optimistic concurrency on the server", 0, false},
	{"wrong expected version: expecting '1' but got 'many'", 0, false},
}

func TestParseActualVersion(t *testing.T) {
	for _, tc := range wrongVersionMessages {
		got, ok := parseActualVersion(tc.msg)
		if got != tc.actual || ok != tc.ok {
			t.Errorf("parseActualVersion(%q) = %d, %v; want %d, %v", tc.msg, got, ok, tc.actual, tc.ok)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	plain := errors.New("wrong expected version: expecting '1' but got '2'")
	if _, ok := actualVersion(plain); ok {
		t.Error("actualVersion accepted an error that is not the client's wrong expected version")
	}
	unknown, _ := esdb.FromError(plain)
	for name, is := range map[string]func(error) bool{"isWrongVersion": isWrongVersion, "isNotFound": isNotFound, "isClosed": isClosed} {
		if is(unknown) || is(fmt.Errorf("wrapped: %w", unknown)) || is(plain) {
			t.Errorf("%s is true for an unclassified error", name)
		}
	}
	if errorCode(fmt.Errorf("wrapped: %w", unknown)) != esdb.ErrorCodeUnknown {
		t.Error("errorCode does not see through wrapping")
	}
}

var systemEvents = []struct {
	stream, typ string
	system      bool
}{
	{"queue-alice", "TaskEnqueued", false},
	{"$stats-127.0.0.1:2113", "$statsCollected", true},
	{"queue-alice", "$metadata", true},
	{"$$queue-alice", "$metadata", true},
	{"$ce-queue", "$>", true},
}

func TestIsSystem(t *testing.T) {
	for _, tc := range systemEvents {
		if got := isSystem(tc.stream, tc.typ); got != tc.system {
			t.Errorf("isSystem(%q, %q) = %v, want %v", tc.stream, tc.typ, got, tc.system)
		}
	}
}

func TestServerFilter(t *testing.T) {
	cases := []struct {
		name      string
		filter    eventstore.Filter
		namespace string
		want      esdb.SubscriptionFilter
		// match and miss are names the server-side filter must accept and refuse.
		match, miss []string
	}{
		{"all", eventstore.Filter{}, "", *esdb.ExcludeSystemEventsFilter(), []string{"TaskEnqueued"}, []string{"$statsCollected", "$>"}},
		{"types", eventstore.Filter{EventTypes: []string{"Task.Done", "A+B"}}, "",
			esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: `^(?:Task\.Done|A\+B)$`},
			[]string{"Task.Done", "A+B"}, []string{"TaskXDone", "Task.Done2", "AAB", "xA+B"}},
		{"prefixes", eventstore.Filter{StreamPrefixes: []string{"queue-", "player-"}}, "ns1-",
			esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"ns1-queue-", "ns1-player-"}}, nil, nil},
		{"streams", eventstore.Filter{Streams: []string{"queue-a"}, EventTypes: []string{"X"}}, "ns1-",
			esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: `^(?:ns1-queue-a)$`},
			[]string{"ns1-queue-a"}, []string{"queue-a", "ns1-queue-ab"}},
		{"namespace", eventstore.Filter{EventTypes: []string{"X"}}, "ns1-",
			esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"ns1-"}}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := serverFilter(tc.filter, tc.namespace)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("serverFilter = %+v, want %+v", *got, tc.want)
			}
			if got.Regex == "" {
				return
			}
			re := regexp.MustCompile(got.Regex)
			for _, m := range tc.match {
				if !re.MatchString(m) {
					t.Errorf("regex %s refuses %q", got.Regex, m)
				}
			}
			for _, m := range tc.miss {
				if re.MatchString(m) {
					t.Errorf("regex %s accepts %q", got.Regex, m)
				}
			}
		})
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	in := eventstore.EventData{
		ID:            uuid.New(),
		Type:          "TaskEnqueued",
		SchemaVersion: 3,
		Data:          json.RawMessage(`{"b":1,  "a":"é"}`),
		Metadata: eventstore.Metadata{
			OccurredAt:    time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC),
			CorrelationID: "corr-1", CausationID: "cmd-9", Actor: "alice",
		},
	}
	wire, err := encodeEvent(in)
	if err != nil {
		t.Fatal(err)
	}
	if wire.EventID != in.ID || wire.EventType != in.Type || wire.ContentType != esdb.ContentTypeJson || string(wire.Data) != string(in.Data) {
		t.Fatalf("encodeEvent = %+v", wire)
	}
	var keys map[string]any
	if err := json.Unmarshal(wire.Metadata, &keys); err != nil {
		t.Fatalf("metadata is not JSON: %v", err)
	}
	if keys["$correlationId"] != "corr-1" || keys["$causationId"] != "cmd-9" {
		t.Errorf("metadata %s lacks KurrentDB's $correlationId / $causationId keys", wire.Metadata)
	}
	recorded := &esdb.RecordedEvent{
		EventID: wire.EventID, EventType: wire.EventType, StreamID: "ns1-queue-alice", EventNumber: 4,
		Position: esdb.Position{Commit: 900, Prepare: 880}, CreatedDate: time.Date(2026, 3, 14, 16, 0, 0, 0, time.FixedZone("x", 3600)),
		Data: wire.Data, UserMetadata: wire.Metadata,
	}
	out := decodeEvent(recorded, "ns1-")
	if !reflect.DeepEqual(out.EventData, in) {
		t.Errorf("decoded %+v, want %+v", out.EventData, in)
	}
	if out.Stream != "queue-alice" || out.Version != 5 || out.Position != (eventstore.Position{Commit: 900, Seq: 880}) ||
		!out.RecordedAt.Equal(recorded.CreatedDate) || out.RecordedAt.Location() != time.UTC {
		t.Errorf("decoded %+v", out)
	}
}

func TestDecodeForeignEvent(t *testing.T) {
	out := decodeEvent(&esdb.RecordedEvent{EventID: uuid.New(), EventType: "Other", StreamID: "x", UserMetadata: []byte("not json")}, "")
	if out.SchemaVersion != 1 || out.Metadata != (eventstore.Metadata{}) || out.Version != 1 {
		t.Errorf("a foreign event decodes as %+v, want schema version 1 and empty metadata", out)
	}
}

// stored builds a stream tail of the given IDs from version first on.
func stored(first int64, ids ...uuid.UUID) []eventstore.RecordedEvent {
	out := make([]eventstore.RecordedEvent, len(ids))
	for i, id := range ids {
		out[i] = eventstore.RecordedEvent{
			EventData: eventstore.EventData{ID: id},
			Version:   first + int64(i),
			Position:  eventstore.Position{Commit: uint64(100 * (first + int64(i))), Seq: uint64(100 * (first + int64(i)))},
		}
	}
	return out
}

func data(ids ...uuid.UUID) []eventstore.EventData {
	out := make([]eventstore.EventData, len(ids))
	for i, id := range ids {
		out[i] = eventstore.EventData{ID: id}
	}
	return out
}

func TestIdempotencyVerdict(t *testing.T) {
	a, b, c, d, x := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	tail := stored(3, a, b, c, d) // versions 3..6
	cases := []struct {
		name     string
		expected eventstore.ExpectedVersion
		events   []eventstore.EventData
		dup      bool
		version  int64
		err      error
	}{
		{"new events", eventstore.Exact(6), data(x), false, 0, nil},
		{"exact retry", eventstore.Exact(3), data(b, c), true, 5, nil},
		{"exact retry at the wrong place", eventstore.Exact(2), data(b, c), false, 0, eventstore.ErrWrongVersion},
		{"any retry", eventstore.Any, data(c, d), true, 6, nil},
		{"stream exists retry", eventstore.StreamExists, data(a), true, 3, nil},
		{"partial overlap, version matches", eventstore.Exact(6), data(d, x), false, 0, eventstore.ErrInvalid},
		{"partial overlap with any", eventstore.Any, data(c, x), false, 0, eventstore.ErrInvalid},
		{"out of order", eventstore.Any, data(c, b), false, 0, eventstore.ErrInvalid},
		{"later ID stored", eventstore.Any, data(x, a), false, 0, eventstore.ErrInvalid},
		{"overlap, version off", eventstore.Exact(9), data(d, x), false, 0, eventstore.ErrWrongVersion},
		{"runs past the tail", eventstore.Exact(5), data(d, x), false, 0, eventstore.ErrWrongVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dup, res, err := idempotencyVerdict("s", tc.expected, 6, tail, tc.events)
			if dup != tc.dup || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("verdict = %v, %+v, %v; want dup %v, error %v", dup, res, err, tc.dup, tc.err)
			}
			if dup && (res.Version != tc.version || !res.Duplicate || res.Position != tail[tc.version-3].Position) {
				t.Fatalf("duplicate result %+v, want version %d at its stored position", res, tc.version)
			}
			var wv *eventstore.WrongVersionError
			if errors.As(err, &wv) && (wv.Actual != 6 || wv.Stream != "s" || wv.Expected != tc.expected) {
				t.Fatalf("wrong version error %+v", wv)
			}
		})
	}
}

func TestClientURL(t *testing.T) {
	for in, want := range map[string]string{
		"kurrentdb://admin:changeit@127.0.0.1:2113?tls=false": "esdb://admin:changeit@127.0.0.1:2113?tls=false",
		"KurrentDB+discover://a:2113,b:2113":                  "esdb+discover://a:2113,b:2113",
		"esdb://127.0.0.1:2113":                               "esdb://127.0.0.1:2113",
		"esdb+discover://x":                                   "esdb+discover://x",
	} {
		if got := clientURL(in); got != want {
			t.Errorf("clientURL(%q) = %q, want %q", in, got, want)
		}
		if _, err := esdb.ParseConnectionString(clientURL(in)); err != nil {
			t.Errorf("the client cannot parse %q rewritten: %v", in, err)
		}
	}
}

func TestSlogLogging(t *testing.T) {
	var buf bytes.Buffer
	log := slogLogging(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log(esdb.LogDebug, "hidden %d", 1)
	log(esdb.LogWarn, "candidate %s refused", "127.0.0.1:1")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "candidate 127.0.0.1:1 refused") {
		t.Errorf("logged %q", out)
	}
}
