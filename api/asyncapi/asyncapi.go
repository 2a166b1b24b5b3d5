// Package asyncapi owns the asynchronous contract of taskqueue:
// asyncapi.yaml beside this file, an AsyncAPI 3.0 document of the WebSocket
// protocol of GET /api/ws (client and server messages) and of the
// integration events on Redis streams, with a JSON Schema for each message.
// docs/REALTIME.md and docs/EVENTS.md are its prose and point to it.
//
// The spec is written by hand; the code is held to it by tests, not
// generated from it: every message the realtime tests receive is validated
// against ServerMessage (realtime/), and the relay's tests read the Redis
// streams with a plain Redis client by the spec's field names and validate
// each entry, its headers and its payload (processor/). A field, a message
// type or a value the spec does not document fails CI. The document itself
// is validated against the official AsyncAPI 3.0.0 JSON Schema
// (TestSpecIsValidAsyncAPI), and so are its examples against their
// schemas.
//
// Change the spec in the same commit as the message. Additive changes
// (a new optional field, a new message type a client may ignore) keep the
// version; a field that changes meaning needs a new integration event
// version (docs/EVENTS.md) or a new protocol.
//
// The package is for tests and tools: the server does not import it.
package asyncapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"github.com/taskqueue/taskqueue/api"
)

// YAML is the spec as written.
//
//go:embed asyncapi.yaml
var YAML []byte

// docURL and openAPIURL name the documents for the schema compiler, as
// they lie in the repository: schemas refer to each other with
// "#/components/schemas/…", and to the HTTP spec's with
// "../openapi.yaml#/components/schemas/…".
const (
	docURL     = "https://taskqueue.invalid/api/asyncapi/asyncapi.yaml"
	openAPIURL = "https://taskqueue.invalid/api/openapi.yaml"
)

// Document returns the spec decoded as JSON values (maps, slices,
// json.Number, strings, booleans and nil).
func Document() (any, error) {
	var doc any
	if err := yaml.Unmarshal(YAML, &doc); err != nil {
		return nil, fmt.Errorf("parse api/asyncapi/asyncapi.yaml: %w", err)
	}
	v, err := jsonValue(doc)
	if err != nil {
		return nil, fmt.Errorf("api/asyncapi/asyncapi.yaml: %w", err)
	}
	return v, nil
}

// jsonValue turns a decoded YAML document into JSON values.
func jsonValue(doc any) (any, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode as JSON: %w", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// JSON returns the spec as JSON.
func JSON() ([]byte, error) {
	doc, err := Document()
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

var compiler = sync.OnceValues(func() (*jsonschema.Compiler, error) {
	doc, err := Document()
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	// AsyncAPI's default schema format is a superset of draft 07.
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	c.AssertContent()
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, fmt.Errorf("load the AsyncAPI document: %w", err)
	}
	// Schemas shared with the HTTP API (the queue view) are the OpenAPI
	// spec's, referred to as ../openapi.yaml.
	var openapi any
	if err := yaml.Unmarshal(api.OpenAPIYAML, &openapi); err != nil {
		return nil, fmt.Errorf("parse api/openapi.yaml: %w", err)
	}
	if openapi, err = jsonValue(openapi); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	if err := c.AddResource(openAPIURL, openapi); err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	return c, nil
})

var (
	schemasMu sync.Mutex
	schemas   = map[string]*jsonschema.Schema{}
)

// Schema returns the compiled JSON Schema at pointer, a JSON pointer into
// the document such as "/components/schemas/ServerMessage" or
// "/components/messages/event/payload". Safe for concurrent use.
func Schema(pointer string) (*jsonschema.Schema, error) {
	schemasMu.Lock()
	defer schemasMu.Unlock()
	if s, ok := schemas[pointer]; ok {
		return s, nil
	}
	c, err := compiler()
	if err != nil {
		return nil, err
	}
	s, err := c.Compile(docURL + "#" + pointer)
	if err != nil {
		return nil, fmt.Errorf("compile the schema at %s: %w", pointer, err)
	}
	schemas[pointer] = s
	return s, nil
}

// Validate checks the JSON text b against the schema at pointer (see
// Schema).
func Validate(pointer string, b []byte) error {
	s, err := Schema(pointer)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("decode %s: %w", b, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("%s does not match %s: %w", b, pointer, err)
	}
	return nil
}

// Pointers of the schemas the tests validate messages against.
const (
	// ServerMessage is every message the server sends on the socket.
	ServerMessage = "/components/schemas/ServerMessage"
	// RedisStreamEntry is the fields of an integration stream entry.
	RedisStreamEntry = "/components/schemas/RedisStreamEntry"
	// IntegrationHeaders is the JSON of an entry's metadata field.
	IntegrationHeaders = "/components/schemas/IntegrationHeaders"
)

// IntegrationPayload returns the pointer of the payload schema of the
// integration event type typ ("task.started"…): the message whose name is
// typ.
func IntegrationPayload(typ string) (string, error) {
	doc, err := Document()
	if err != nil {
		return "", err
	}
	messages, _ := lookup(doc, "components", "messages").(map[string]any)
	for key, m := range messages {
		if m, ok := m.(map[string]any); ok && m["name"] == typ && m["headers"] != nil {
			return "/components/messages/" + key + "/payload", nil
		}
	}
	return "", fmt.Errorf("no integration event named %q in the spec", typ)
}

// lookup follows keys down nested objects; nil when one is missing.
func lookup(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
