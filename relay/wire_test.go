package relay

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/api/asyncapi"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/processor"
)

// A consumer that knows only the spec (api/asyncapi/asyncapi.yaml) reads
// every integration event from Redis with a plain Redis client: the stream
// names are the spec's channel addresses, each entry has the fields of
// RedisStreamEntry, its metadata matches the message's headers schema and
// its payload the message's payload schema. Before, the entries had
// watermill's "_watermill_message_uuid" and msgpack metadata (issue 15,
// point 5).
func TestIntegrationEventsOnRedisFollowTheSpec(t *testing.T) {
	_, prefix, rdb := teststore.Redis(t)
	b := testreadside.SQLite(t)
	pub, err := NewIntegrationPublisher(rdb, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	topicPrefix := prefix + "taskqueue"

	clock := processor.NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, b, clock, rules)
	enqueue(t, h, "gina", "chop-wood", 3)
	enqueue(t, h, "gina", "saw-planks", 5) // 3 logs make 1 plank, then it fails
	clock.Advance(time.Minute)
	startProcessor(t, b, processor.Config{Clock: clock, Commands: commandConfig(rules)})
	testenv.WaitUntil(t, waitDeadline, "gina's queue to finish", queueDone(t, b, "gina", rules))
	r, err := New(Config{Store: b.Store, DB: b.DB, Publisher: pub, TopicPrefix: topicPrefix, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Republish(context.Background(), eventstore.Start); err != nil {
		t.Fatal(err)
	}
	head, err := b.Store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := PublishPlayerOffline(pub, topicPrefix, "gina", clock.Now(), head, "corr-off"); err != nil {
		t.Fatal(err)
	}
	if err := PublishPlayerForgotten(pub, topicPrefix, "gina", clock.Now(), 12, "corr-forget"); err != nil {
		t.Fatal(err)
	}

	streams := specStreams(t)
	if len(streams) != 6 {
		t.Fatalf("the spec names %d integration streams, want 6: %v", len(streams), streams)
	}
	got := map[string]int{}
	for typ, address := range streams {
		stream := strings.ReplaceAll(address, "{prefix}", prefix)
		entries, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			readEntry(t, typ, e)
			got[typ]++
		}
	}
	want := map[string]int{TypeTaskStarted: 2, TypeTaskCompleted: 1, TypeTaskFailed: 1, TypeQueueUpdated: 4, TypePlayerOffline: 1, TypePlayerForgotten: 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries per type %v, want %v", got, want)
	}
}

// readEntry checks one stream entry as a consumer without watermill reads
// it.
func readEntry(t *testing.T, typ string, e redis.XMessage) {
	t.Helper()
	fields, _ := json.Marshal(e.Values)
	if err := asyncapi.Validate(asyncapi.RedisStreamEntry, fields); err != nil {
		t.Fatalf("entry %s of %s: %v", e.ID, typ, err)
	}
	metadata, payload := e.Values["metadata"].(string), e.Values["payload"].(string)
	if err := asyncapi.Validate(asyncapi.IntegrationHeaders, []byte(metadata)); err != nil {
		t.Fatalf("entry %s of %s: %v", e.ID, typ, err)
	}
	schema, err := asyncapi.IntegrationPayload(typ)
	if err != nil {
		t.Fatal(err)
	}
	if err := asyncapi.Validate(schema, []byte(payload)); err != nil {
		t.Fatalf("entry %s of %s: %v", e.ID, typ, err)
	}
	var headers map[string]string
	var envelope struct {
		Type, EventID, Position, CorrelationID string
	}
	if err := json.Unmarshal([]byte(metadata), &headers); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(payload), &envelope); err != nil {
		t.Fatal(err)
	}
	if headers["type"] != typ || envelope.Type != typ || headers["position"] != envelope.Position ||
		headers["event_id"] != envelope.EventID || headers["correlation_id"] != envelope.CorrelationID {
		t.Errorf("entry %s of the %s stream: headers %v disagree with the payload %s", e.ID, typ, headers, payload)
	}
}

// specStreams returns the address of each integration event type's stream
// as the spec gives it ("{prefix}taskqueue.events.task.started").
func specStreams(t *testing.T) map[string]string {
	t.Helper()
	doc, err := asyncapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	root := doc.(map[string]any)
	messages := root["components"].(map[string]any)["messages"].(map[string]any)
	out := map[string]string{}
	for _, ch := range root["channels"].(map[string]any) {
		ch := ch.(map[string]any)
		for _, ref := range ch["messages"].(map[string]any) {
			name := ref.(map[string]any)["$ref"].(string)
			m := messages[name[strings.LastIndex(name, "/")+1:]].(map[string]any)
			if m["headers"] != nil {
				out[m["name"].(string)] = ch["address"].(string)
			}
		}
	}
	return out
}

// The marshaller reads back what it writes (a Go consumer uses it as its
// watermill-redisstream Unmarshaller).
func TestIntegrationMarshallerRoundTrip(t *testing.T) {
	msg := message.NewMessage("9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", []byte(`{"type":"task.started"}`))
	msg.Metadata.Set(MetaType, TypeTaskStarted)
	msg.Metadata.Set(MetaPosition, "7315:3")
	values, err := IntegrationMarshaller{}.Marshal("topic", msg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := IntegrationMarshaller{}.Unmarshal(values)
	if err != nil {
		t.Fatal(err)
	}
	if back.UUID != msg.UUID || string(back.Payload) != string(msg.Payload) || !reflect.DeepEqual(back.Metadata, msg.Metadata) {
		t.Fatalf("round trip: %+v, want %+v", back, msg)
	}
	if _, err := (IntegrationMarshaller{}).Unmarshal(map[string]any{"uuid": "x"}); err == nil {
		t.Error("an entry without metadata and payload was read")
	}
}
