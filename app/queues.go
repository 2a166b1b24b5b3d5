package app

import (
	"context"
	"errors"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/query"
	"github.com/taskqueue/taskqueue/web"
	"github.com/taskqueue/taskqueue/web/auth"
)

// queues adapts the command handlers to the web layer's Queues port, and
// reads through the query side's QueueReader. Each command that succeeds
// puts the view it answered with in the reader's cache.
type queues struct {
	h    *command.Handlers
	read query.QueueReader
}

// newQueues reads through cache to the queue read model (view), or to the
// aggregate when no read side runs (view nil). store is the event log the
// read model follows: when a read fails because it was closed, that is the
// error.
func newQueues(h *command.Handlers, cache query.QueueCache, view *query.QueueViewHandler, store eventstore.Store) queues {
	return queues{h: h, read: query.QueueReader{
		Cache: cache,
		View:  view,
		Aggregate: func(ctx context.Context, player domain.PlayerID) (domain.QueueView, error) {
			s, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: string(player)})
			return s.View, err
		},
		Closed: func(ctx context.Context) error {
			if _, err := store.Head(ctx); errors.Is(err, eventstore.ErrClosed) {
				return eventstore.ErrClosed
			}
			return nil
		},
	}}
}

// request turns the web layer's command metadata into command.Request.
func request(m web.CommandMeta) command.Request {
	return command.Request{
		PlayerID:       string(m.Player),
		IdempotencyKey: m.IdempotencyKey,
		IfMatch:        m.IfMatch,
		CorrelationID:  m.RequestID,
		Actor:          actor(m.Actor),
	}
}

// actor names who caused an event (eventstore.Metadata.Actor): the
// player's ID, "admin:<id>" for an admin, "system" for a service.
func actor(p auth.Principal) string {
	switch p.Role {
	case auth.RoleAdmin:
		return "admin:" + p.PlayerID
	case auth.RoleSystem:
		return "system"
	}
	return p.PlayerID
}

func result(r command.Result) web.Result {
	return web.Result{Queue: r.View, Version: r.Version}
}

// Queue reads the queue at minVersion or later (query.QueueReader).
func (q queues) Queue(ctx context.Context, player domain.PlayerID, minVersion int64) (domain.QueueView, error) {
	return q.read.Queue(ctx, player, minVersion)
}

// cached puts the view of a successful command in the cache.
func (q queues) cached(ctx context.Context, res web.Result, err error) (web.Result, error) {
	if err == nil {
		q.read.Put(ctx, res.Queue)
	}
	return res, err
}

func (q queues) Enqueue(ctx context.Context, m web.CommandMeta, t web.EnqueueTask) (web.Result, error) {
	r, err := q.h.EnqueueTask.Handle(ctx, command.EnqueueTask{
		Request: request(m), Type: string(t.Type), Count: t.Count, Position: t.Position,
	})
	res := result(r.Result)
	res.Task = r.Task
	return q.cached(ctx, res, err)
}

func (q queues) Remove(ctx context.Context, m web.CommandMeta, task domain.TaskID) (web.Result, error) {
	r, err := q.h.RemoveTask.Handle(ctx, command.RemoveTask{Request: request(m), TaskID: string(task)})
	return q.cached(ctx, result(r), err)
}

func (q queues) Stop(ctx context.Context, m web.CommandMeta) (web.Result, error) {
	r, err := q.h.StopQueue.Handle(ctx, command.StopQueue{Request: request(m)})
	return q.cached(ctx, result(r), err)
}

func (q queues) Start(ctx context.Context, m web.CommandMeta) (web.Result, error) {
	r, err := q.h.StartQueue.Handle(ctx, command.StartQueue{Request: request(m)})
	return q.cached(ctx, result(r), err)
}

func (q queues) Reorder(ctx context.Context, m web.CommandMeta, order []domain.TaskID) (web.Result, error) {
	ids := make([]string, len(order))
	for i, id := range order {
		ids[i] = string(id)
	}
	r, err := q.h.ReorderTasks.Handle(ctx, command.ReorderTasks{Request: request(m), Order: ids})
	return q.cached(ctx, result(r), err)
}
