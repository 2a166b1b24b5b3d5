package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// awkwardEvents are events whose data a normalizing store would change:
// whitespace, key order, duplicate keys, number forms, escapes, non-ASCII.
func awkwardEvents() []eventstore.EventData {
	paris := time.FixedZone("CET", 3600)
	datas := []string{
		`{"b": 1,   "a" : [1.0e2, 12345678901234567890123, -0.000]}`,
		"{\n\t\"z\": \"\\u00e9t\\u00e9\", \"a\": \"été ✓ 🪵\",\"a\": null}",
		`"just a string"`,
		`[ ]`,
		`{"escaped":"\u0000 \" \\ \/ \b\f\n\r\t"}`,
	}
	out := make([]eventstore.EventData, len(datas))
	for i, d := range datas {
		out[i] = eventstore.EventData{
			ID:            uuid.New(),
			Type:          fmt.Sprintf("Awkward%d", i),
			SchemaVersion: i, // 0 is stored as 1
			Data:          []byte(d),
			Metadata: eventstore.Metadata{
				OccurredAt:    time.Date(2026, 7, 1, 23, 59, 58, 123456789, paris).Add(time.Duration(i) * time.Hour),
				CorrelationID: fmt.Sprintf("corr-%d-ünï", i),
				CausationID:   uuid.NewString(),
				Actor:         "player:alice 🪓",
			},
		}
	}
	out[len(out)-1].Metadata = eventstore.Metadata{} // every optional field empty
	return out
}

// checkReadBack fails unless got is exactly what was appended.
func checkReadBack(t testing.TB, what, stream string, firstVersion int64, appended []eventstore.EventData, got []eventstore.RecordedEvent) {
	t.Helper()
	if len(got) != len(appended) {
		t.Fatalf("%s: read %d events, want %d", what, len(got), len(appended))
	}
	for i, w := range appended {
		g := got[i]
		wantSchema := w.SchemaVersion
		if wantSchema == 0 {
			wantSchema = 1
		}
		wantAt := w.Metadata.OccurredAt.UTC().Truncate(time.Microsecond)
		switch {
		case g.ID != w.ID:
			t.Fatalf("%s: event %d ID %s, want %s", what, i, g.ID, w.ID)
		case g.Stream != stream || g.Version != firstVersion+int64(i):
			t.Fatalf("%s: event %d at %s@%d, want %s@%d", what, i, g.Stream, g.Version, stream, firstVersion+int64(i))
		case g.Type != w.Type:
			t.Fatalf("%s: event %d type %q, want %q", what, i, g.Type, w.Type)
		case g.SchemaVersion != wantSchema:
			t.Fatalf("%s: event %d schema version %d, want %d", what, i, g.SchemaVersion, wantSchema)
		case !bytes.Equal(g.Data, w.Data):
			t.Fatalf("%s: event %d data\n got:  %q\n want: %q", what, i, g.Data, w.Data)
		case !g.Metadata.OccurredAt.Equal(wantAt) || g.Metadata.OccurredAt.Location() != time.UTC:
			t.Fatalf("%s: event %d occurred at %v (%v), want %v in UTC", what, i, g.Metadata.OccurredAt, g.Metadata.OccurredAt.Location(), wantAt)
		case g.Metadata.CorrelationID != w.Metadata.CorrelationID || g.Metadata.CausationID != w.Metadata.CausationID || g.Metadata.Actor != w.Metadata.Actor:
			t.Fatalf("%s: event %d metadata %+v, want %+v", what, i, g.Metadata, w.Metadata)
		case g.Position.IsZero():
			t.Fatalf("%s: event %d has the zero position", what, i)
		case g.RecordedAt.IsZero():
			t.Fatalf("%s: event %d has no RecordedAt", what, i)
		}
	}
}

func (s suite) testReadBack(t *testing.T) {
	st := s.store(t)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	mustAppend(t, st, "readback-1", eventstore.NoStream, event("First", 0))
	batch := awkwardEvents()
	res := mustAppend(t, st, "readback-1", eventstore.Exact(1), batch...)

	fromStream := readStream(t, st, "readback-1", 2, 0)
	checkReadBack(t, "ReadStream", "readback-1", 2, batch, fromStream)
	settle(t, st, res.Position)
	if last := fromStream[len(fromStream)-1]; res.Position != last.Position || res.Version != last.Version {
		t.Fatalf("append reported version %d position %v, the last event reads back at %d %v", res.Version, res.Position, last.Version, last.Position)
	}
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	checkReadBack(t, "ReadAll", "readback-1", 2, batch, all[1:])
	sameSequence(t, "ReadAll vs ReadStream", all[1:], fromStream)
	live := collectN(t, sub, len(batch)+1)
	checkReadBack(t, "Subscribe", "readback-1", 2, batch, live[1:])
	sameSequence(t, "Subscribe vs ReadAll", live, all)
}

func (s suite) testReadStreamRange(t *testing.T) {
	st := s.store(t)
	mustAppend(t, st, "range-1", eventstore.NoStream, events("A", 4)...)
	mustAppend(t, st, "range-other", eventstore.NoStream, events("B", 2)...)
	mustAppend(t, st, "range-1", eventstore.Exact(4), events("A", 6)...)
	cases := []struct {
		from        int64
		limit       int
		first, last int64 // versions; first > last means empty
	}{
		{1, 0, 1, 10},
		{0, 0, 1, 10},
		{4, 0, 4, 10},
		{4, 3, 4, 6},
		{5, 1, 5, 5},
		{9, 5, 9, 10},
		{10, 0, 10, 10},
		{11, 0, 1, 0},
		{1, -1, 1, 10},
	}
	for _, tc := range cases {
		got := readStream(t, st, "range-1", tc.from, tc.limit)
		want := int(tc.last - tc.first + 1)
		if want < 0 {
			want = 0
		}
		if len(got) != want {
			t.Fatalf("read from %d limit %d: %d events, want %d", tc.from, tc.limit, len(got), want)
		}
		for i, e := range got {
			if e.Stream != "range-1" || e.Version != tc.first+int64(i) {
				t.Fatalf("read from %d limit %d: event %d is %s@%d, want range-1@%d", tc.from, tc.limit, i, e.Stream, e.Version, tc.first+int64(i))
			}
			if i > 0 && !got[i-1].Position.Less(e.Position) {
				t.Fatalf("read from %d: positions %v then %v", tc.from, got[i-1].Position, e.Position)
			}
		}
	}
	if got := readStream(t, st, "range-missing", 1, 0); len(got) != 0 {
		t.Fatalf("a missing stream reads %d events, want none", len(got))
	}
}

func (s suite) testReadAllPaging(t *testing.T) {
	st := s.store(t)
	var appended []eventstore.EventData
	streams := []string{"queue-alice", "queue-bob", "queue-alice-2", "other-1"}
	types := []string{"TaskEnqueued", "TaskStarted", "TaskCompleted"}
	var last eventstore.AppendResult
	for i := 0; i < 25; i++ {
		e := event(types[i%len(types)], i)
		last = mustAppend(t, st, streams[i%len(streams)], eventstore.Any, e)
		appended = append(appended, e)
	}
	settle(t, st, last.Position)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	if len(all) != len(appended) {
		t.Fatalf("read all: %d events, want %d", len(all), len(appended))
	}
	for i, e := range all {
		if e.ID != appended[i].ID {
			t.Fatalf("read all: event %d is %s, want %s (append order, one writer)", i, e.ID, appended[i].ID)
		}
	}
	checkLogOrder(t, "read all", all)
	for _, limit := range []int{1, 7, 10, 25, 100} {
		sameSequence(t, fmt.Sprintf("read all in pages of %d", limit), readAll(t, st, eventstore.Start, eventstore.Filter{}, limit), all)
	}
	sameSequence(t, "read all after the 10th event", readAll(t, st, all[9].Position, eventstore.Filter{}, 4), all[10:])
	if rest := readAll(t, st, all[len(all)-1].Position, eventstore.Filter{}, 0); len(rest) != 0 {
		t.Fatalf("read all after the last event: %s, want nothing", describe(rest))
	}

	filters := []eventstore.Filter{
		{EventTypes: []string{"TaskStarted"}},
		{EventTypes: []string{"TaskStarted", "TaskCompleted"}},
		{StreamPrefixes: []string{"queue-"}},
		{StreamPrefixes: []string{"queue-alice"}},
		{Streams: []string{"queue-alice"}},
		{Streams: []string{"queue-bob", "other-1"}},
		{StreamPrefixes: []string{"queue-"}, EventTypes: []string{"TaskEnqueued"}},
		{Streams: []string{"queue-missing"}},
	}
	for _, f := range filters {
		var want []eventstore.RecordedEvent
		for _, e := range all {
			if f.Match(e.Stream, e.Type) {
				want = append(want, e)
			}
		}
		for _, limit := range []int{0, 2, 5} {
			sameSequence(t, fmt.Sprintf("read all filtered by %+v in pages of %d", f, limit), readAll(t, st, eventstore.Start, f, limit), want)
		}
	}
}

func (s suite) testStreamVersion(t *testing.T) {
	st := s.store(t)
	if v := streamVersion(t, st, "version-1"); v != 0 {
		t.Fatalf("missing stream has version %d, want 0", v)
	}
	mustAppend(t, st, "version-1", eventstore.NoStream, events("A", 3)...)
	mustAppend(t, st, "version-2", eventstore.NoStream, events("A", 1)...)
	mustAppend(t, st, "version-1", eventstore.Exact(3), events("A", 2)...)
	if v := streamVersion(t, st, "version-1"); v != 5 {
		t.Fatalf("version-1 has version %d, want 5", v)
	}
	if v := streamVersion(t, st, "version-2"); v != 1 {
		t.Fatalf("version-2 has version %d, want 1", v)
	}
	if v := streamVersion(t, st, "version-"); v != 0 {
		t.Fatalf("a prefix of a stream ID has version %d, want 0", v)
	}
}

func (s suite) testHead(t *testing.T) {
	st := s.store(t)
	if p := head(t, st); !p.IsZero() {
		t.Fatalf("head of an empty log is %v, want the zero position", p)
	}
	mustAppend(t, st, "head-1", eventstore.NoStream, events("A", 2)...)
	res := mustAppend(t, st, "head-2", eventstore.NoStream, events("A", 3)...)
	settle(t, st, res.Position)
	h := head(t, st)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	if h != res.Position || h != all[len(all)-1].Position {
		t.Fatalf("head %v, want the last append's position %v and the last event's %v", h, res.Position, all[len(all)-1].Position)
	}
	if rest := readAll(t, st, h, eventstore.Filter{}, 0); len(rest) != 0 {
		t.Fatalf("read all after head: %s, want nothing", describe(rest))
	}
}

// A page never ends inside an append, even with a filter: a reader that
// commits page by page never shows part of one command's events.
func (s suite) testPagesEndAtAppends(t *testing.T) {
	if s.h.PagesMayCutAppends != "" {
		t.Skip(s.h.PagesMayCutAppends)
	}
	st := s.store(t)
	mustAppend(t, st, "queue-a", eventstore.Any, event("TaskStarted", 0))
	five := []eventstore.EventData{event("TaskStarted", 1), event("TaskCompleted", 2), event("TaskStarted", 3), event("TaskCompleted", 4), event("TaskStarted", 5)}
	mustAppend(t, st, "queue-b", eventstore.Any, five...)
	mustAppend(t, st, "queue-b", eventstore.Any, event("TaskStarted", 6))
	last := mustAppend(t, st, "queue-c", eventstore.Any, event("TaskStarted", 7))
	settle(t, st, last.Position)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	if len(all) != 8 {
		t.Fatalf("read all: %s, want 8 events", describe(all))
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	cases := []struct {
		name   string
		after  eventstore.Position
		filter eventstore.Filter
		limit  int
		want   []eventstore.RecordedEvent
	}{
		{"the limit cuts the append after its first event", eventstore.Start, eventstore.Filter{}, 2, all[:6]},
		{"the limit cuts it in the middle", all[2].Position, eventstore.Filter{}, 1, all[3:6]},
		{"the limit ends at the append's end", all[0].Position, eventstore.Filter{}, 5, all[1:6]},
		{"the stream's next append is another append", all[5].Position, eventstore.Filter{}, 1, all[6:7]},
		{"filtered: the append's matching events only", eventstore.Start, eventstore.Filter{EventTypes: []string{"TaskCompleted"}}, 1, []eventstore.RecordedEvent{all[2], all[4]}},
		{"filtered by stream", eventstore.Start, eventstore.Filter{Streams: []string{"queue-b"}}, 1, all[1:6]},
	}
	for _, c := range cases {
		page, err := st.ReadAll(ctx, c.after, c.filter, c.limit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sameSequence(t, c.name, page, c.want)
	}
}

// testReadStreams checks that ReadStreams gives, for each read, what
// ReadStream gives for the same stream, from and limit, and refuses bad
// input.
func (s suite) testReadStreams(t *testing.T) {
	st := s.store(t)
	mustAppend(t, st, "many-a", eventstore.NoStream, events("A", 5)...)
	mustAppend(t, st, "many-b", eventstore.NoStream, events("B", 2)...)
	mustAppend(t, st, "many-a", eventstore.Exact(5), events("A", 3)...)
	reads := []eventstore.StreamRead{{Stream: "many-b", From: 1}, {Stream: "many-missing", From: 1}, {Stream: "many-a", From: 4}, {Stream: "many-c", From: 0}}
	mustAppend(t, st, "many-c", eventstore.NoStream, events("C", 1)...)
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	for _, limit := range []int{0, 1, 3, 100} {
		got, err := st.ReadStreams(ctx, reads, limit)
		if err != nil {
			t.Fatalf("read streams, limit %d: %v", limit, err)
		}
		if len(got) != len(reads) {
			t.Fatalf("read %d streams, limit %d: %d results", len(reads), limit, len(got))
		}
		for i, r := range reads {
			want := readStream(t, st, r.Stream, r.From, limit)
			sameSequence(t, fmt.Sprintf("ReadStreams[%d] (%s from %d, limit %d)", i, r.Stream, r.From, limit), got[i], want)
		}
	}
	if got, err := st.ReadStreams(ctx, nil, 0); err != nil || len(got) != 0 {
		t.Fatalf("read no streams: %d results, %v", len(got), err)
	}
	bad := map[string][]eventstore.StreamRead{
		"a stream twice":   {{Stream: "many-a", From: 1}, {Stream: "many-a", From: 3}},
		"a negative from":  {{Stream: "many-a", From: -1}},
		"an invalid ID":    {{Stream: "", From: 1}},
		"too many streams": make([]eventstore.StreamRead, eventstore.MaxStreamsPerRead+1),
	}
	for what, reads := range bad {
		_, err := st.ReadStreams(ctx, reads, 0)
		wantInvalid(t, "read streams with "+what, err)
	}
}
