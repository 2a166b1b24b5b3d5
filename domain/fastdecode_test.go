package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// sampleEvents has one event of every type, with maps, lists, fractions
// and times in two zones.
func sampleEvents() []Event {
	at := time.Date(2026, 12, 6, 10, 11, 12, 345_000_000, time.UTC)
	east := at.In(time.FixedZone("", 2*3600))
	return []Event{
		TaskEnqueued{TaskID: "t-1", Type: "chop_wood", Count: 3, Position: 1, EnqueuedAt: at},
		TaskRemoved{TaskID: "t-1", Type: "chop_wood", Done: 2, At: east},
		TasksReordered{Order: []TaskID{"b", "a_2"}, At: at},
		TasksReordered{Order: []TaskID{}, At: at},
		QueueStopped{Reason: "offline cap", At: at},
		QueueStopped{At: at},
		QueueStarted{At: east},
		RepetitionStarted{TaskID: "t", Type: "smelt", Number: 7, StartedAt: at, DueAt: at.Add(1500 * time.Millisecond),
			DurationMs: 1500, Efficiency: 0.8125, Consumed: map[ItemID]int64{"ore": 2, "coal": 1}, Skill: "smithing", XP: 12,
			Outputs: map[ItemID]int64{"bar": 1}},
		RepetitionStarted{TaskID: "t", Number: 1, Efficiency: 1, Consumed: map[ItemID]int64{}},
		RepetitionCompleted{TaskID: "t", Number: 1},
		TasksReordered{At: at},
		RepetitionCompleted{TaskID: "t", Type: "smelt", Number: 7, Skill: "smithing", XP: -3, Granted: map[ItemID]int64{"bar": 1}, CompletedAt: at},
		RepetitionCancelled{TaskID: "t", Number: 2, Refunded: map[ItemID]int64{"ore": 2}, At: at},
		TaskCompleted{TaskID: "t", Type: "smelt", Count: 10, At: at},
		TaskFailed{TaskID: "t", Type: "smelt", Done: 1, Count: 10, Reason: "inputs missing", At: at},
		SkillLevelledUp{Skill: "smithing", Level: 99, At: at},
	}
}

// TestDecodeFastTakesWhatEncodeEventWrites: the fast path decodes every
// event as EncodeEvent writes it (it does not give up on them) into what
// encoding/json gives.
func TestDecodeFastTakesWhatEncodeEventWrites(t *testing.T) {
	for _, want := range sampleEvents() {
		typ, _, data, err := EncodeEvent(want)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(typ, data)
		if !ok {
			t.Fatalf("fast path gave up on %s", data)
		}
		viaJSON, err := decodeJSON(typ, data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, viaJSON) {
			t.Errorf("%s: fast path %#v, encoding/json %#v", data, got, viaJSON)
		}
		if !got.OccurredAt().Equal(want.OccurredAt()) {
			t.Errorf("%s: occurred at %v, want %v", data, got.OccurredAt(), want.OccurredAt())
		}
	}
}

// TestDecodeFastGivesUp lists inputs where a hand-written decoder would
// easily differ from encoding/json: the fast path must leave them to it.
func TestDecodeFastGivesUp(t *testing.T) {
	for _, c := range []struct {
		typ  EventType
		data string
	}{
		{TypeQueueStopped, `{"reason":"a\"b","at":"2026-12-06T10:11:12Z"}`}, // escape
		{TypeQueueStopped, `{"reason":"été","at":"2026-12-06T10:11:12Z"}`},  // non-ASCII
		{TypeQueueStopped, `{"Reason":"x","at":"2026-12-06T10:11:12Z"}`},    // other case
		{TypeQueueStopped, `{"reason":null,"at":"2026-12-06T10:11:12Z"}`},   // null
		{TypeQueueStopped, `{"extra":1,"at":"2026-12-06T10:11:12Z"}`},       // unknown key
		{TypeQueueStopped, `{"at":"2026-12-06T10:11:12Z","at":"2026-12-06T10:11:13Z"}`},
		{TypeQueueStopped, `{"at":"2026-12-06 10:11:12"}`}, // not RFC 3339
		{TypeQueueStopped, `{"at":"2026-12-06T10:11:12Z"} x`},
		{TypeQueueStopped, `null`},
		{TypeTaskEnqueued, `{"count":1.0}`},
		{TypeTaskEnqueued, `{"count":1e2}`},
		{TypeTaskEnqueued, `{"count":01}`},
		{TypeTaskEnqueued, `{"count":99999999999999999999}`},
		{TypeTaskEnqueued, `{"count":"1"}`},
		{TypeRepetitionCompleted, `{"granted":{"a":1,"a":2}}`},
		{TypeRepetitionStarted, `{"efficiency":1e999}`},
		{TypeTasksReordered, `{"order":["a",]}`},
		{TypeTasksReordered, `{"order":nul}`},
		{TypeTaskFailed, `{"reason":null}`},
		{TypeSkillLevelledUp, `{"skill":"a",}`},
	} {
		if e, ok := decodeFast(c.typ, []byte(c.data)); ok {
			t.Errorf("%s %s: fast path decoded %#v, should have left it to encoding/json", c.typ, c.data, e)
		}
	}
}

// FuzzDecodeFast: whatever the fast path accepts, encoding/json decodes to
// the same event.
func FuzzDecodeFast(f *testing.F) {
	types := EventTypes()
	for i, e := range sampleEvents() {
		typ, _, data, err := EncodeEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		for j, tt := range types {
			if tt == typ {
				f.Add(uint8(j), data)
			}
		}
		f.Add(uint8(i), []byte(` { "at" : "2026-12-06T10:11:12.5+01:00" , "number":-0, "xp": -12, "efficiency": 2.5e-1 } `))
	}
	f.Fuzz(func(t *testing.T, ti uint8, data []byte) {
		typ := types[int(ti)%len(types)]
		got, ok := decodeFast(typ, data)
		if !ok {
			return
		}
		want, err := decodeJSON(typ, data)
		if err != nil {
			t.Fatalf("fast path decoded %s as %#v; encoding/json: %v", data, got, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: fast path %#v, encoding/json %#v", data, got, want)
		}
	})
}

// Events whose maps of items have the same JSON text share one map, and
// their task types and skills one string each; other texts get maps of
// their own, and what they decode to is what encoding/json gives. A full
// table stops growing.
func TestDecodedEventsShareWhatRepeats(t *testing.T) {
	decode := func(data string) RepetitionStarted {
		t.Helper()
		e, err := DecodeEvent(string(TypeRepetitionStarted), TypeRepetitionStarted.SchemaVersion(), []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return e.(RepetitionStarted)
	}
	const a = `{"taskId":"t-%d","type":"saw_planks","number":1,"startedAt":"2026-12-07T06:00:00Z","dueAt":"2026-12-07T06:00:03Z",` +
		`"durationMs":3000,"efficiency":1,"consumed":{"logs":3},"skill":"woodcutting","xp":10,"outputs":{"planks":1, "sawdust":2}}`
	one, two := decode(fmt.Sprintf(a, 1)), decode(fmt.Sprintf(a, 2))
	same := func(x, y map[ItemID]int64) bool {
		return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer()
	}
	if !same(one.Consumed, two.Consumed) || !same(one.Outputs, two.Outputs) {
		t.Error("two events with the same maps of items decoded to maps of their own")
	}
	if same(one.Consumed, one.Outputs) {
		t.Error("different maps of items decoded to one map")
	}
	if unsafe.StringData(string(one.Type)) != unsafe.StringData(string(two.Type)) || unsafe.StringData(string(one.Skill)) != unsafe.StringData(string(two.Skill)) {
		t.Error("two events' task types or skills are strings of their own")
	}
	var want RepetitionStarted
	if err := json.Unmarshal([]byte(fmt.Sprintf(a, 2)), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(two, want) {
		t.Errorf("decoded %+v, encoding/json gives %+v", two, want)
	}

	for i := range maxShared + 10 {
		decode(fmt.Sprintf(`{"taskId":"t","consumed":{"item-%d":1},"outputs":null}`, i))
	}
	if n := len(*shared.items.m.Load()); n != maxShared {
		t.Errorf("%d maps of items shared after %d distinct ones, want the bound, %d", n, maxShared+10, maxShared)
	}
}
