package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
)

// TestSeveralHosts's look at the processor's claims and the log, from the
// test's own namespace (never cut), and its bursts of due repetitions.

// waitHeld waits, for up to within, until owner holds a live claim on a
// repetition that is not completed, and reports whether it did.
func (m *multiHost) waitHeld(owner string, within time.Duration) bool {
	for end := time.Now().Add(within); ; time.Sleep(5 * time.Millisecond) {
		var n int
		err := m.pool.QueryRow(context.Background(), `SELECT count(*) FROM processor_claims c
			WHERE c.owner LIKE $1 AND c.expires_at > now() AND NOT EXISTS (SELECT 1 FROM event_log e
				WHERE e.event_type = $2 AND e.data->>'taskId' = c.task_id AND (e.data->>'number')::int = c.number)`,
			owner, string(domain.TypeRepetitionCompleted)).Scan(&n)
		if err != nil {
			m.t.Fatal(err)
		}
		if n > 0 {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// lateness returns how many repetitions were completed between from and
// to, and the longest any of them waited past its due time or from,
// whichever is later.
func (m *multiHost) lateness(from, to time.Time) (int, time.Duration) {
	var n int
	var worst float64
	err := m.pool.QueryRow(context.Background(), `SELECT count(*), coalesce(max(extract(epoch FROM
			recorded_at - greatest((data->>'completedAt')::timestamptz, $1))), 0)::float8
		FROM event_log WHERE event_type = $3 AND recorded_at BETWEEN $1 AND $2`,
		from, to, string(domain.TypeRepetitionCompleted)).Scan(&n, &worst)
	if err != nil {
		m.t.Fatal(err)
	}
	return n, time.Duration(worst * float64(time.Second))
}

// overdue counts the repetitions due before at that are not completed.
func (m *multiHost) overdue(at time.Time) int {
	var n int
	err := m.pool.QueryRow(context.Background(), `SELECT count(*) FROM processor_schedule s
		WHERE s.due_at < $1 AND NOT EXISTS (SELECT 1 FROM event_log e
			WHERE e.event_type = $2 AND e.data->>'taskId' = s.task_id AND (e.data->>'number')::int = s.number)`,
		at, string(domain.TypeRepetitionCompleted)).Scan(&n)
	if err != nil {
		m.t.Fatal(err)
	}
	return n
}

// burst queues a one-repetition tick task for every burst player at once,
// through serve1 (the database and Redis reachable: each must be
// acknowledged).
func (m *multiHost) burst() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	client := &http.Client{Timeout: 10 * time.Second}
	for player, token := range m.burstTokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, m.d.baseURL()+"/api/queue/"+player+"/tasks",
				strings.NewReader(`{"type":"tick","count":1}`))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", uuid.NewString())
			resp, err := client.Do(req)
			if err != nil {
				m.t.Errorf("burst of %s: %v", player, err)
				return
			}
			defer resp.Body.Close()
			var task ackedTask
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &task) != nil {
				m.t.Errorf("burst of %s: %d %s", player, resp.StatusCode, b)
				return
			}
			mu.Lock()
			m.burstTasks[task.TaskID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// checkBursts checks, on the log, the burst players' tasks, which the
// fault suite's invariants do not cover, and every repetition of the log:
// each burst task acknowledged is in the log once, no other burst task is,
// and no repetition of anyone was completed twice.
func (m *multiHost) checkBursts() {
	ctx := context.Background()
	rows, err := m.pool.Query(ctx, `SELECT data->>'taskId', count(*) FROM event_log
		WHERE event_type = $1 AND stream_id LIKE '%burst%' GROUP BY 1`, string(domain.TypeTaskEnqueued))
	if err != nil {
		m.t.Fatal(err)
	}
	inLog := map[string]int{}
	for rows.Next() {
		var task string
		var n int
		if err := rows.Scan(&task, &n); err != nil {
			m.t.Fatal(err)
		}
		inLog[task] = n
	}
	rows.Close()
	for task := range m.burstTasks {
		if inLog[task] != 1 {
			m.t.Errorf("burst task %s acknowledged, %d times in the log", task, inLog[task])
		}
	}
	for task := range inLog {
		if !m.burstTasks[task] {
			m.t.Errorf("burst task %s in the log, never acknowledged", task)
		}
	}
	var twice, all int
	err = m.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE n > 1), count(*) FROM (SELECT count(*) AS n FROM event_log
		WHERE event_type = $1 GROUP BY data->>'taskId', data->>'number') c`, string(domain.TypeRepetitionCompleted)).Scan(&twice, &all)
	if err != nil {
		m.t.Fatal(err)
	}
	if twice > 0 {
		m.t.Errorf("%d of %d repetitions completed more than once", twice, all)
	}
	m.t.Logf("bursts: %d tasks acknowledged, each in the log once; %d repetitions in the log, %d completed twice", len(m.burstTasks), all, twice)
}

// heldAt returns the repetitions owner had a live claim on at the moment
// cut and that were not completed then.
func (m *multiHost) heldAt(owner string, cut time.Time) []heldClaim {
	rows, err := m.pool.Query(context.Background(), `SELECT c.task_id, c.number FROM processor_claims c
		WHERE c.owner LIKE $1 AND c.expires_at > $2 AND NOT EXISTS (SELECT 1 FROM event_log e
			WHERE e.event_type = $3 AND e.data->>'taskId' = c.task_id AND (e.data->>'number')::int = c.number
				AND e.recorded_at <= $2)`, owner, cut, string(domain.TypeRepetitionCompleted))
	if err != nil {
		m.t.Fatal(err)
	}
	defer rows.Close()
	var out []heldClaim
	for rows.Next() {
		var h heldClaim
		if err := rows.Scan(&h.task, &h.number); err != nil {
			m.t.Fatal(err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		m.t.Fatal(err)
	}
	return out
}

// completedAt returns when the repetition's completion was written.
func (m *multiHost) completedAt(h heldClaim) (time.Time, bool) {
	var at time.Time
	err := m.pool.QueryRow(context.Background(), `SELECT min(recorded_at) FROM event_log
		WHERE event_type = $1 AND data->>'taskId' = $2 AND (data->>'number')::int = $3`,
		string(domain.TypeRepetitionCompleted), h.task, h.number).Scan(&at)
	return at, err == nil && !at.IsZero()
}

// claimsAgain waits until owner takes a claim after healed and returns how
// long after healed that was.
func (m *multiHost) claimsAgain(owner string, healed time.Time) time.Duration {
	for end := healed.Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		err := m.pool.QueryRow(context.Background(), `SELECT count(*) FROM processor_claims
			WHERE owner LIKE $1 AND claimed_at > $2`, owner, healed).Scan(&n)
		if err != nil {
			m.t.Fatal(err)
		}
		if n > 0 {
			return time.Since(healed)
		}
		if time.Now().After(end) {
			m.t.Fatalf("proc claimed nothing in the 60 s after the heal")
		}
	}
}
