package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/taskqueue/taskqueue/api"
)

// TestSpecIsValid loads api/openapi.yaml with kin-openapi and validates it
// as an OpenAPI 3.1 document (with its examples and defaults), and checks
// that the JSON served at /api/openapi.json is the same document.
func TestSpecIsValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("openapi is %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	b, err := api.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(doc)
	got, _ := json.Marshal(fromJSON)
	if string(got) != string(want) {
		t.Fatalf("the JSON form differs from the YAML:\n%s\n%s", got, want)
	}
}
