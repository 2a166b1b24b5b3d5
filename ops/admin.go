package ops

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// MaxAdminEvents bounds GET /api/admin/players/{id}/events (and its default
// limit).
const MaxAdminEvents = 1000

// AdminEventsPage is the body of GET /api/admin/players/{id}/events.
type AdminEventsPage struct {
	Events []EventLine `json:"events"`
}

// AdminEvents answers GET /api/admin/players/{id}/events?from=&type=&limit=:
// from is a time or a position (ParseMoment), type may repeat or be
// comma-separated, limit is 1..MaxAdminEvents (default MaxAdminEvents).
// Bad parameters are a *domain.ValidationError naming the parameter (web
// maps it to 400).
func AdminEvents(ctx context.Context, store eventstore.Store, player string, params url.Values) (AdminEventsPage, error) {
	q := EventsQuery{Player: domain.PlayerID(player), Limit: MaxAdminEvents}
	if _, err := domain.ParsePlayerID(player); err != nil {
		return AdminEventsPage{}, &domain.ValidationError{Field: "playerId", Reason: err.Error()}
	}
	var err error
	if q.From, err = ParseMoment(params.Get("from")); err != nil {
		return AdminEventsPage{}, &domain.ValidationError{Field: "from", Reason: "must be an RFC 3339 time or a position"}
	}
	for _, t := range params["type"] {
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				q.Types = append(q.Types, s)
			}
		}
	}
	if l := params.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxAdminEvents {
			return AdminEventsPage{}, &domain.ValidationError{Field: "limit", Reason: "must be between 1 and " + strconv.Itoa(MaxAdminEvents)}
		}
		q.Limit = n
	}
	evs, err := PlayerEvents(ctx, store, q)
	if err != nil {
		return AdminEventsPage{}, err
	}
	page := AdminEventsPage{Events: make([]EventLine, len(evs))}
	for i, e := range evs {
		page.Events[i] = LineOf(e)
	}
	return page, nil
}

// AdminQueueAt answers GET /api/admin/players/{id}/queue?at=: the queue as
// it was at a time or a position (all events when at is absent).
func AdminQueueAt(ctx context.Context, store eventstore.Store, player string, params url.Values, rules domain.Rules) (QueueAtResult, error) {
	if _, err := domain.ParsePlayerID(player); err != nil {
		return QueueAtResult{}, &domain.ValidationError{Field: "playerId", Reason: err.Error()}
	}
	at, err := ParseMoment(params.Get("at"))
	if err != nil {
		return QueueAtResult{}, &domain.ValidationError{Field: "at", Reason: "must be an RFC 3339 time or a position"}
	}
	return QueueAt(ctx, store, domain.PlayerID(player), at, rules)
}
