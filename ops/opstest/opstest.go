// Package opstest compares the read models of two databases, for the tests
// of moving a log between stores (SQLite and PostgreSQL): export from one,
// import into the other, replay, and both must serve the same read models.
// Positions differ between stores by design and are not compared.
package opstest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/query"
)

// Side is one database's read models, named for the messages.
type Side struct {
	Name string
	DB   projections.Querier
}

// Compared is how much SameReadModels compared, so a test can check that
// its workload gave it something to compare.
type Compared struct {
	Players, Tasks, HistoryEntries, ProgressSkills int
	Rows                                           map[string]int // rows per read-model table
}

// SameReadModels fails t where the read models of a and b differ, as the
// service serves them: every table's row count, then for every player the
// queue_status snapshot, the player_progress view and the whole
// task_history, and every analytics report between from and to.
func SameReadModels(t testing.TB, a, b Side, players []domain.PlayerID, from, to time.Time) Compared {
	t.Helper()
	ctx := context.Background()
	c := Compared{Players: len(players), Rows: map[string]int{}}
	for _, p := range projections.All() {
		for _, table := range p.Tables() {
			na, nb := count(t, a, table), count(t, b, table)
			if na != nb {
				t.Errorf("%s: %d rows in %s, %d in %s", table, na, a.Name, nb, b.Name)
			}
			c.Rows[table] = na
		}
	}
	ma, mb := projections.NewReadModels(a.DB), projections.NewReadModels(b.DB)
	same := func(what string, va, vb any) {
		t.Helper()
		if ja, jb := mustJSON(t, va), mustJSON(t, vb); ja != jb {
			t.Errorf("%s differs:\n %-8s %s\n %-8s %s", what, a.Name, ja, b.Name, jb)
		}
	}
	for _, p := range slices.Sorted(slices.Values(players)) {
		sa, err := ma.QueueSnapshot(ctx, p)
		must(t, a, err)
		sb, err := mb.QueueSnapshot(ctx, p)
		must(t, b, err)
		same(string(p)+" queue_status", sa, sb)
		c.Tasks += len(sa.View.Tasks)

		pa, err := ma.PlayerProgress(ctx, p)
		must(t, a, err)
		pb, err := mb.PlayerProgress(ctx, p)
		must(t, b, err)
		same(string(p)+" player_progress", pa, pb)
		c.ProgressSkills += len(pa.Skills)

		ha, err := ma.History(ctx, query.HistoryFilter{Player: p, Limit: 100000})
		must(t, a, err)
		hb, err := mb.History(ctx, query.HistoryFilter{Player: p, Limit: 100000})
		must(t, b, err)
		same(string(p)+" task_history", ha, hb)
		c.HistoryEntries += len(ha)
	}
	for _, r := range []struct {
		name string
		read func(m *projections.ReadModels) (any, error)
	}{
		{"analytics task-daily", func(m *projections.ReadModels) (any, error) { return m.TaskDaily(ctx, from, to, "") }},
		{"analytics grants-daily", func(m *projections.ReadModels) (any, error) { return m.GrantsDaily(ctx, from, to) }},
		{"analytics active-players-hourly", func(m *projections.ReadModels) (any, error) { return m.ActivePlayersHourly(ctx, from, to) }},
		{"analytics queue-lengths", func(m *projections.ReadModels) (any, error) { return m.QueueLengths(ctx) }},
	} {
		va, err := r.read(ma)
		must(t, a, err)
		vb, err := r.read(mb)
		must(t, b, err)
		same(r.name, va, vb)
	}
	return c
}

func count(t testing.TB, s Side, table string) int {
	t.Helper()
	var n int64
	if err := s.DB.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("%s: count %s: %v", s.Name, table, err)
	}
	return int(n)
}

func must(t testing.TB, s Side, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: read models: %v", s.Name, err)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(fmt.Errorf("opstest: %w", err))
	}
	return string(b)
}
