package command

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict: the command lost to concurrent writers more times than
	// it retries (HTTP 409 "conflict").
	ErrConflict = errors.New("too many concurrent changes to the queue")
	// ErrIdempotencyKeyReused: the idempotency key was used before by a
	// different request (HTTP 422 "idempotency-key-reused").
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	// ErrPreconditionFailed is matched by every *PreconditionFailedError.
	ErrPreconditionFailed = errors.New("precondition failed")
)

// PreconditionFailedError reports a conditional command (If-Match) whose
// expected version is not the queue's version (HTTP 412).
type PreconditionFailedError struct {
	Stream   string
	Expected int64
	Actual   int64
}

func (e *PreconditionFailedError) Error() string {
	return fmt.Sprintf("%s: expected version %d, the queue is at version %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrPreconditionFailed) true.
func (e *PreconditionFailedError) Is(target error) bool { return target == ErrPreconditionFailed }
