// Package query owns the read side's handlers: one file per query, each a
// plain struct (the query) and a handler over a small read-model interface
// declared beside it. The interfaces are implemented in projections/ for
// PostgreSQL and SQLite (projections.ReadModels, projections.Admin); web/
// routes HTTP requests to the handlers and maps their errors:
//
//   - *domain.ValidationError (matches domain.ErrInvalid): bad input, with
//     the field (malformed cursor, from after to, page size over the
//     maximum, a malformed player ID or position) -> 400 validation;
//   - ErrNotFound: an unknown projection -> 404 not-found;
//   - ErrConflict: a rebuild already running, a skip refused -> 409 conflict;
//   - ErrStale: the read model did not reach the requested version in time
//     (read-your-writes wait) -> the handler still returns the latest view.
//
// Handlers are safe for concurrent use. They never write, except the
// projection admin commands (rebuild, skip, retry), which go to the runner.
package query

import (
	"errors"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
)

var (
	// ErrNotFound: no such projection.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with what is running (a rebuild in
	// progress, a skip of an event the projection did not fail on or that
	// applies now).
	ErrConflict = errors.New("conflict")
	// ErrStale: the read model had not reached the requested stream
	// version when the wait ended.
	ErrStale = errors.New("read model has not reached the requested version")
)

func invalid(field, format string, args ...any) error {
	return &domain.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
