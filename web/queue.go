package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/query"
)

// Queues runs the queue's commands and reads a queue. app adapts the
// command handlers (command/) and the read side's queue view (query/) to
// it; of the write side, web knows only command's errors and key rule
// (problemFor, ValidateKey); the dead letters come through their own port
// (DeadLetterQueue, deadletters.go).
//
// Errors are returned as the domain, command and store packages make them
// (command.ErrPreconditionFailed for an If-Match that did not match,
// command.ErrIdempotencyKeyReused, command.ErrConflict, domain errors);
// problemFor maps them.
type Queues interface {
	// Queue returns the queue of player. With minVersion > 0 it returns a
	// view at that stream version or later, waiting a bounded time for the
	// read side to reach it; when it does not in time it returns an error
	// matching query.ErrStale (503 with Retry-After), never an older view.
	Queue(ctx context.Context, player domain.PlayerID, minVersion int64) (domain.QueueView, error)
	// Enqueue adds a task; Result.Task is the task as queued.
	Enqueue(ctx context.Context, m CommandMeta, task EnqueueTask) (Result, error)
	// Remove takes a task out of the queue.
	Remove(ctx context.Context, m CommandMeta, task domain.TaskID) (Result, error)
	// Stop stops the queue.
	Stop(ctx context.Context, m CommandMeta) (Result, error)
	// Start starts the queue.
	Start(ctx context.Context, m CommandMeta) (Result, error)
	// Reorder permutes the waiting tasks.
	Reorder(ctx context.Context, m CommandMeta, order []domain.TaskID) (Result, error)
}

// CommandMeta is what every command request carries besides its body.
type CommandMeta struct {
	// Player owns the queue the command acts on.
	Player domain.PlayerID
	// Actor is who sends the command (the token's principal).
	Actor auth.Principal
	// IdempotencyKey is the client's Idempotency-Key, or "" when it sent
	// none (the command then makes one: the request is not retry-safe). A
	// retry with the same key and the same content answers the first
	// result; with other content it is refused.
	IdempotencyKey string
	// IfMatch, when not nil, is the version the queue must have.
	IfMatch *int64
	// RequestID correlates the events with the request's log lines.
	RequestID string
}

// EnqueueTask is the body of POST /api/queue/{playerId}/tasks.
type EnqueueTask struct {
	Type     domain.TaskTypeID `json:"type"`
	Count    int               `json:"count"`
	Position *int              `json:"position,omitempty"`
}

// Result is what a command answers.
type Result struct {
	// Queue is the queue after the command (for a retried one: as it is now).
	Queue domain.QueueView
	// Version is the queue's version right after the command (for a
	// retried one: right after its first run); the ETag of a 201.
	Version int64
	// Task is the task a command acted on (Enqueue: the task as queued).
	Task domain.TaskView
}

type reorderRequest struct {
	Order []domain.TaskID `json:"order"`
}

// etag is the queue's entity tag: its version, quoted.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// parseIfMatch reads If-Match: absent (nil), or one strong or weak entity
// tag holding a version.
func parseIfMatch(r *http.Request) (*int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return nil, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, badField("If-Match", "must be one entity tag like \"14\" (the queue's version), got %q", h)
	}
	return &n, nil
}

// parseIdempotencyKey reads Idempotency-Key (see command.ValidateKey).
func parseIdempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "", nil
	}
	if err := command.ValidateKey(k); err != nil {
		return "", err
	}
	return k, nil
}

// commandMeta reads what every command carries, and the body.
func (s *Server) commandMeta(r *http.Request) (CommandMeta, []byte, error) {
	key, err := parseIdempotencyKey(r)
	if err != nil {
		return CommandMeta{}, nil, err
	}
	ifMatch, err := parseIfMatch(r)
	if err != nil {
		return CommandMeta{}, nil, err
	}
	var body []byte
	if r.Body != nil {
		if body, err = io.ReadAll(r.Body); err != nil {
			return CommandMeta{}, nil, err
		}
	}
	p, _ := auth.PrincipalFrom(r.Context())
	return CommandMeta{
		Player:         domain.PlayerID(chi.URLParam(r, "playerId")),
		Actor:          p,
		IdempotencyKey: key,
		IfMatch:        ifMatch,
		RequestID:      RequestIDFrom(r.Context()),
	}, body, nil
}

// decodeBody decodes a body already read by commandMeta.
func decodeBody(r *http.Request, body []byte, v any) error {
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	return decodeJSON(r2, v)
}

// writeQueue answers with the queue view, its state (query.QueueStateOf:
// idle, running or stopped), its ETag and the server's time.
func (s *Server) writeQueue(w http.ResponseWriter, status int, v domain.QueueView) {
	b, err := json.Marshal(v)
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		// A QueueView always marshals to an object; this is a bug.
		b = []byte(`{}`)
	}
	now, _ := json.Marshal(s.now().UTC().Format(time.RFC3339Nano))
	state, _ := json.Marshal(query.QueueStateOf(v))
	b = append(b[:len(b)-1], `,"state":`...)
	b = append(b, state...)
	b = append(b, `,"serverTime":`...)
	b = append(b, now...)
	b = append(b, '}', '\n')
	w.Header().Set("ETag", etag(v.Version))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// MinVersionParam is the query parameter of GET /api/queue/{playerId} that
// asks for read-your-writes: the answer shows the queue at this stream
// version (the ETag of the client's own command) or later.
const MinVersionParam = "minVersion"

// parseMinVersion reads ?minVersion=N: absent is 0 (no wait).
func parseMinVersion(r *http.Request) (int64, error) {
	q := r.URL.Query()
	if !q.Has(MinVersionParam) {
		return 0, nil
	}
	raw := q.Get(MinVersionParam)
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 || len(q[MinVersionParam]) > 1 {
		return 0, badField(MinVersionParam, "must be one stream version, an integer >= 0 (the version in the ETag of a command's answer), got %q", raw)
	}
	return n, nil
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) {
	minVersion, err := parseMinVersion(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	v, err := s.queues.Queue(r.Context(), domain.PlayerID(chi.URLParam(r, "playerId")), minVersion)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Trim(strings.TrimPrefix(inm, "W/"), `"`) == strconv.FormatInt(v.Version, 10) {
		w.Header().Set("ETag", etag(v.Version))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.writeQueue(w, http.StatusOK, v)
}

func (s *Server) enqueue(w http.ResponseWriter, r *http.Request) {
	m, body, err := s.commandMeta(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req EnqueueTask
	if err := decodeBody(r, body, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if req.Type == "" {
		s.writeProblem(w, r, badField("type", "is required"))
		return
	}
	res, err := s.queues.Enqueue(r.Context(), m, req)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/queue/"+string(m.Player)+"/tasks/"+string(res.Task.TaskID))
	w.Header().Set("ETag", etag(res.Version))
	writeJSON(w, http.StatusCreated, res.Task)
}

func (s *Server) removeTask(w http.ResponseWriter, r *http.Request) {
	m, _, err := s.commandMeta(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	id, err := domain.ParseTaskID(chi.URLParam(r, "taskId"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.answer(w, r)(s.queues.Remove(r.Context(), m, id))
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	m, _, err := s.commandMeta(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.answer(w, r)(s.queues.Stop(r.Context(), m))
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	m, _, err := s.commandMeta(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.answer(w, r)(s.queues.Start(r.Context(), m))
}

func (s *Server) reorder(w http.ResponseWriter, r *http.Request) {
	m, body, err := s.commandMeta(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req reorderRequest
	if err := decodeBody(r, body, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if req.Order == nil {
		s.writeProblem(w, r, badField("order", "is required"))
		return
	}
	s.answer(w, r)(s.queues.Reorder(r.Context(), m, req.Order))
}

// answer writes a command's result as the queue view, or its error.
func (s *Server) answer(w http.ResponseWriter, r *http.Request) func(Result, error) {
	return func(res Result, err error) {
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		s.writeQueue(w, http.StatusOK, res.Queue)
	}
}
