package web

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/api"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
)

// TestSpecCoversEveryRoute holds the router and api/openapi.yaml to each
// other: every method and path the router serves (with every optional part
// configured) is an operation of the spec, and every operation of the spec
// is routed. A route added without its spec fails here; the contract test
// (contract_test.go) then checks what it answers.
func TestSpecCoversEveryRoute(t *testing.T) {
	tokens, err := auth.NewTokens(auth.TokensConfig{Secret: []byte(strings.Repeat("s", auth.MinSecretLength))})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{
		Tokens: tokens, Catalog: domain.DefaultCatalog(), Queues: struct{ Queues }{},
		Metrics: http.NotFoundHandler(), SessionStore: struct{ SessionStore }{}, Sessions: struct{ SessionChecker }{}, CommandLimit: struct{ Limiter }{},
	})
	if err != nil {
		t.Fatal(err)
	}
	var routed []string
	err = chi.Walk(s.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodHead {
			return nil // HEAD of the web app's files: GET's answer without a body
		}
		route = strings.TrimSuffix(route, "/*") // the web app's catch-all is "/"
		if len(route) > 1 {
			route = strings.TrimSuffix(route, "/")
		}
		if route == "" {
			route = "/"
		}
		routed = append(routed, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	var specified []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			specified = append(specified, method+" "+path)
		}
	}
	slices.Sort(routed)
	routed = slices.Compact(routed)
	slices.Sort(specified)
	for _, r := range routed {
		if !slices.Contains(specified, r) {
			t.Errorf("%s is routed but not in api/openapi.yaml", r)
		}
	}
	for _, o := range specified {
		if !slices.Contains(routed, o) {
			t.Errorf("%s is in api/openapi.yaml but not routed", o)
		}
	}
}
