// Package projectiontest makes event logs for the read side's tests and
// benchmarks: a random but reproducible workload of domain commands on many
// players' queues, decided by the real domain.Queue and appended through the
// real eventstore.Store, so projections are tested on the events the game
// writes. It also compares read-model tables row by row.
package projectiontest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// Workload is a random sequence of commands on Players queues.
type Workload struct {
	// Seed makes the workload reproducible (the event IDs are random).
	Seed uint64
	// Players is the number of queues, named p0, p1, ... (with Prefix).
	Players int
	// Prefix starts every player ID (so two workloads in one log differ).
	Prefix string
	// Commands is the number of commands decided in total.
	Commands int
	// PerAppend is how many commands of one player are appended together
	// (1 = one append per command, as the HTTP API does; more fills a log
	// quickly for benchmarks). Default 1.
	PerAppend int
	// Start is the game time of the first command; each command advances
	// the clock by 0-4 s. Default 2026-11-29T00:00:00Z.
	Start time.Time
	// Rules of the game; the zero value is the default catalog and limit.
	Rules domain.Rules
}

// Result is what a workload did.
type Result struct {
	// Queues are the aggregates after every command, by player: what the
	// read models must show.
	Queues map[domain.PlayerID]*domain.Queue
	// Events is the number of events appended.
	Events int
	// End is the game time after the last command.
	End time.Time
	// Last is the position of the last event appended: a reader that has
	// passed it has seen the whole workload (on PostgreSQL the log's safe
	// head may lag behind it while other transactions are open).
	Last eventstore.Position
}

// Run decides the commands and appends their events to store.
func (w Workload) Run(ctx context.Context, store eventstore.Store) (Result, error) {
	if w.Players <= 0 || w.Commands < 0 {
		return Result{}, fmt.Errorf("workload: %d players, %d commands", w.Players, w.Commands)
	}
	if w.PerAppend <= 0 {
		w.PerAppend = 1
	}
	if w.Start.IsZero() {
		w.Start = time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(w.Seed, w.Seed^0x9e3779b97f4a7c15))
	cat := w.Rules.Catalog
	if cat == nil {
		cat = domain.DefaultCatalog()
	}
	types := cat.Tasks()
	res := Result{Queues: map[domain.PlayerID]*domain.Queue{}}
	pending := map[domain.PlayerID][]domain.Event{}
	counts := map[domain.PlayerID]int{}
	flush := func(p domain.PlayerID) error {
		evs := pending[p]
		if len(evs) == 0 {
			return nil
		}
		q := res.Queues[p]
		for start := 0; start < len(evs); start += eventstore.MaxEventsPerAppend {
			chunk := evs[start:min(start+eventstore.MaxEventsPerAppend, len(evs))]
			data := make([]eventstore.EventData, len(chunk))
			for i, e := range chunk {
				typ, sv, b, err := domain.EncodeEvent(e)
				if err != nil {
					return err
				}
				data[i] = eventstore.EventData{ID: uuid.New(), Type: string(typ), SchemaVersion: sv, Data: b,
					Metadata: eventstore.Metadata{OccurredAt: e.OccurredAt(), Actor: string(p)}}
			}
			expected := q.Version() - int64(len(evs)-start)
			ar, err := store.Append(ctx, p.Stream(), eventstore.Exact(expected), data...)
			if err != nil {
				return fmt.Errorf("workload: append %d events to %s: %w", len(data), p.Stream(), err)
			}
			if res.Last.Less(ar.Position) {
				res.Last = ar.Position
			}
		}
		res.Events += len(evs)
		pending[p] = nil
		return nil
	}
	now := w.Start
	taskN := 0
	for i := 0; i < w.Commands; i++ {
		now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
		p := domain.PlayerID(fmt.Sprintf("%sp%d", w.Prefix, rng.IntN(w.Players)))
		q := res.Queues[p]
		if q == nil {
			q = domain.NewQueue(p, w.Rules)
			res.Queues[p] = q
		}
		var evs []domain.Event
		var err error
		switch c := rng.IntN(100); {
		case c < 35:
			taskN++
			t := types[rng.IntN(len(types))]
			var pos *int
			if rng.IntN(4) == 0 && q.Len() > 0 {
				n := rng.IntN(q.Len() + 1)
				pos = &n
			}
			evs, err = q.Enqueue(domain.TaskID(fmt.Sprintf("t%d", taskN)), t.ID, 1+rng.IntN(5), pos, now)
		case c < 45:
			v := q.View()
			if len(v.Tasks) > 0 {
				evs, err = q.Remove(v.Tasks[rng.IntN(len(v.Tasks))].TaskID, now)
			}
		case c < 55:
			v := q.View()
			var waiting []domain.TaskID
			for j, t := range v.Tasks {
				if j == 0 && v.Repetition != nil {
					continue
				}
				waiting = append(waiting, t.TaskID)
			}
			if len(waiting) > 1 {
				rng.Shuffle(len(waiting), func(a, b int) { waiting[a], waiting[b] = waiting[b], waiting[a] })
				evs, err = q.Reorder(slices.Clone(waiting), now)
			}
		case c < 60:
			evs, err = q.Stop("", now)
		case c < 65:
			evs, err = q.Start(now)
		default:
			evs, err = q.Advance(now)
		}
		if err != nil {
			continue // a refused command (queue full, level too low, ...) writes nothing
		}
		pending[p] = append(pending[p], evs...)
		counts[p]++
		if counts[p]%w.PerAppend == 0 {
			if err := flush(p); err != nil {
				return res, err
			}
		}
	}
	for _, p := range slices.Sorted(func(yield func(domain.PlayerID) bool) {
		for p := range pending {
			if !yield(p) {
				return
			}
		}
	}) {
		if err := flush(p); err != nil {
			return res, err
		}
	}
	res.End = now
	return res, nil
}
