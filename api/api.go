// Package api owns the HTTP contract of taskqueue: openapi.yaml beside this
// file, OpenAPI 3.1, the one source of truth for every route, request,
// response, header and problem type of the HTTP API. The server serves it
// at GET /api/openapi.json (JSON converted from the YAML at start), the web
// app's TypeScript types are generated from it (web/app/src/api-types.ts,
// `npm run gen:types`; .ci/web fails when they are stale), and
// docs/API.md is its prose and points to it.
//
// # Spec first, checked against the code
//
// The spec is written by hand and the handlers are not generated from it.
// The handlers in web/ predate it, and their behaviour (the problem
// mapping in one place, the queue view with its serverTime, the WebSocket
// hand-off, the SPA fallback) is pinned by tests that would have to be
// rewritten around generated stubs (oapi-codegen's strict server) for no
// gain to a client: what a client needs is a document that cannot lie.
// Drift is made impossible by tests instead of by generation:
//   - every response of every HTTP test of web/ (and of its fuzz test) is
//     validated against the spec with kin-openapi (web/contract_test.go):
//     a status, a header (beyond the generic ones the spec lists) or a JSON
//     field that the spec does not document fails the test that produced it;
//   - every route the chi router registers is a path of the spec and every
//     path of the spec is routed (TestSpecCoversEveryRoute);
//   - the spec itself is validated by kin-openapi's loader (TestSpecIsValid);
//   - the web app's types are generated from it and checked for staleness.
//
// Change the spec in the same commit as the handler. The rules for changing
// it (additive only within /api) are in docs/API.md, "Versioning".
package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v4"
)

// OpenAPIYAML is the spec as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse api/openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode api/openapi.yaml as JSON: %w", err)
	}
	return b, nil
})

// OpenAPIJSON returns the spec as JSON, as GET /api/openapi.json serves it.
func OpenAPIJSON() ([]byte, error) { return openAPIJSON() }
