package processor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/projections"
)

// due is a claimed due repetition.
type due struct {
	stream string
	player string
	taskID string
	number int
	dueAt  time.Time
}

// claimDue claims up to limit repetitions due at or before now that no
// live claim holds, for owner until now+ttl, and returns them in due order.
//
// The claim is one INSERT ... ON CONFLICT (stream_id) DO UPDATE ... WHERE
// the old claim expired or its repetition left the schedule (completed or
// cancelled), RETURNING the rows it took: on PostgreSQL the row lock of the conflicting claim serializes
// two claimers (the second sees the first's fresh claim and takes nothing),
// on SQLite the single writer does. On PostgreSQL the select and the
// claim are one statement (claimPostgres), with the same conditions.
//
// A claim whose repetition is not in the schedule is stale: claims are only
// taken from schedule rows, and the schedule only moves forward (one shared
// table, advanced with its checkpoint in one transaction), so such a
// repetition was completed or cancelled. This does not hold while the
// schedule projection is rebuilt from position 0; a claim displaced then
// costs one no-op command (the completion key and the expected version keep
// the repetition from completing twice), never a double reward.
func claimDue(ctx context.Context, db projections.DB, owner string, now time.Time, ttl time.Duration, limit int) ([]due, error) {
	if db.Dialect() == migrations.Postgres {
		return claimDuePostgres(ctx, db, owner, now, ttl, limit)
	}
	var out []due
	err := db.InTx(ctx, func(tx projections.Tx) error {
		rows, err := tx.Query(ctx, `SELECT s.stream_id, s.player_id, s.task_id, s.number, s.due_at
			FROM processor_schedule s
			LEFT JOIN processor_claims c ON c.stream_id = s.stream_id AND c.task_id = s.task_id
				AND c.number = s.number AND c.expires_at > $1
			WHERE s.due_at <= $1 AND c.stream_id IS NULL
			ORDER BY s.due_at LIMIT $2`, now, limit)
		if err != nil {
			return fmt.Errorf("select due repetitions: %w", err)
		}
		var cands []due
		for rows.Next() {
			var d due
			var at projections.Time
			if err := rows.Scan(&d.stream, &d.player, &d.taskID, &d.number, &at); err != nil {
				rows.Close()
				return fmt.Errorf("scan a due repetition: %w", err)
			}
			d.dueAt = at.Time
			cands = append(cands, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("select due repetitions: %w", err)
		}
		if len(cands) == 0 {
			return nil
		}
		var b strings.Builder
		b.WriteString("INSERT INTO processor_claims (stream_id, task_id, number, owner, expires_at, claimed_at) VALUES ")
		args := []any{owner, now.Add(ttl), now}
		byStream := make(map[string]due, len(cands))
		for i, d := range cands {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($%d, $%d, $%d, $1, $2, $3)", len(args)+1, len(args)+2, len(args)+3)
			args = append(args, d.stream, d.taskID, d.number)
			byStream[d.stream] = d
		}
		b.WriteString(` ON CONFLICT (stream_id) DO UPDATE SET task_id = excluded.task_id, number = excluded.number,
			owner = excluded.owner, expires_at = excluded.expires_at, claimed_at = excluded.claimed_at
			WHERE processor_claims.expires_at <= $3
				OR NOT EXISTS (SELECT 1 FROM processor_schedule s WHERE s.stream_id = processor_claims.stream_id
					AND s.task_id = processor_claims.task_id AND s.number = processor_claims.number)
			RETURNING stream_id`)
		taken, err := tx.Query(ctx, projections.Unprepared(b.String()), args...)
		if err != nil {
			return fmt.Errorf("claim %d due repetitions: %w", len(cands), err)
		}
		got := map[string]bool{}
		for taken.Next() {
			var s string
			if err := taken.Scan(&s); err != nil {
				taken.Close()
				return fmt.Errorf("scan a claim: %w", err)
			}
			got[s] = true
		}
		taken.Close()
		if err := taken.Err(); err != nil {
			return fmt.Errorf("claim %d due repetitions: %w", len(cands), err)
		}
		for _, d := range cands {
			if got[d.stream] {
				out = append(out, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// claimPostgres is claimDue's statement on PostgreSQL: the candidates
// and their claim in one statement (one round trip, a fixed text prepared
// once per connection, where the claim's multi-row VALUES of 3,000
// parameters was planned for every batch). The INSERT's ON CONFLICT takes
// a candidate whose claim another instance holds exactly as claimDue's
// separate INSERT does: it waits for that instance's transaction and then
// updates the claim only when it expired or its repetition left the
// schedule: the stream's schedule row (stream_id is its key) holds another
// repetition, or there is none. That test is a scalar subquery, one probe
// of the key per conflicting claim; written as a NOT EXISTS it was planned
// as a hash of the whole schedule, built by a sequential scan at every
// claim that met a conflict (most do: a stream keeps its claim row), and
// that scan was most of the claim's time on a busy schedule.
// $1 now, $2 limit, $3 owner, $4 expiry.
const claimPostgres = `WITH cand AS MATERIALIZED (
	SELECT s.stream_id, s.player_id, s.task_id, s.number, s.due_at
	FROM processor_schedule s
	LEFT JOIN processor_claims c ON c.stream_id = s.stream_id AND c.task_id = s.task_id
		AND c.number = s.number AND c.expires_at > $1::timestamptz
	WHERE s.due_at <= $1 AND c.stream_id IS NULL
	ORDER BY s.due_at LIMIT $2::int8
),
taken AS (
	INSERT INTO processor_claims (stream_id, task_id, number, owner, expires_at, claimed_at)
	SELECT stream_id, task_id, number, $3::text, $4::timestamptz, $1::timestamptz FROM cand
	ON CONFLICT (stream_id) DO UPDATE SET task_id = excluded.task_id, number = excluded.number,
		owner = excluded.owner, expires_at = excluded.expires_at, claimed_at = excluded.claimed_at
	WHERE processor_claims.expires_at <= $1
		OR (SELECT (s.task_id, s.number) FROM processor_schedule s WHERE s.stream_id = processor_claims.stream_id)
			IS DISTINCT FROM (processor_claims.task_id, processor_claims.number)
	RETURNING stream_id
)
SELECT cand.stream_id, cand.player_id, cand.task_id, cand.number, cand.due_at
FROM cand JOIN taken USING (stream_id)
ORDER BY cand.due_at, cand.stream_id`

// claimDuePostgres is claimDue on PostgreSQL (claimPostgres).
func claimDuePostgres(ctx context.Context, db projections.DB, owner string, now time.Time, ttl time.Duration, limit int) ([]due, error) {
	// One statement outside BEGIN … COMMIT (see execAlone).
	rows, err := db.Query(ctx, claimPostgres, now, limit, owner, now.Add(ttl))
	if err != nil {
		return nil, fmt.Errorf("claim due repetitions: %w", err)
	}
	defer rows.Close()
	var out []due
	for rows.Next() {
		var d due
		var at projections.Time
		if err := rows.Scan(&d.stream, &d.player, &d.taskID, &d.number, &at); err != nil {
			return nil, fmt.Errorf("scan a claimed repetition: %w", err)
		}
		d.dueAt = at.Time
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim due repetitions: %w", err)
	}
	return out, nil
}

// claimHoldTTLs bounds how long, in ClaimTTLs from the claim (a minute at
// the default 5 s), the instance that holds a claim keeps renewing it.
const claimHoldTTLs = 12

// renewClaims extends owner's live claims to now+ttl while their
// repetitions are still in the schedule, for at most hold after each was
// taken. Under load the schedule projection lags behind the completions: a
// completed repetition stays in the schedule for a while, and without
// renewal its claim would run out and its command (a no-op by then) go out
// again every ttl — most of the commands at saturation did. A killed
// instance renews nothing, so its claims are still taken over ttl after
// its last renewal; a command that got lost (a trimmed Redis stream) or
// dead-lettered goes out again once hold has passed.
func renewClaims(ctx context.Context, db projections.DB, owner string, now time.Time, ttl, hold time.Duration) (int64, error) {
	n, err := execAlone(ctx, db, `UPDATE processor_claims SET expires_at = $1
			WHERE owner = $2 AND expires_at > $3 AND claimed_at > $4
				AND EXISTS (SELECT 1 FROM processor_schedule s WHERE s.stream_id = processor_claims.stream_id
					AND s.task_id = processor_claims.task_id AND s.number = processor_claims.number)`,
		now.Add(ttl), owner, now, now.Add(-hold))
	if err != nil {
		return 0, fmt.Errorf("renew the claims of %s: %w", owner, err)
	}
	return n, nil
}

// nextDueQuery walks the schedule's due_at index from the earliest and
// stops at the first repetition without a live claim: it reads the claimed
// ones before it (the batches in flight) and that one row. The due loop
// asks after every commit of the schedule; the MIN over an anti join it
// replaces read the whole schedule each time (a sequential scan and a hash
// of the claims: 2.7 ms at 1,351 scheduled queues, and growing with them).
// The outer MIN makes a row (NULL) of an empty result.
const nextDueQuery = `SELECT MIN(due_at) FROM (SELECT s.due_at FROM processor_schedule s
	WHERE NOT EXISTS (SELECT 1 FROM processor_claims c WHERE c.stream_id = s.stream_id
		AND c.task_id = s.task_id AND c.number = s.number AND c.expires_at > $1)
	ORDER BY s.due_at LIMIT 1) AS first`

// nextDue returns the earliest due time of a repetition that no live claim
// holds, or the zero time when there is none.
func nextDue(ctx context.Context, db projections.DB, now time.Time) (time.Time, error) {
	var at projections.Time
	err := db.QueryRow(ctx, nextDueQuery, now).Scan(&at)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the next due time: %w", err)
	}
	return at.Time, nil
}

// releaseClaims deletes owner's claims (graceful shutdown), so another
// instance takes their repetitions at once instead of after ClaimTTL.
func releaseClaims(ctx context.Context, db projections.DB, owner string) (int64, error) {
	n, err := execAlone(ctx, db, `DELETE FROM processor_claims WHERE owner = $1`, owner)
	if err != nil {
		return 0, fmt.Errorf("release the claims of %s: %w", owner, err)
	}
	return n, nil
}

// releaseBatch deletes owner's claims on the repetitions of batch, after
// their commands could not all be sent: the next poll sends them again
// (the ones that did go out are then no-ops) instead of leaving them to a
// claim that its holder keeps renewing.
func releaseBatch(ctx context.Context, db projections.DB, owner string, batch []due) error {
	if len(batch) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("DELETE FROM processor_claims WHERE owner = $1 AND stream_id IN (")
	args := []any{owner}
	for i, d := range batch {
		if i > 0 {
			b.WriteString(", ")
		}
		args = append(args, d.stream)
		fmt.Fprintf(&b, "$%d", len(args))
	}
	b.WriteString(")")
	if _, err := execAlone(ctx, db, projections.Unprepared(b.String()), args...); err != nil {
		return fmt.Errorf("release the claims of a batch not sent: %w", err)
	}
	return nil
}

// strayClaims are claims the database may hold for this instance that no
// batch of its due loop knows of, so nothing would send their repetitions:
// they would be renewed, unsent, until claimHoldTTLs passed (a minute at the
// default ClaimTTL). A claim statement whose result was lost (the
// connection cut while it ran: the server finishes it, and on PostgreSQL
// it commits by itself, see execAlone) leaves such claims, with claimed_at
// the time of that attempt; so does a batch whose release failed. The due
// loop releases them (release) before it claims again.
type strayClaims struct {
	from, to time.Time // the attempts whose result was lost (from zero: none)
	batches  [][]due   // batches whose release failed
}

// lost records a claim attempt at now that failed: it may have taken claims.
func (s *strayClaims) lost(now time.Time) {
	if s.from.IsZero() || now.Before(s.from) {
		s.from = now
	}
	if now.After(s.to) {
		s.to = now
	}
}

// unreleased records a batch whose claims could not be released.
func (s *strayClaims) unreleased(batch []due) {
	if len(batch) > 0 {
		s.batches = append(s.batches, batch)
	}
}

func (s *strayClaims) any() bool { return !s.from.IsZero() || len(s.batches) > 0 }

// maxSpared bounds the claims in flight that a release spares, three
// parameters each (SQLite takes at most 32,766 in a statement): with more
// in flight (a BatchSize in the thousands) the claims of lost attempts are
// released once some have landed.
const maxSpared = 4000

// release deletes owner's stray claims, except the claims of the batches
// in flight (a lost attempt may have taken the next repetition of a
// stream in flight, once the schedule moved past the one in flight). The lost
// attempts' claims are the ones taken between the first and the last of
// them; a claim this instance took earlier at the same instant (a clock
// that did not move) whose command is already out is released with them,
// and its repetition sent again: a no-op, by its completion key.
func (s *strayClaims) release(ctx context.Context, db projections.DB, owner string, inFlight []*sending) error {
	for len(s.batches) > 0 {
		if err := releaseBatch(ctx, db, owner, s.batches[0]); err != nil {
			return err
		}
		s.batches = s.batches[1:]
	}
	spared := 0
	for _, f := range inFlight {
		spared += len(f.batch)
	}
	if s.from.IsZero() || spared > maxSpared {
		return nil // with that many in flight, once some have landed
	}
	var b strings.Builder
	b.WriteString("DELETE FROM processor_claims WHERE owner = $1 AND claimed_at >= $2 AND claimed_at <= $3")
	args := []any{owner, s.from, s.to}
	sep := " AND (stream_id, task_id, number) NOT IN (VALUES "
	for _, f := range inFlight {
		for _, d := range f.batch {
			args = append(args, d.stream, d.taskID, d.number)
			fmt.Fprintf(&b, "%s($%d, $%d, CAST($%d AS INTEGER))", sep, len(args)-2, len(args)-1, len(args))
			sep = ", "
		}
	}
	if spared > 0 {
		b.WriteString(")")
	}
	if _, err := execAlone(ctx, db, projections.Unprepared(b.String()), args...); err != nil {
		return fmt.Errorf("release the claims of a claim whose result was lost: %w", err)
	}
	s.from, s.to = time.Time{}, time.Time{}
	return nil
}

// pruneClaims deletes claims that expired before at: they no longer hold
// anything and only grow the table.
func pruneClaims(ctx context.Context, db projections.DB, at time.Time) error {
	if _, err := execAlone(ctx, db, `DELETE FROM processor_claims WHERE expires_at <= $1`, at); err != nil {
		return fmt.Errorf("prune expired claims: %w", err)
	}
	return nil
}

// execAlone runs one statement that writes claims in a transaction of its
// own and reports the rows it affected. On PostgreSQL it is sent outside
// BEGIN … COMMIT, so its implicit transaction commits on the server as the
// statement ends: a process cut off from the server between a statement
// and its COMMIT would otherwise leave a transaction open there holding
// the row locks of its claims, and another instance's claim of those
// repetitions would wait on them until the server ends that session
// (idle_in_transaction_session_timeout, 30 s), far past the failover's
// ClaimTTL. SQLite (one process, its single writer) runs it in InTx.
func execAlone(ctx context.Context, db projections.DB, q string, args ...any) (int64, error) {
	if db.Dialect() != migrations.Postgres {
		var n int64
		err := db.InTx(ctx, func(tx projections.Tx) error {
			var err error
			n, err = tx.Exec(ctx, q, args...)
			return err
		})
		return n, err
	}
	rows, err := db.Query(ctx, q+" RETURNING 1", args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
