package command

import (
	"context"
	"log/slog"
	"time"
)

// Handler handles one kind of command. Every handler of this package is
// safe for concurrent use.
type Handler[C, R any] interface {
	Handle(ctx context.Context, cmd C) (R, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc[C, R any] func(ctx context.Context, cmd C) (R, error)

// Handle calls f.
func (f HandlerFunc[C, R]) Handle(ctx context.Context, cmd C) (R, error) { return f(ctx, cmd) }

// Middleware wraps the execution of a command: name is the command's name
// ("EnqueueTask"), cmd its value; it calls next to run the command and
// returns next's error (or its own).
type Middleware func(ctx context.Context, name string, cmd any, next func(context.Context) error) error

// Decorate wraps h with middlewares, the first one outermost.
func Decorate[C, R any](name string, h Handler[C, R], mws ...Middleware) Handler[C, R] {
	for i := len(mws) - 1; i >= 0; i-- {
		mw, inner := mws[i], h
		h = HandlerFunc[C, R](func(ctx context.Context, cmd C) (R, error) {
			var res R
			err := mw(ctx, name, cmd, func(ctx context.Context) error {
				var err error
				res, err = inner.Handle(ctx, cmd)
				return err
			})
			return res, err
		})
	}
	return h
}

// Logging logs every command at Debug when it succeeds and at Info when it
// fails (a refused command is a normal answer, not a server error), with
// its name and duration.
func Logging(log *slog.Logger) Middleware {
	return func(ctx context.Context, name string, cmd any, next func(context.Context) error) error {
		start := time.Now()
		err := next(ctx)
		if err != nil {
			log.InfoContext(ctx, "command refused", "command", name, "duration", time.Since(start), "error", err)
		} else {
			log.DebugContext(ctx, "command handled", "command", name, "duration", time.Since(start))
		}
		return err
	}
}

// Metrics reports every command's name, duration and error to observe
// (e.g. a Prometheus histogram and counter, wired in app).
func Metrics(observe func(name string, d time.Duration, err error)) Middleware {
	return func(ctx context.Context, name string, cmd any, next func(context.Context) error) error {
		start := time.Now()
		err := next(ctx)
		observe(name, time.Since(start), err)
		return err
	}
}

// Handlers are all the command handlers over one Queues, plus GetQueue, the
// aggregate's own current view of a queue (the processor's offline stop
// reads it; GET /api/queue/{playerId} reads the read model instead, and
// the aggregate only where an app runs without read models).
type Handlers struct {
	Queues             *Queues
	EnqueueTask        Handler[EnqueueTask, EnqueueTaskResult]
	RemoveTask         Handler[RemoveTask, Result]
	ReorderTasks       Handler[ReorderTasks, Result]
	StopQueue          Handler[StopQueue, Result]
	StartQueue         Handler[StartQueue, Result]
	CompleteRepetition Handler[CompleteRepetition, Result]
	// CompleteRepetitions is the processor's batch of completions.
	CompleteRepetitions Handler[CompleteRepetitions, []CompletionResult]
	FailTask            Handler[FailTask, Result]
	GetQueue            Handler[GetQueue, QueueSnapshot]
}

// NewHandlers builds every handler on one Queues over store.
func NewHandlers(store EventStore, cfg Config) (*Handlers, error) {
	q, err := NewQueues(store, cfg)
	if err != nil {
		return nil, err
	}
	return HandlersOn(q), nil
}

// HandlersOn builds every handler on q (for a Queues from Queues.Share).
func HandlersOn(q *Queues) *Handlers {
	return &Handlers{
		Queues:              q,
		EnqueueTask:         EnqueueTaskHandler{q},
		RemoveTask:          RemoveTaskHandler{q},
		ReorderTasks:        ReorderTasksHandler{q},
		StopQueue:           StopQueueHandler{q},
		StartQueue:          StartQueueHandler{q},
		CompleteRepetition:  CompleteRepetitionHandler{q},
		CompleteRepetitions: CompleteRepetitionsHandler{q},
		FailTask:            FailTaskHandler{q},
		GetQueue:            GetQueueHandler{q},
	}
}

// Use wraps every handler with mws (see Decorate).
func (h *Handlers) Use(mws ...Middleware) {
	h.EnqueueTask = Decorate("EnqueueTask", h.EnqueueTask, mws...)
	h.RemoveTask = Decorate("RemoveTask", h.RemoveTask, mws...)
	h.ReorderTasks = Decorate("ReorderTasks", h.ReorderTasks, mws...)
	h.StopQueue = Decorate("StopQueue", h.StopQueue, mws...)
	h.StartQueue = Decorate("StartQueue", h.StartQueue, mws...)
	h.CompleteRepetition = Decorate("CompleteRepetition", h.CompleteRepetition, mws...)
	h.CompleteRepetitions = Decorate("CompleteRepetitions", h.CompleteRepetitions, mws...)
	h.FailTask = Decorate("FailTask", h.FailTask, mws...)
	h.GetQueue = Decorate("GetQueue", h.GetQueue, mws...)
}
