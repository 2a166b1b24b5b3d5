package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/problem"
	"github.com/taskqueue/taskqueue/query"
)

// ProblemType is the stable kind of an error response (docs/API.md,
// "Errors"; package problem holds the set).
type ProblemType = problem.Type

// The problem types of docs/API.md.
var (
	ProblemValidation           = problem.Validation
	ProblemUnauthorized         = problem.Unauthorized
	ProblemForbidden            = problem.Forbidden
	ProblemNotFound             = problem.NotFound
	ProblemMethodNotAllowed     = problem.MethodNotAllowed
	ProblemQueueFull            = problem.QueueFull
	ProblemConflict             = problem.Conflict
	ProblemPreconditionFailed   = problem.PreconditionFailed
	ProblemPayloadTooLarge      = problem.PayloadTooLarge
	ProblemRequirementNotMet    = problem.RequirementNotMet
	ProblemIdempotencyKeyReused = problem.IdempotencyKeyReused
	ProblemRateLimited          = problem.RateLimited
	ProblemNotImplemented       = problem.NotImplemented
	ProblemUnavailable          = problem.Unavailable
	ProblemStorageFull          = problem.StorageFull
	ProblemInternal             = problem.Internal
)

// How long a client is asked to wait (Retry-After) before retrying after a
// dependency was unavailable, or after the storage was full (which takes
// an operator, or a sweep, to free: come back less often).
const (
	retryUnavailable = time.Second
	retryStorageFull = 10 * time.Second
)

// ProblemTypePrefix starts every problem type URI.
const ProblemTypePrefix = problem.TypePrefix

// Problem is an RFC 9457 problem details document, as an HTTP answer.
type Problem struct {
	problem.Details

	retryAfter time.Duration
}

// Errors the HTTP layer itself raises. Handlers return them (wrapped with
// a detail) and problemFor turns them into responses like any other error.
var (
	errForbidden        = errors.New("forbidden")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errPayloadTooLarge  = errors.New("payload too large")
	errNotImplemented   = errors.New("not implemented")
	errUnavailable      = errors.New("unavailable")
)

// fieldError is a request field that is wrong, found before the domain
// sees the request (JSON decoding, headers, path parameters).
type fieldError struct {
	field  string
	reason string
}

func (e *fieldError) Error() string { return e.field + " " + e.reason }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// RateLimitError asks the client to come back after RetryAfter.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string { return "rate limited, retry after " + e.RetryAfter.String() }

// problemFor decides the response for err: the ONE place where errors of
// the domain, the command handlers, the event store and this package become
// HTTP statuses. An error that none of them claims is classified by
// faults.Classify: a dependency that cannot be reached or did not answer
// within the request's deadline is 503 unavailable, a full disk 507
// storage-full, both with Retry-After and a detail that names no internals
// (the log has the cause). Anything else is an internal error whose detail
// stays in the log. Every 503 and 507 carries Retry-After.
func problemFor(err error) Problem {
	var (
		fe  *fieldError
		ve  *domain.ValidationError
		rl  *RateLimitError
		mbe *http.MaxBytesError
		t   ProblemType
		p   Problem
	)
	detail := err.Error()
	switch {
	case errors.As(err, &fe):
		t, p.Field, detail = ProblemValidation, fe.field, fe.Error()
	case errors.As(err, &mbe), errors.Is(err, errPayloadTooLarge):
		t, detail = ProblemPayloadTooLarge, fmt.Sprintf("the body is over the limit of %d bytes", maxBodyBytes)
	case errors.Is(err, auth.ErrUnauthorized):
		t, detail = ProblemUnauthorized, "a valid bearer token is required"
		switch {
		case errors.Is(err, errNoToken):
			detail = "the Authorization header has no bearer token"
		case errors.Is(err, errSessionInactive):
			detail = errSessionInactive.Error()
		}
	case errors.Is(err, errForbidden):
		t = ProblemForbidden
	case errors.Is(err, errNotFound), errors.Is(err, domain.ErrTaskNotFound), errors.Is(err, query.ErrNotFound),
		errors.Is(err, ErrDeadLetterNotFound):
		t = ProblemNotFound
	case errors.Is(err, errMethodNotAllowed):
		t = ProblemMethodNotAllowed
	case errors.Is(err, command.ErrPreconditionFailed):
		t = ProblemPreconditionFailed
	case errors.Is(err, command.ErrIdempotencyKeyReused):
		t = ProblemIdempotencyKeyReused
	case errors.Is(err, errNotImplemented):
		t = ProblemNotImplemented
	case errors.Is(err, domain.ErrQueueFull):
		t = ProblemQueueFull
	case errors.Is(err, domain.ErrRequirementNotMet):
		t = ProblemRequirementNotMet
	case errors.As(err, &ve):
		t, p.Field, detail = ProblemValidation, ve.Field, ve.Error()
	case errors.Is(err, domain.ErrInvalid):
		t = ProblemValidation
	case errors.As(err, &rl):
		wait := max((rl.RetryAfter + time.Second - 1).Truncate(time.Second), time.Second)
		t, p.retryAfter, detail = ProblemRateLimited, wait, fmt.Sprintf("too many commands; retry in %d s", int(wait/time.Second))
	case errors.Is(err, command.ErrConflict), errors.Is(err, eventstore.ErrWrongVersion):
		t, detail = ProblemConflict, "the queue changed concurrently too many times; retry"
	case errors.Is(err, query.ErrConflict):
		t = ProblemConflict
	case errors.Is(err, query.ErrStale):
		t, detail = ProblemUnavailable, "the read side has not reached the requested version yet; retry after a moment"
	case errors.Is(err, errUnavailable), errors.Is(err, eventstore.ErrClosed):
		t, detail = ProblemUnavailable, "the service cannot reach its store; retry later"
	case errors.Is(err, ErrProcessorNotRunning):
		t, detail = ProblemUnavailable, "the processor is starting or stopping; retry later"
	default:
		switch faults.Classify(err) {
		case faults.StorageFull:
			t, detail = ProblemStorageFull, "the server's storage is full; retry later"
		case faults.Unavailable:
			t, detail = ProblemUnavailable, "the service cannot reach its store in time; retry later"
		default:
			t, detail = ProblemInternal, "an internal error occurred; the log has the details under the request ID"
		}
	}
	switch {
	case t == ProblemStorageFull:
		p.retryAfter = retryStorageFull
	case t.Status() == http.StatusServiceUnavailable && p.retryAfter <= 0:
		p.retryAfter = retryUnavailable
	}
	d := problem.Of(t, detail)
	p.Type, p.Title, p.Status, p.Detail = d.Type, d.Title, d.Status, d.Detail
	return p
}

// writeProblem answers r with the problem for err and logs it with the
// cause: internal errors at error level, an unavailable dependency or full
// storage at warn (the component's own outage line says more), the rest at
// debug.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	p.Instance = r.URL.Path
	p.RequestID = RequestIDFrom(r.Context())
	level := slog.LevelDebug
	switch {
	case p.Status == http.StatusServiceUnavailable, p.Status == http.StatusInsufficientStorage:
		level = slog.LevelWarn
	case p.Status >= 500:
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "request failed", "status", p.Status, "problem", p.Type, "err", err)
	noteProblem(r.Context(), err)
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
