package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// DeadLetterQueue is the processor's dead letter queue as the admin API
// uses it (app adapts the processor's to it). Retry needs the running
// processor's own queue: while there is none it returns an error wrapping
// ErrProcessorNotRunning (503); an unknown ID is an error wrapping
// ErrDeadLetterNotFound (404).
type DeadLetterQueue interface {
	List(ctx context.Context, limit int, includeRetried bool) ([]DeadLetter, error)
	Retry(ctx context.Context, id string) error
}

// Errors a DeadLetterQueue wraps for problemFor.
var (
	ErrDeadLetterNotFound  = errors.New("dead letter not found")
	ErrProcessorNotRunning = errors.New("the processor is not running")
)

// DeadLetter is a command that failed after every retry, as GET
// /api/admin/deadletters lists it (its JSON is the API's).
type DeadLetter struct {
	// ID is the failed message's UUID.
	ID string `json:"id"`
	// Topic is the command topic it came from (and is re-sent to).
	Topic string `json:"topic"`
	// Command is the command's name, e.g. "CompleteRepetition".
	Command string `json:"command"`
	// Payload is the command's JSON.
	Payload json.RawMessage `json:"payload"`
	// Error is the last error the processor recorded.
	Error         string     `json:"error"`
	CorrelationID string     `json:"correlationId"`
	FailedAt      time.Time  `json:"failedAt"`
	RetriedAt     *time.Time `json:"retriedAt"`
	Retries       int        `json:"retries"`
}

// maxDeadLetters is the largest ?limit= of GET /api/admin/deadletters (the
// processor's own bound).
const maxDeadLetters = 1000

type deadLettersPage struct {
	DeadLetters []DeadLetter `json:"deadLetters"`
}

// adminDeadLetters lists the dead letters, newest first: those not retried,
// or all with ?all=true; ?limit= (1-1000, default 100).
func (s *Server) adminDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil || s.admin.DeadLetters == nil {
		s.notImplemented(w, r)
		return
	}
	v := r.URL.Query()
	all := false
	if raw := v.Get("all"); raw != "" {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			s.writeProblem(w, r, badField("all", "must be true or false, got %q", raw))
			return
		}
		all = b
	}
	limit := 100
	if raw := v.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxDeadLetters {
			s.writeProblem(w, r, badField("limit", "must be an integer from 1 to %d, got %q", maxDeadLetters, raw))
			return
		}
		limit = n
	}
	list, err := s.admin.DeadLetters.List(r.Context(), limit, all)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if list == nil {
		list = []DeadLetter{}
	}
	writeJSON(w, http.StatusOK, deadLettersPage{DeadLetters: list})
}

// adminRetryDeadLetter re-sends dead letter {id} to its command topic
// (202): if it fails again it comes back as a new dead letter.
func (s *Server) adminRetryDeadLetter(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil || s.admin.DeadLetters == nil {
		s.notImplemented(w, r)
		return
	}
	id := chi.URLParam(r, "id")
	if err := s.admin.DeadLetters.Retry(r.Context(), id); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "retried"})
}
