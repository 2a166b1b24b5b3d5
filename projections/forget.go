package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// PlayerForgetter is implemented by a projection whose tables keep rows of
// one player (keyed by player). ForgetPlayer deletes them from one
// generation's tables (named through t) inside tx and reports how many
// rows it deleted. It reports rebuild true when the tables also hold sums
// over all players that still count the player's events (Analytics' daily
// totals): only a rebuild from the log, which no longer has them, takes
// those out exactly.
type PlayerForgetter interface {
	ForgetPlayer(ctx context.Context, tx Tx, t Tables, player domain.PlayerID) (rows int64, rebuild bool, err error)
}

// ForgetResult reports Runner.Forget.
type ForgetResult struct {
	// Rows is the number of read-model rows deleted.
	Rows int64
	// Rebuilds names, by projection, the generation rebuilt to take the
	// player out of its sums.
	Rebuilds map[string]string
}

// forgetWait bounds how long Forget waits for the projections to pass the
// deleted events before it deletes the rows a second time.
const forgetWait = 10 * time.Second

// Forget removes what the read models of this runner's projections hold of
// player, after the player's stream was deleted from the log
// (eventstore.Store.DeleteStream) with upTo the log's head then. It deletes
// the player's rows from every generation at once (nothing of the player
// is read back from then on), waits (at most forgetWait) until every
// projection has read past upTo, so that no batch read before the deletion
// is still to commit, and deletes them again; then it starts a rebuild of
// each projection whose sums count the player (a rebuild already under way
// is left to finish: it may have counted the player before the deletion,
// and then the operator rebuilds again). Safe to call again.
func (r *Runner) Forget(ctx context.Context, player domain.PlayerID, upTo eventstore.Position) (ForgetResult, error) {
	res := ForgetResult{Rebuilds: map[string]string{}}
	r.cache.drop() // pages read before the deletion
	rebuild, err := r.forgetRows(ctx, player, &res)
	if err != nil {
		return res, err
	}
	if err := r.waitPast(ctx, upTo, forgetWait); err != nil {
		return res, err
	}
	r.cache.drop()
	if _, err := r.forgetRows(ctx, player, &res); err != nil {
		return res, err
	}
	for _, name := range rebuild {
		gen, err := r.Rebuild(ctx, name)
		if err != nil && !errors.Is(err, ErrRebuildInProgress) {
			return res, fmt.Errorf("forget %s: %w", player, err)
		}
		if gen != "" {
			res.Rebuilds[name] = gen
		}
	}
	return res, nil
}

// forgetRows deletes player's rows from every generation of every
// PlayerForgetter, and returns the projections to rebuild.
func (r *Runner) forgetRows(ctx context.Context, player domain.PlayerID, res *ForgetResult) ([]string, error) {
	var rebuild []string
	for _, name := range r.order {
		n, again, err := forgetIn(ctx, r.cfg.DB, r.projs[name].p, player)
		res.Rows += n
		if err != nil {
			return nil, err
		}
		if again {
			rebuild = append(rebuild, name)
		}
	}
	return rebuild, nil
}

// ForgetOutside deletes player's rows from every generation of p in db,
// for a projection that no Runner of this process runs (the processor's
// schedule when the processor runs elsewhere). Unlike Runner.Forget it
// cannot wait for the projection to pass the erased events, nor rebuild it.
func ForgetOutside(ctx context.Context, db DB, p Projection, player domain.PlayerID) (ForgetResult, error) {
	n, _, err := forgetIn(ctx, db, p, player)
	return ForgetResult{Rows: n}, err
}

// forgetIn deletes player's rows from every generation of p (when p is a
// PlayerForgetter) and reports how many, and whether p asks for a rebuild.
func forgetIn(ctx context.Context, db DB, p Projection, player domain.PlayerID) (rows int64, rebuild bool, _ error) {
	f, ok := forgetterOf(p)
	if !ok {
		return 0, false, nil
	}
	cps, err := loadCheckpoints(ctx, db, p.Name())
	if err != nil {
		return 0, false, fmt.Errorf("forget %s in %s: %w", player, p.Name(), err)
	}
	for _, c := range cps {
		err := db.InTx(ctx, func(tx Tx) error {
			n, rb, err := f.ForgetPlayer(ctx, tx, Tables{generation: c.generation}, player)
			rows += n
			rebuild = rebuild || rb
			return err
		})
		if err != nil {
			return rows, false, fmt.Errorf("forget %s in %s generation %s: %w", player, p.Name(), c.generation, err)
		}
	}
	return rows, rebuild, nil
}

// forgetterOf returns p as a PlayerForgetter, looking through decorators
// that say what they decorate (tracing.Projection).
func forgetterOf(p Projection) (PlayerForgetter, bool) {
	for {
		if f, ok := p.(PlayerForgetter); ok {
			return f, true
		}
		u, ok := p.(interface{ Unwrap() Projection })
		if !ok {
			return nil, false
		}
		p = u.Unwrap()
	}
}

// waitPast waits until every projection's active generation has read the
// log up to upTo (its checkpoint is there, or nothing it reads is left at
// or before upTo), or d has passed.
func (r *Runner) waitPast(ctx context.Context, upTo eventstore.Position, d time.Duration) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		committed := r.Committed()
		done, err := r.past(ctx, upTo)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			r.cfg.Logger.Warn("forget: projections did not pass the deleted events in time; deleting the rows again anyway", "upTo", upTo.String())
			return nil
		case <-committed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Runner) past(ctx context.Context, upTo eventstore.Position) (bool, error) {
	for _, name := range r.order {
		pr := r.projs[name]
		cps, err := loadCheckpoints(ctx, r.cfg.DB, name)
		if err != nil {
			return false, err
		}
		active := false
		for _, c := range cps {
			active = active || c.active
			if !c.active || !c.position.Less(upTo) {
				continue
			}
			next, err := r.cfg.Store.ReadAll(ctx, c.position, pr.p.Filter(), 1)
			if err != nil {
				return false, err
			}
			if len(next) > 0 && !upTo.Less(next[0].Position) {
				return false, nil
			}
		}
		if !active {
			// The runner has not started this projection yet (a process
			// that just opened its read models): it has read nothing.
			return false, nil
		}
	}
	return true, nil
}

// deletePlayerRows deletes player's rows from the tables (each with a
// player_id column) of one generation.
func deletePlayerRows(ctx context.Context, tx Tx, t Tables, player domain.PlayerID, tables ...string) (int64, error) {
	var total int64
	for _, table := range tables {
		n, err := tx.Exec(ctx, `DELETE FROM `+t.Name(table)+` WHERE player_id = $1`, string(player))
		if err != nil {
			return total, fmt.Errorf("delete from %s: %w", t.Name(table), err)
		}
		total += n
	}
	return total, nil
}

// ForgetPlayer implements PlayerForgetter: the player's queue_status and
// task_history rows.
func (Queues) ForgetPlayer(ctx context.Context, tx Tx, t Tables, player domain.PlayerID) (int64, bool, error) {
	n, err := deletePlayerRows(ctx, tx, t, player, "queue_status", "task_history")
	return n, false, err
}

// ForgetPlayer implements PlayerForgetter: the player's player_progress
// row.
func (PlayerProgress) ForgetPlayer(ctx context.Context, tx Tx, t Tables, player domain.PlayerID) (int64, bool, error) {
	n, err := deletePlayerRows(ctx, tx, t, player, "player_progress")
	return n, false, err
}

// ForgetPlayer implements PlayerForgetter: the player's rows of
// analytics_active_players_hourly and analytics_queue_lengths; the daily
// totals (analytics_task_daily, analytics_grants_daily) hold no player but
// count the player's events, so it asks for a rebuild.
func (Analytics) ForgetPlayer(ctx context.Context, tx Tx, t Tables, player domain.PlayerID) (int64, bool, error) {
	n, err := deletePlayerRows(ctx, tx, t, player, "analytics_active_players_hourly", "analytics_queue_lengths")
	return n, true, err
}
