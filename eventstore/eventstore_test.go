package eventstore_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

var positionTexts = []struct {
	text string
	pos  eventstore.Position
}{
	{"0", eventstore.Start},
	{"42", eventstore.Position{Seq: 42}},
	{"7315:1042", eventstore.Position{Commit: 7315, Seq: 1042}},
	{"18446744073709551615:1", eventstore.Position{Commit: 1<<64 - 1, Seq: 1}},
}

func TestPositionTextRoundTrip(t *testing.T) {
	for _, tc := range positionTexts {
		if got := tc.pos.String(); got != tc.text {
			t.Errorf("%#v.String() = %q, want %q", tc.pos, got, tc.text)
		}
		got, err := eventstore.ParsePosition(tc.text)
		if err != nil || got != tc.pos {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", tc.text, got, err, tc.pos)
		}
	}
	b, err := json.Marshal(struct{ P eventstore.Position }{eventstore.Position{Commit: 3, Seq: 9}})
	if err != nil || string(b) != `{"P":"3:9"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	var back struct{ P eventstore.Position }
	if err := json.Unmarshal(b, &back); err != nil || back.P != (eventstore.Position{Commit: 3, Seq: 9}) {
		t.Fatalf("unmarshal = %v, %v", back.P, err)
	}
}

func TestParsePositionRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "x", "-1", "1:", ":1", "1:2:3", "1.5", " 1"} {
		if _, err := eventstore.ParsePosition(s); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("ParsePosition(%q) error = %v, want ErrInvalid", s, err)
		}
	}
}

func TestPositionOrder(t *testing.T) {
	ordered := []eventstore.Position{{}, {Seq: 1}, {Seq: 2}, {Commit: 1, Seq: 0}, {Commit: 1, Seq: 5}, {Commit: 2, Seq: 1}}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ordered[i].Compare(ordered[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestExpectedVersionCheck(t *testing.T) {
	cases := []struct {
		exp    eventstore.ExpectedVersion
		actual int64
		ok     bool
	}{
		{eventstore.Any, 0, true}, {eventstore.Any, 9, true},
		{eventstore.NoStream, 0, true}, {eventstore.NoStream, 1, false},
		{eventstore.StreamExists, 0, false}, {eventstore.StreamExists, 3, true},
		{eventstore.Exact(0), 0, true}, {eventstore.Exact(3), 3, true}, {eventstore.Exact(3), 4, false},
	}
	for _, c := range cases {
		if got := c.exp.Check(c.actual); got != c.ok {
			t.Errorf("%v.Check(%d) = %v, want %v", c.exp, c.actual, got, c.ok)
		}
	}
	if err := eventstore.Exact(-1).Validate(); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("Exact(-1).Validate() = %v, want ErrInvalid", err)
	}
}

func TestWrongVersionErrorMatches(t *testing.T) {
	var err error = &eventstore.WrongVersionError{Stream: "s", Expected: eventstore.Exact(2), Actual: 5}
	wrapped := errors.Join(errors.New("context"), err)
	var wv *eventstore.WrongVersionError
	if !errors.Is(wrapped, eventstore.ErrWrongVersion) || !errors.As(wrapped, &wv) || wv.Actual != 5 {
		t.Fatalf("errors.Is/As failed on %v", wrapped)
	}
	if !strings.Contains(err.Error(), `"s"`) || !strings.Contains(err.Error(), "actual 5") {
		t.Errorf("message %q lacks stream or actual version", err)
	}
}

func valid() eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: "Thing", Data: json.RawMessage(`{"a":1}`)}
}

var badAppends = []struct {
	name   string
	stream string
	exp    eventstore.ExpectedVersion
	events func() []eventstore.EventData
}{
	{"empty stream", "", eventstore.Any, func() []eventstore.EventData { return []eventstore.EventData{valid()} }},
	{"long stream", strings.Repeat("s", eventstore.MaxStreamIDLength+1), eventstore.Any, func() []eventstore.EventData { return []eventstore.EventData{valid()} }},
	{"control char", "a\nb", eventstore.Any, func() []eventstore.EventData { return []eventstore.EventData{valid()} }},
	{"bad utf8", "a\xffb", eventstore.Any, func() []eventstore.EventData { return []eventstore.EventData{valid()} }},
	{"negative version", "s", eventstore.Exact(-1), func() []eventstore.EventData { return []eventstore.EventData{valid()} }},
	{"no events", "s", eventstore.Any, func() []eventstore.EventData { return nil }},
	{"nil id", "s", eventstore.Any, func() []eventstore.EventData { e := valid(); e.ID = uuid.Nil; return []eventstore.EventData{e} }},
	{"repeated id", "s", eventstore.Any, func() []eventstore.EventData { e := valid(); return []eventstore.EventData{e, e} }},
	{"no type", "s", eventstore.Any, func() []eventstore.EventData { e := valid(); e.Type = ""; return []eventstore.EventData{e} }},
	{"no data", "s", eventstore.Any, func() []eventstore.EventData { e := valid(); e.Data = nil; return []eventstore.EventData{e} }},
	{"not json", "s", eventstore.Any, func() []eventstore.EventData {
		e := valid()
		e.Data = []byte("{nope")
		return []eventstore.EventData{e}
	}},
	{"negative schema", "s", eventstore.Any, func() []eventstore.EventData { e := valid(); e.SchemaVersion = -2; return []eventstore.EventData{e} }},
}

func TestValidateAppendRejects(t *testing.T) {
	for _, tc := range badAppends {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := eventstore.ValidateAppend(tc.stream, tc.exp, tc.events()); !errors.Is(err, eventstore.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestValidateAppendNormalizes(t *testing.T) {
	e := valid()
	e.Metadata.OccurredAt = time.Date(2026, 11, 29, 15, 4, 5, 123456789, time.FixedZone("x", 3600))
	out, err := eventstore.ValidateAppend("queue-alice", eventstore.Any, []eventstore.EventData{e})
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Metadata.OccurredAt
	if got.Location() != time.UTC || got.Nanosecond() != 123456000 || got.Hour() != 14 {
		t.Errorf("OccurredAt = %v, want 14:04:05.123456 UTC", got)
	}
	if out[0].SchemaVersion != 1 {
		t.Errorf("SchemaVersion = %d, want 1", out[0].SchemaVersion)
	}
	if !e.Metadata.OccurredAt.Equal(time.Date(2026, 11, 29, 15, 4, 5, 123456789, time.FixedZone("x", 3600))) {
		t.Error("ValidateAppend changed the caller's event")
	}
}

func TestFilterMatch(t *testing.T) {
	f := eventstore.Filter{EventTypes: []string{"A", "B"}, StreamPrefixes: []string{"queue-"}}
	cases := []struct {
		stream, typ string
		want        bool
	}{
		{"queue-alice", "A", true}, {"queue-bob", "B", true}, {"queue-bob", "C", false}, {"other", "A", false},
	}
	for _, c := range cases {
		if got := f.Match(c.stream, c.typ); got != c.want {
			t.Errorf("Match(%q,%q) = %v, want %v", c.stream, c.typ, got, c.want)
		}
	}
	exact := eventstore.Filter{Streams: []string{"queue-alice"}}
	if exact.Match("queue-alice2", "A") || !exact.Match("queue-alice", "A") {
		t.Error("exact stream filter matched by prefix")
	}
	if !(eventstore.Filter{}).IsZero() || f.IsZero() {
		t.Error("IsZero wrong")
	}
}
