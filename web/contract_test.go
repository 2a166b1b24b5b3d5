package web_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/taskqueue/taskqueue/api"
	"github.com/taskqueue/taskqueue/app/apptest"
)

// The contract test: every response the HTTP tests of this package get
// (newClient's server, and FuzzAPI's recorder) is validated against
// api/openapi.yaml by checkContract. A status, a JSON field or a header
// the spec does not document fails the test that produced it.

// genericHeaders are response headers that are no part of the contract:
// transport, caching and browser-security headers every response may carry
// (the spec's description lists them). Any other header must be declared
// on the response in the spec.
var genericHeaders = map[string]bool{
	"content-type": true, "content-length": true, "date": true, "cache-control": true, "vary": true,
	"x-content-type-options": true, "referrer-policy": true, "x-frame-options": true,
	"access-control-allow-origin": true, "access-control-allow-methods": true,
	"access-control-allow-headers": true, "access-control-max-age": true,
	"access-control-expose-headers": true, "last-modified": true, "accept-ranges": true,
	"transfer-encoding": true, "connection": true, "content-encoding": true,
}

type contractSpec struct {
	doc    *openapi3.T
	router routers.Router
}

var loadContract = sync.OnceValues(func() (*contractSpec, error) {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not valid: %w", err)
	}
	doc.Servers = nil // "/": match paths on any host
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	return &contractSpec{doc: doc, router: router}, nil
})

// contractViolation returns what is wrong with the response to r
// (status, header, body), or nil when the spec documents it.
func contractViolation(r *http.Request, status int, header http.Header, body []byte) error {
	spec, err := loadContract()
	if err != nil {
		return err
	}
	if status == http.StatusSwitchingProtocols {
		return nil // the WebSocket's own protocol (docs/REALTIME.md)
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" &&
		status == http.StatusNoContent && len(body) == 0 {
		return nil // a CORS preflight from an allowed origin (the spec's description)
	}
	// The router matches on the URL alone; the server's request has a path.
	rr := r.Clone(context.Background())
	rr.URL.Scheme, rr.URL.Host = "http", "taskqueue.test"
	route, params, err := spec.router.FindRoute(rr)
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed), errors.Is(err, routers.ErrPathNotFound):
		// No operation: the answer must be a documented problem (404 no
		// route, 405), or a file of the web app outside /api.
		if ct := header.Get("Content-Type"); ct != "application/problem+json" {
			if !strings.HasPrefix(r.URL.Path, "/api/") && status == http.StatusOK {
				return nil // a file of the web app (the spec's "/" describes them)
			}
			return fmt.Errorf("%s %s is no operation of the spec and answered %d %s", r.Method, r.URL.Path, status, ct)
		}
		name := map[int]string{404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge", 401: "Unauthorized", 403: "Forbidden"}[status]
		if name == "" {
			return fmt.Errorf("%s %s is no operation of the spec and answered %d", r.Method, r.URL.Path, status)
		}
		resp := spec.doc.Components.Responses[name].Value
		return checkBodyAndHeaders(resp, header, body)
	case err != nil:
		return fmt.Errorf("find the spec's route of %s %s: %w", r.Method, r.URL.Path, err)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: rr, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s → %d: %w", r.Method, r.URL.Path, status, err)
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("%s %s → %d: status not in the spec", r.Method, r.URL.Path, status)
	}
	if err := undeclaredHeaders(resp.Value, header); err != nil {
		return fmt.Errorf("%s %s → %d: %w", r.Method, r.URL.Path, status, err)
	}
	return nil
}

// checkBodyAndHeaders validates a problem answered outside any operation
// against the response component of its status.
func checkBodyAndHeaders(resp *openapi3.Response, header http.Header, body []byte) error {
	mt := resp.Content.Get("application/problem+json")
	v, err := openapi3filter.JSONBodyDecoder(bytes.NewReader(body), header, mt.Schema, nil)
	if err != nil {
		return fmt.Errorf("problem body: %w", err)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("problem body %s: %w", body, err)
	}
	for name, h := range resp.Headers {
		if h.Value.Required && header.Get(name) == "" {
			return fmt.Errorf("header %s is required", name)
		}
	}
	return undeclaredHeaders(resp, header)
}

func undeclaredHeaders(resp *openapi3.Response, header http.Header) error {
	declared := map[string]bool{}
	for name := range resp.Headers {
		declared[strings.ToLower(name)] = true
	}
	var extra []string
	for name := range header {
		if n := strings.ToLower(name); !declared[n] && !genericHeaders[n] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("headers %v are not declared on this response in the spec", extra)
	}
	return nil
}

// checkContract wraps h so that every response it writes is validated
// against the spec; a violation fails t.
func checkContract(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		if tw.hijacked {
			return
		}
		status := tw.status
		if status == 0 {
			status = http.StatusOK
		}
		if err := contractViolation(r, status, w.Header(), tw.body.Bytes()); err != nil {
			t.Errorf("contract (api/openapi.yaml): %v\nbody: %.2000s", err, tw.body.Bytes())
		}
	})
}

// teeWriter passes everything through and keeps a copy.
type teeWriter struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *teeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *teeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("teeWriter: the underlying writer cannot be hijacked")
	}
	w.hijacked = true
	return hj.Hijack()
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The contract check is not vacuous: a documented answer passes, and an
// undocumented field, status or header, or a missing required header,
// each fails it.
func TestContractCheckRefusesWhatTheSpecDoesNotSay(t *testing.T) {
	view := `{"playerId":"a","version":1,"state":"idle","running":true,"stoppedReason":"","limit":10,"tasks":[],` +
		`"repetition":null,"skills":{},"inventory":{},"updatedAt":null,"serverTime":"2026-12-06T00:00:00Z"%s}`
	ok := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}, "Etag": {`"1"`}}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	get, _ := http.NewRequest("GET", "/api/queue/a", nil)
	for _, c := range []struct {
		name   string
		status int
		header http.Header
		body   string
		valid  bool
	}{
		{"as documented", 200, ok, fmt.Sprintf(view, ""), true},
		{"an undocumented field", 200, ok, fmt.Sprintf(view, `,"secret":1`), false},
		{"a state outside the enum", 200, ok, strings.Replace(fmt.Sprintf(view, ""), `"idle"`, `"busy"`, 1), false},
		{"an undocumented status", 418, ok, fmt.Sprintf(view, ""), false},
		{"an undocumented header", 200, with(ok, "X-Debug", "1"), fmt.Sprintf(view, ""), false},
		{"no ETag", 200, with(ok, "Etag", ""), fmt.Sprintf(view, ""), false},
		{"a problem of the wrong type", 403, with(ok, "Content-Type", "application/problem+json"),
			`{"type":"urn:taskqueue:problem:validation","title":"x","status":403}`, false},
	} {
		err := contractViolation(get, c.status, c.header, []byte(c.body))
		if (err == nil) != c.valid {
			t.Errorf("%s: contractViolation = %v, want valid %t", c.name, err, c.valid)
		}
	}
}

// GET /api/openapi.json serves the spec, without a token.
func TestOpenAPIServed(t *testing.T) {
	c := newClient(t, apptest.SQLite(t))
	r := c.do(req{method: "GET", path: "/api/openapi.json"})
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", r.status, r.header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil || doc.OpenAPI != "3.1.0" || doc.Paths.Find("/api/queue/{playerId}") == nil {
		t.Fatalf("served spec: openapi %q, valid: %v", doc.OpenAPI, err)
	}
}
