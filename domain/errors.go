package domain

import (
	"errors"
	"fmt"
)

// Conditions a decision can refuse with. Callers match them with errors.Is;
// the web layer maps each to one problem+json type (docs/API.md).
var (
	// ErrInvalid is wrapped by every error about bad input (a field out of
	// range, a malformed ID, an order that is not a permutation). Every
	// *ValidationError matches it.
	ErrInvalid = errors.New("invalid input")
	// ErrQueueFull: the queue already holds its limit of tasks.
	ErrQueueFull = errors.New("queue is full")
	// ErrRequirementNotMet: the player's skill level is below the task
	// type's requirement. The error is a *RequirementError.
	ErrRequirementNotMet = errors.New("level requirement not met")
	// ErrUnknownTaskType: the catalog has no such task type. The error is
	// also a *ValidationError on the field "type".
	ErrUnknownTaskType = errors.New("unknown task type")
	// ErrTaskNotFound: no task with that ID is in the queue.
	ErrTaskNotFound = errors.New("task not found")
	// ErrRepetitionNotDue: a completion arrived before the running
	// repetition's due time (a processor whose clock runs ahead).
	ErrRepetitionNotDue = errors.New("repetition is not due yet")
	// ErrInconsistentEvent: an event does not fit the state it is applied
	// to (a stream written by a buggy or foreign writer).
	ErrInconsistentEvent = errors.New("event does not fit the queue's state")
	// ErrUnknownEvent: an event type this version does not know.
	ErrUnknownEvent = errors.New("unknown event type")
	// ErrNewerSchema: an event written with a schema version newer than
	// this code knows (a newer server wrote it); it cannot be read safely.
	ErrNewerSchema = errors.New("event schema version is newer than supported")
	// ErrInvalidCatalog is wrapped by every catalog load error.
	ErrInvalidCatalog = errors.New("invalid catalog")
)

// ValidationError names the input field that is wrong. It matches
// ErrInvalid, and Err (when set) as well, with errors.Is.
type ValidationError struct {
	// Field is the name of the field in the request (JSON name), e.g. "count".
	Field string
	// Reason says what is wrong, for a person: "must be between 1 and 1000".
	Reason string
	// Err is an optional more specific condition, e.g. ErrUnknownTaskType.
	Err error
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the more specific condition, if any.
func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// RequirementError reports a task type whose level requirement the player
// does not meet. It matches ErrRequirementNotMet.
type RequirementError struct {
	TaskType TaskTypeID
	Skill    SkillID
	Required int
	Level    int
}

func (e *RequirementError) Error() string {
	return fmt.Sprintf("%s needs %s level %d, the player has level %d", e.TaskType, e.Skill, e.Required, e.Level)
}

// Is makes errors.Is(err, ErrRequirementNotMet) true.
func (e *RequirementError) Is(target error) bool { return target == ErrRequirementNotMet }

// CatalogError names one bad entry of a catalog. ParseCatalog joins every
// problem it finds (errors.Join); each matches ErrInvalidCatalog.
type CatalogError struct {
	// Entry names the entry: "task \"saw-planks\"", "item \"logs\"".
	Entry string
	// Problem says what is wrong with it.
	Problem string
}

func (e *CatalogError) Error() string { return e.Entry + ": " + e.Problem }

// Is makes errors.Is(err, ErrInvalidCatalog) true.
func (e *CatalogError) Is(target error) bool { return target == ErrInvalidCatalog }
