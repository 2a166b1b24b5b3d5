package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/query"
)

// problemCases pin the one mapping from errors to problem types, wrapped
// as handlers receive them (with the operation in front).
var problemCases = []struct {
	err    error
	typ    ProblemType
	field  string
	header string
}{
	{badField("count", "must be positive"), ProblemValidation, "count", ""},
	{fmt.Errorf("enqueue: %w", &domain.ValidationError{Field: "type", Reason: "unknown", Err: domain.ErrUnknownTaskType}), ProblemValidation, "type", ""},
	{fmt.Errorf("x: %w", domain.ErrInvalid), ProblemValidation, "", ""},
	{fmt.Errorf("%w: bad", auth.ErrUnauthorized), ProblemUnauthorized, "", ""},
	{fmt.Errorf("%w: alice on bob", errForbidden), ProblemForbidden, "", ""},
	{fmt.Errorf("remove: %w", domain.ErrTaskNotFound), ProblemNotFound, "", ""},
	{fmt.Errorf("enqueue: %w", domain.ErrQueueFull), ProblemQueueFull, "", ""},
	{fmt.Errorf("enqueue: %w", command.ErrConflict), ProblemConflict, "", ""},
	{&eventstore.WrongVersionError{Stream: "queue-a", Actual: 3}, ProblemConflict, "", ""},
	{fmt.Errorf("stop: %w", &command.PreconditionFailedError{Expected: 1, Actual: 2}), ProblemPreconditionFailed, "", ""},
	{&http.MaxBytesError{Limit: maxBodyBytes}, ProblemPayloadTooLarge, "", ""},
	{fmt.Errorf("enqueue: %w", &domain.RequirementError{Required: 5, Level: 1}), ProblemRequirementNotMet, "", ""},
	{fmt.Errorf("enqueue: %w", command.ErrIdempotencyKeyReused), ProblemIdempotencyKeyReused, "", ""},
	{&RateLimitError{RetryAfter: 1500 * time.Millisecond}, ProblemRateLimited, "", "2"},
	{fmt.Errorf("read: %w", eventstore.ErrClosed), ProblemUnavailable, "", "1"},
	{fmt.Errorf("read: %w", context.DeadlineExceeded), ProblemUnavailable, "", "1"},
	{fmt.Errorf("read queue: %w", query.ErrStale), ProblemUnavailable, "", "1"},
	{fmt.Errorf("retry: %w", ErrProcessorNotRunning), ProblemUnavailable, "", "1"},
	{fmt.Errorf("retry dead letter x: %w", ErrDeadLetterNotFound), ProblemNotFound, "", ""},
	{fmt.Errorf("read: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), ProblemUnavailable, "", "1"},
	{fmt.Errorf("refresh: %w", faults.ErrUnavailable), ProblemUnavailable, "", "1"},
	{fmt.Errorf("append: %w", syscall.ENOSPC), ProblemStorageFull, "", "10"},
	{errors.New("append 3 events to queue-a: commit: database or disk is full (13)"), ProblemStorageFull, "", "10"},
	{errNotImplemented, ProblemNotImplemented, "", ""},
	{errors.New("nil map write"), ProblemInternal, "", ""},
}

func TestProblemFor(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{log: slog.New(LogHandler(slog.NewTextHandler(&logs, nil)))}
	for _, tc := range problemCases {
		t.Run(tc.typ.Name(), func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/api/queue/a/tasks", nil)
			r = r.WithContext(WithRequestID(r.Context(), "req-1"))
			s.writeProblem(w, r, tc.err)
			var p Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.typ.Status() || p.Type != tc.typ.URI() || p.Status != tc.typ.Status() || p.Field != tc.field ||
				p.RequestID != "req-1" || p.Instance != "/api/queue/a/tasks" {
				t.Fatalf("%v answered %d %+v; want %s", tc.err, w.Code, p, tc.typ.URI())
			}
			if got := w.Header().Get("Retry-After"); got != tc.header {
				t.Fatalf("Retry-After = %q, want %q", got, tc.header)
			}
			if tc.typ == ProblemInternal && strings.Contains(p.Detail, "nil map") {
				t.Fatalf("an internal error leaked its cause: %q", p.Detail)
			}
			if tc.typ == ProblemStorageFull && (strings.Contains(p.Detail, "13") || !strings.Contains(p.Detail, "storage is full")) {
				t.Fatalf("storage-full detail %q: want it to say the storage is full, without the driver's words", p.Detail)
			}
		})
	}
	if !strings.Contains(logs.String(), "request_id=req-1") || !strings.Contains(logs.String(), "nil map write") {
		t.Fatalf("the internal error was not logged with its cause and request ID:\n%s", logs.String())
	}
}

func TestRecovererAnswersAProblem(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{log: slog.New(LogHandler(slog.NewTextHandler(&logs, nil)))}
	h := requestID(s.accessLog(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), ProblemInternal.URI()) {
		t.Fatalf("panic answered %d %s", w.Code, w.Body)
	}
	id := w.Header().Get("X-Request-Id")
	for _, want := range []string{"panic serving request", "boom", "request_id=" + id, "status=500"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
