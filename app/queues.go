package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/query"
	"github.com/taskqueue/taskqueue/queuecache"
	"github.com/taskqueue/taskqueue/web"
	"github.com/taskqueue/taskqueue/web/auth"
)

// queues adapts the command handlers and the queue read model to the web
// layer's Queues port. Commands run on the aggregate and answer its view;
// each that succeeds puts its view in the queue cache (conditional on the
// version, so an older view never replaces a newer). Reads go through the
// cache to the queue_status read model (view), or to the aggregate when no
// read side runs (view nil).
type queues struct {
	h     *command.Handlers
	cache *queuecache.Cache
	view  *query.QueueViewHandler
	// store is the event log the read model follows: when a read of the
	// read model fails because the store was closed, that is the error.
	store eventstore.Store
}

var _ web.Queues = queues{}

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

// Queue reads the queue: a cached view when one is cached at minVersion or
// later, else the read model (waiting for minVersion) and caches it.
func (q queues) Queue(ctx context.Context, player domain.PlayerID, minVersion int64) (domain.QueueView, error) {
	v, err := q.cache.Get(ctx, player, func(ctx context.Context) (domain.QueueView, error) {
		return q.load(ctx, player, minVersion)
	})
	if err != nil || v.Version >= minVersion {
		return v, err
	}
	// The cached view is older than the client's own write.
	if v, err = q.load(ctx, player, minVersion); err != nil {
		return domain.QueueView{}, err
	}
	q.cache.Put(ctx, v)
	return v, nil
}

// load reads the queue from the read model, or from the aggregate without
// one. A view older than minVersion is never returned: the error then
// matches query.ErrStale.
func (q queues) load(ctx context.Context, player domain.PlayerID, minVersion int64) (domain.QueueView, error) {
	if q.view != nil {
		v, err := q.view.Handle(ctx, query.QueueView{PlayerID: string(player), MinVersion: minVersion})
		if err != nil {
			return domain.QueueView{}, q.closedOr(ctx, err)
		}
		return v, nil
	}
	s, err := q.h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: string(player)})
	if err != nil {
		return domain.QueueView{}, err
	}
	if s.View.Version < minVersion {
		// The aggregate is the latest state: the version does not exist.
		return domain.QueueView{}, fmt.Errorf("queue of %s at version %d, asked for %d: %w", player, s.View.Version, minVersion, query.ErrStale)
	}
	return s.View, nil
}

// closedOr returns err, marked eventstore.ErrClosed when the store is
// closed (the read model's database/sql pool then only says "database is
// closed"): the web layer answers 503 for it, like for a command.
func (q queues) closedOr(ctx context.Context, err error) error {
	if q.store == nil || errors.Is(err, query.ErrStale) || errors.Is(err, domain.ErrInvalid) {
		return err
	}
	if _, herr := q.store.Head(ctx); errors.Is(herr, eventstore.ErrClosed) {
		return fmt.Errorf("%w: %w", eventstore.ErrClosed, err)
	}
	return err
}

// cached puts the view of a successful command in the cache.
func (q queues) cached(ctx context.Context, res web.Result, err error) (web.Result, error) {
	if err == nil {
		q.cache.Put(ctx, res.Queue)
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
