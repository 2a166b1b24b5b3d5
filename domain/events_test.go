package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/taskqueue/taskqueue/domain"
)

// oneOfEach has one event of every type.
var oneOfEach = []domain.Event{
	chopEnqueued,
	domain.TaskRemoved{TaskID: "t1", Type: "chop-wood", Done: 1, At: at(5)},
	domain.TasksReordered{Order: []domain.TaskID{"b", "a"}, At: at(6)},
	domain.QueueStopped{Reason: "offline too long", At: at(7)},
	domain.QueueStarted{At: at(8)},
	chop1Started,
	chop1Completed,
	domain.RepetitionCancelled{TaskID: "t1", Number: 2, Refunded: map[domain.ItemID]int64{"logs": 2}, At: at(9)},
	domain.TaskCompleted{TaskID: "t1", Type: "chop-wood", Count: 2, At: at(10)},
	domain.TaskFailed{TaskID: "t2", Type: "saw-planks", Done: 0, Count: 1, Reason: "missing", At: at(11)},
	domain.SkillLevelledUp{Skill: "woodcutting", Level: 2, At: at(12)},
}

func TestEveryEventRoundTrips(t *testing.T) {
	seen := map[domain.EventType]bool{}
	for _, e := range oneOfEach {
		typ, version, data, err := domain.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		if version != typ.SchemaVersion() || !typ.Valid() {
			t.Fatalf("%s: version %d", typ, version)
		}
		back, err := domain.DecodeEvent(string(typ), version, data)
		if err != nil {
			t.Fatalf("decode %s: %v", typ, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("%s round trip:\n got %#v\nwant %#v", typ, back, e)
		}
		seen[typ] = true
	}
	for _, typ := range domain.EventTypes() {
		if !seen[typ] {
			t.Errorf("event type %s is not covered", typ)
		}
	}
}

func TestQueueStoppedV1IsUpcast(t *testing.T) {
	e, err := domain.DecodeEvent("QueueStopped", 1, []byte(`{"at":"2026-11-29T14:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := domain.QueueStopped{Reason: "", At: t0}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %#v, want %#v", e, want)
	}
	// The upcast event applies like a current one.
	q := given(t, e)
	if q.Running() {
		t.Fatal("upcast stop did not stop the queue")
	}
}

func TestDecodeRefusesNewerSchemaAndUnknownTypes(t *testing.T) {
	if _, err := domain.DecodeEvent("QueueStopped", 3, []byte(`{}`)); !errors.Is(err, domain.ErrNewerSchema) {
		t.Errorf("newer schema: %v", err)
	}
	if _, err := domain.DecodeEvent("TaskEnqueued", 2, []byte(`{}`)); !errors.Is(err, domain.ErrNewerSchema) {
		t.Errorf("newer schema: %v", err)
	}
	if _, err := domain.DecodeEvent("PlayerBanned", 1, []byte(`{}`)); !errors.Is(err, domain.ErrUnknownEvent) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := domain.DecodeEvent("TaskEnqueued", 0, []byte(`{}`)); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("version 0: %v", err)
	}
	if _, err := domain.DecodeEvent("TaskEnqueued", 1, []byte(`{"count":"ten"}`)); err == nil {
		t.Error("bad data decoded")
	}
}

func TestQueueViewMarshalsToTheDocumentedJSON(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started, sawEnqueued, chop1Completed, chop2Started)
	b, err := json.Marshal(q.View())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"playerId":"alice","version":5,"running":true,"stoppedReason":"","limit":3,` +
		`"tasks":[{"taskId":"t1","type":"chop-wood","count":2,"done":1,"enqueuedAt":"2026-11-29T14:00:00Z"},` +
		`{"taskId":"t2","type":"saw-planks","count":1,"done":0,"enqueuedAt":"2026-11-29T14:00:00.01Z"}],` +
		`"repetition":{"taskId":"t1","number":2,"startedAt":"2026-11-29T14:00:01Z","dueAt":"2026-11-29T14:00:02Z","durationMs":1000,"efficiency":1},` +
		`"skills":{"woodcutting":{"xp":50,"level":1}},"inventory":{"logs":1},"updatedAt":"2026-11-29T14:00:01Z"}`
	if string(b) != want {
		t.Fatalf("view JSON:\n got %s\nwant %s", b, want)
	}
	empty, err := json.Marshal(domain.NewQueue("bob", domain.Rules{}).View())
	if err != nil {
		t.Fatal(err)
	}
	wantEmpty := `{"playerId":"bob","version":0,"running":true,"stoppedReason":"","limit":10,"tasks":[],"repetition":null,"skills":{},"inventory":{},"updatedAt":null}`
	if string(empty) != wantEmpty {
		t.Fatalf("empty view JSON:\n got %s\nwant %s", empty, wantEmpty)
	}
}

func TestPlayerIDs(t *testing.T) {
	for _, ok := range []string{"alice", "A_b-9", string(make64('x'))} {
		if _, err := domain.ParsePlayerID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "é", "a/b", string(make64('x')) + "x"} {
		_, err := domain.ParsePlayerID(bad)
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || ve.Field != "playerId" {
			t.Errorf("%q: error %v", bad, err)
		}
	}
	p, _ := domain.ParsePlayerID("alice")
	if p.Stream() != "queue-alice" {
		t.Fatal(p.Stream())
	}
	if got, ok := domain.PlayerFromStream("queue-alice"); !ok || got != "alice" {
		t.Fatal(got, ok)
	}
	if _, ok := domain.PlayerFromStream("other-alice"); ok {
		t.Fatal("foreign stream accepted")
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}
