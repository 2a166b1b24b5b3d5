package asyncapi_test

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taskqueue/taskqueue/api/asyncapi"
)

// The document is a valid AsyncAPI 3.0 document: it matches the official
// JSON Schema of the format (testdata/README.md).
func TestSpecIsValidAsyncAPI(t *testing.T) {
	f, err := os.Open("testdata/asyncapi-3.0.0.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
	if err := c.AddResource(url, meta); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := asyncapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(doc); err != nil {
		t.Fatalf("api/asyncapi/asyncapi.yaml is not a valid AsyncAPI 3.0.0 document: %v", err)
	}
}

// Every example of every message matches the message's payload and headers
// schemas, and every schema of the document compiles.
func TestExamplesMatchTheirSchemas(t *testing.T) {
	doc, err := asyncapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	messages := doc.(map[string]any)["components"].(map[string]any)["messages"].(map[string]any)
	examples := 0
	for _, name := range sortedKeys(messages) {
		m := messages[name].(map[string]any)
		list, _ := m["examples"].([]any)
		if len(list) == 0 {
			t.Errorf("message %s has no example", name)
		}
		for i, ex := range list {
			for _, part := range []string{"payload", "headers"} {
				v, ok := ex.(map[string]any)[part]
				if !ok {
					if m[part] != nil {
						t.Errorf("message %s example %d has no %s", name, i, part)
					}
					continue
				}
				b, _ := json.Marshal(v)
				if err := asyncapi.Validate("/components/messages/"+name+"/"+part, b); err != nil {
					t.Errorf("message %s example %d: %v", name, i, err)
				}
				examples++
			}
		}
	}
	schemas := doc.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)
	for _, name := range sortedKeys(schemas) {
		if _, err := asyncapi.Schema("/components/schemas/" + name); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d examples, %d schemas", examples, len(schemas))
}

// The schemas refuse what the protocol does not allow: they are not so
// loose that the validation of the server's messages checks nothing.
func TestSchemasRefuseUndocumentedMessages(t *testing.T) {
	refused := []struct{ pointer, msg string }{
		{asyncapi.ServerMessage, `{"type":"subscribed","position":"7315:1","playerId":"alice","extra":1}`},
		{asyncapi.ServerMessage, `{"type":"subscribed","position":"not a position"}`},
		{asyncapi.ServerMessage, `{"type":"hello"}`},
		{asyncapi.ServerMessage, `{"type":"event","position":"1","playerId":"a","event":{"type":"QueueStarted","version":1,"position":"1","occurredAt":"2026-01-01T00:00:00Z","data":{"at":"2026-01-01T00:00:00Z","more":1}}}`},
		{asyncapi.RedisStreamEntry, `{"_watermill_message_uuid":"x","metadata":"{}","payload":"{}"}`},
		{asyncapi.RedisStreamEntry, `{"uuid":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","metadata":"\u0082\u00a4type","payload":"{}"}`},
		{asyncapi.IntegrationHeaders, `{"type":"task.begun"}`},
	}
	for _, r := range refused {
		if err := asyncapi.Validate(r.pointer, []byte(r.msg)); err == nil {
			t.Errorf("%s accepted %s", r.pointer, r.msg)
		}
	}
	for _, typ := range []string{"task.started", "task.completed", "task.failed", "queue.updated", "player.offline", "player.forgotten"} {
		p, err := asyncapi.IntegrationPayload(typ)
		if err != nil {
			t.Fatal(err)
		}
		wrong := `{"type":"` + typ + `","version":2,"occurredAt":"2026-01-01T00:00:00Z","playerId":"a","data":{}}`
		if err := asyncapi.Validate(p, []byte(wrong)); err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("%s accepted version 2: %v", typ, err)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
