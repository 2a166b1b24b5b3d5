package relay

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// Fields of an integration event's Redis stream entry (docs/EVENTS.md,
// api/asyncapi/asyncapi.yaml): consumers in any language read them by
// these names. Renaming one breaks every consumer.
const (
	// FieldUUID is the message UUID (UUIDv5 of the domain event's ID and
	// the integration type: a re-published event has the same).
	FieldUUID = "uuid"
	// FieldMetadata is a JSON object of strings: MetaType, MetaPosition,
	// MetaEventID and correlation_id.
	FieldMetadata = "metadata"
	// FieldPayload is the JSON envelope, IntegrationEvent.
	FieldPayload = "payload"
)

// IntegrationMarshaller writes integration messages to Redis stream
// entries of three plain text fields, FieldUUID, FieldMetadata (JSON) and
// FieldPayload (JSON), which a consumer reads with any Redis client and a
// JSON parser, from the spec alone. watermill-redisstream's default
// marshaller wrote the UUID as "_watermill_message_uuid" and the metadata
// as msgpack, which no consumer following the doc could read.
//
// It is an Unmarshaller too: a Go consumer using watermill-redisstream
// gives it as its SubscriberConfig.Unmarshaller.
type IntegrationMarshaller struct{}

var _ redisstream.MarshallerUnmarshaller = IntegrationMarshaller{}

// Marshal implements redisstream.Marshaller.
func (IntegrationMarshaller) Marshal(_ string, msg *message.Message) (map[string]any, error) {
	md := map[string]string(msg.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	b, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("encode the metadata of message %s: %w", msg.UUID, err)
	}
	return map[string]any{FieldUUID: msg.UUID, FieldMetadata: string(b), FieldPayload: string(msg.Payload)}, nil
}

// Unmarshal implements redisstream.Unmarshaller.
func (IntegrationMarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	field := func(name string) (string, error) {
		v, ok := values[name].(string)
		if !ok {
			return "", fmt.Errorf("stream entry without the text field %q", name)
		}
		return v, nil
	}
	id, err1 := field(FieldUUID)
	md, err2 := field(FieldMetadata)
	payload, err3 := field(FieldPayload)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	msg := message.NewMessage(id, []byte(payload))
	if err := json.Unmarshal([]byte(md), &msg.Metadata); err != nil {
		return nil, fmt.Errorf("decode the metadata of message %s: %w", id, err)
	}
	return msg, nil
}

// NewIntegrationPublisher returns the publisher of integration events on
// Redis streams (each capped at IntegrationStreamMaxlen), in the format of
// IntegrationMarshaller. Closing it leaves rdb open.
func NewIntegrationPublisher(rdb redis.UniversalClient, logger watermill.LoggerAdapter) (message.Publisher, error) {
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{
		Client:        keepOpen{rdb},
		DefaultMaxlen: IntegrationStreamMaxlen,
		Marshaller:    IntegrationMarshaller{},
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("open the integration publisher: %w", err)
	}
	return pub, nil
}

// keepOpen is the caller's Redis client as watermill-redisstream gets it:
// its publishers close their client when they close, and this one belongs
// to the caller, so closing is a no-op.
type keepOpen struct{ redis.UniversalClient }

func (keepOpen) Close() error { return nil }
