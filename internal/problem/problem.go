// Package problem is the vocabulary of taskqueue's errors as clients see
// them (docs/API.md, "Errors"): the closed set of problem types, each with
// its HTTP status and title, and the RFC 9457 document that carries one.
// web answers HTTP requests with them (the one place an error becomes an
// HTTP answer); realtime sends the same documents in its "error" messages.
// Clients switch on the type names: renaming one breaks them.
package problem

import "net/http"

// Type is the stable kind of an error.
type Type struct {
	name   string
	status int
	title  string
}

// The problem types of docs/API.md.
var (
	Validation           = Type{"validation", http.StatusBadRequest, "Invalid request"}
	Unauthorized         = Type{"unauthorized", http.StatusUnauthorized, "Unauthorized"}
	Forbidden            = Type{"forbidden", http.StatusForbidden, "Forbidden"}
	NotFound             = Type{"not-found", http.StatusNotFound, "Not found"}
	MethodNotAllowed     = Type{"method-not-allowed", http.StatusMethodNotAllowed, "Method not allowed"}
	QueueFull            = Type{"queue-full", http.StatusConflict, "Queue is full"}
	Conflict             = Type{"conflict", http.StatusConflict, "Conflict"}
	PreconditionFailed   = Type{"precondition-failed", http.StatusPreconditionFailed, "Precondition failed"}
	PayloadTooLarge      = Type{"payload-too-large", http.StatusRequestEntityTooLarge, "Payload too large"}
	RequirementNotMet    = Type{"requirement-not-met", http.StatusUnprocessableEntity, "Requirement not met"}
	IdempotencyKeyReused = Type{"idempotency-key-reused", http.StatusUnprocessableEntity, "Idempotency key reused"}
	RateLimited          = Type{"rate-limited", http.StatusTooManyRequests, "Too many requests"}
	NotImplemented       = Type{"not-implemented", http.StatusNotImplemented, "Not implemented"}
	Unavailable          = Type{"unavailable", http.StatusServiceUnavailable, "Service unavailable"}
	StorageFull          = Type{"storage-full", http.StatusInsufficientStorage, "Insufficient storage"}
	Internal             = Type{"internal", http.StatusInternalServerError, "Internal error"}
)

// TypePrefix starts every problem type URI.
const TypePrefix = "urn:taskqueue:problem:"

// Name returns the type's name, e.g. "validation".
func (t Type) Name() string { return t.name }

// URI returns the type's URI, e.g. "urn:taskqueue:problem:validation".
func (t Type) URI() string { return TypePrefix + t.name }

// Status returns the HTTP status of the type.
func (t Type) Status() int { return t.status }

// Title returns the type's title.
func (t Type) Title() string { return t.title }

// Details is an RFC 9457 problem details document.
type Details struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Field     string `json:"field,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

// Of returns the document of type t with detail.
func Of(t Type, detail string) Details {
	return Details{Type: t.URI(), Title: t.title, Status: t.status, Detail: detail}
}
