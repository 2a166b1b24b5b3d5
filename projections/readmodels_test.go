package projections

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
	"github.com/taskqueue/taskqueue/query"
)

// The read side shows, for every player, exactly the queue view of the
// domain aggregate that decided the workload, and the reports add up.
func TestQueriesMatchTheAggregates(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		r := startRunner(t, b, Config{})
		res, err := (projectiontest.Workload{Seed: 21, Players: 10, Commands: 1000}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r, res.Last)
		rm := NewReadModels(b.db)
		views := query.NewQueueViewHandler(rm, r, 0)
		for p, q := range res.Queues {
			got, err := views.Handle(ctx, query.QueueView{PlayerID: string(p), MinVersion: q.Version()})
			if err != nil {
				t.Fatal(err)
			}
			want := q.View()
			wj, _ := json.Marshal(want)
			gj, _ := json.Marshal(got)
			if string(wj) != string(gj) {
				t.Fatalf("queue view of %s:\nwant %s\ngot  %s", p, wj, gj)
			}
		}
		// A player without events reads as the empty queue.
		v, err := views.Handle(ctx, query.QueueView{PlayerID: "nobody"})
		if err != nil || v.Version != 0 || len(v.Tasks) != 0 || !v.Running || v.Limit != domain.DefaultQueueLimit {
			t.Fatalf("empty queue view: %+v, %v", v, err)
		}

		// Reports add up with the row-level models.
		an := query.NewAnalyticsHandler(rm, func() time.Time { return res.End })
		rep, err := an.Handle(ctx, query.Analytics{Report: query.ReportTaskDaily})
		if err != nil {
			t.Fatal(err)
		}
		var completions int64
		for _, d := range rep.TaskDays {
			completions += d.Completions
		}
		var histCompleted int64
		if err := b.db.QueryRow(ctx, `SELECT count(*) FROM task_history WHERE outcome = 'completed'`).Scan(&histCompleted); err != nil {
			t.Fatal(err)
		}
		if completions == 0 || completions != histCompleted {
			t.Fatalf("task-daily counts %d completions, task_history %d", completions, histCompleted)
		}
		rep, err = an.Handle(ctx, query.Analytics{Report: query.ReportGrantsDaily})
		if err != nil {
			t.Fatal(err)
		}
		var xp, wantXP int64
		for _, g := range rep.GrantDays {
			if g.Kind == "xp" {
				xp += g.Amount
			}
		}
		for _, q := range res.Queues {
			for _, s := range q.View().Skills {
				wantXP += s.XP
			}
		}
		if xp == 0 || xp != wantXP {
			t.Fatalf("grants-daily counts %d XP, the players have %d", xp, wantXP)
		}
		rep, err = an.Handle(ctx, query.Analytics{Report: query.ReportQueueLengths})
		if err != nil {
			t.Fatal(err)
		}
		wantLen := map[int]int64{}
		for _, q := range res.Queues {
			wantLen[q.Len()]++
		}
		for _, l := range rep.QueueLengths {
			if wantLen[l.Length] != l.Players {
				t.Fatalf("queue-lengths: %d players with %d tasks, want %d", l.Players, l.Length, wantLen[l.Length])
			}
			delete(wantLen, l.Length)
		}
		if len(wantLen) != 0 {
			t.Fatalf("queue-lengths misses lengths %v", wantLen)
		}
		rep, err = an.Handle(ctx, query.Analytics{Report: query.ReportActivePlayersHourly})
		if err != nil || len(rep.ActiveHours) == 0 {
			t.Fatalf("active-players-hourly: %+v, %v", rep.ActiveHours, err)
		}

		// Player progress equals the aggregate's skills and inventory.
		pp := query.NewPlayerProgressHandler(rm)
		for p, q := range res.Queues {
			got, err := pp.Handle(ctx, query.PlayerProgress{PlayerID: string(p)})
			if err != nil {
				t.Fatal(err)
			}
			for s, sv := range q.View().Skills {
				if got.Skills[string(s)] != sv {
					t.Fatalf("progress of %s: skill %s = %+v, want %+v", p, s, got.Skills[string(s)], sv)
				}
			}
			for it, n := range q.Inventory() {
				if got.Inventory[string(it)] != n {
					t.Fatalf("progress of %s: %s = %d, want %d", p, it, got.Inventory[string(it)], n)
				}
			}
		}
	})
}

// History pages cover every finished task once, newest first, and filter by
// type and time; bad input is a validation error naming the field.
func TestHistoryPagination(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		r := startRunner(t, b, Config{})
		res, err := (projectiontest.Workload{Seed: 4, Players: 2, Commands: 900}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r, res.Last)
		h := query.NewHistoryHandler(NewReadModels(b.db))
		var total int
		if err := b.db.QueryRow(ctx, `SELECT count(*) FROM task_history WHERE player_id = 'p0'`).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if total < 20 {
			t.Fatalf("only %d history rows for p0", total)
		}
		var all []query.HistoryEntry
		cursor := ""
		for pages := 0; ; pages++ {
			page, err := h.Handle(ctx, query.History{PlayerID: "p0", Limit: 7, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Entries...)
			if page.NextCursor == "" {
				break
			}
			if len(page.Entries) != 7 {
				t.Fatalf("a page before the last has %d entries", len(page.Entries))
			}
			cursor = page.NextCursor
		}
		if len(all) != total {
			t.Fatalf("pages hold %d entries, history has %d", len(all), total)
		}
		seen := map[string]bool{}
		for i, e := range all {
			if seen[e.TaskID] {
				t.Fatalf("task %s on two pages", e.TaskID)
			}
			seen[e.TaskID] = true
			if i > 0 && (all[i-1].FinishedAt.Before(e.FinishedAt) || all[i-1].FinishedAt.Equal(e.FinishedAt) && all[i-1].TaskID < e.TaskID) {
				t.Fatalf("entries %d and %d out of order", i-1, i)
			}
		}
		// Filters.
		typ := all[0].Type
		mid := all[len(all)/2].FinishedAt
		page, err := h.Handle(ctx, query.History{PlayerID: "p0", Type: typ, To: mid, Limit: query.MaxHistoryLimit})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, e := range all {
			if e.Type == typ && e.FinishedAt.Before(mid) {
				want++
			}
		}
		if len(page.Entries) != want {
			t.Fatalf("type %s before %s: %d entries, want %d", typ, mid, len(page.Entries), want)
		}
		for _, e := range page.Entries {
			if e.Type != typ || !e.FinishedAt.Before(mid) {
				t.Fatalf("filtered page holds %+v", e)
			}
		}
		// Past the retention's cutoff nothing is served, whatever from says.
		hc := query.NewHistoryHandler(NewReadModels(b.db)).WithCutoff(func() time.Time { return mid })
		page, err = hc.Handle(ctx, query.History{PlayerID: "p0", From: mid.Add(-time.Hour), Limit: query.MaxHistoryLimit})
		if err != nil {
			t.Fatal(err)
		}
		want = 0
		for _, e := range all {
			if !e.FinishedAt.Before(mid) {
				want++
			}
		}
		if len(page.Entries) != want || want == len(all) {
			t.Fatalf("with the cutoff at %s: %d entries, want %d of %d", mid, len(page.Entries), want, len(all))
		}
		for _, e := range page.Entries {
			if e.FinishedAt.Before(mid) {
				t.Fatalf("an entry past the cutoff was served: %+v", e)
			}
		}
		// Bad input.
		for _, c := range []struct {
			q     query.History
			field string
		}{
			{query.History{PlayerID: "p0", Cursor: "!!!"}, "cursor"},
			{query.History{PlayerID: "p0", Cursor: "aGVsbG8"}, "cursor"},
			{query.History{PlayerID: "p0", From: mid, To: mid.Add(-time.Second)}, "from"},
			{query.History{PlayerID: "p0", Limit: query.MaxHistoryLimit + 1}, "limit"},
			{query.History{PlayerID: "p0", Limit: -1}, "limit"},
			{query.History{PlayerID: "bad id"}, "playerId"},
		} {
			_, err := h.Handle(ctx, c.q)
			var ve *domain.ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("%+v: got %v, want a validation error on %s", c.q, err, c.field)
			}
		}
	})
}

// A read with MinVersion waits until the read model has the player's write;
// a version never reached ends the wait with ErrStale and the latest view.
func TestQueueViewWaitsForItsWrite(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		// The runner starts only after the read is issued, so the read
		// must wait for it.
		res, err := (projectiontest.Workload{Seed: 8, Players: 1, Commands: 200}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		want := res.Queues["p0"].Version()
		cfg := Config{Store: b.store, DB: b.db, Projections: allProjections()}
		r, err := NewRunner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := query.NewQueueViewHandler(NewReadModels(b.db), r, 0)
		h.MaxWait = time.Minute
		got := make(chan domain.QueueView, 1)
		go func() {
			v, err := h.Handle(ctx, query.QueueView{PlayerID: "p0", MinVersion: want})
			if err != nil {
				t.Error(err)
			}
			got <- v
		}()
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { _ = r.Run(rctx) }() // Run returns nil once rctx ends
		if v := <-got; v.Version < want {
			t.Fatalf("read after write saw version %d, want >= %d", v.Version, want)
		}
		h.MaxWait = 100 * time.Millisecond
		v, err := h.Handle(ctx, query.QueueView{PlayerID: "p0", MinVersion: want + 1000})
		if !errors.Is(err, query.ErrStale) || v.Version != want {
			t.Fatalf("unreachable version: %v, view at %d", err, v.Version)
		}
	})
}

// The admin adapter maps the runner's errors to query's.
func TestAdminErrors(t *testing.T) {
	b := openSQLite(t, "")
	r := startRunner(t, b, Config{})
	a := NewAdmin(r)
	ctx := context.Background()
	if _, err := query.NewProjectionStatusHandler(a).Handle(ctx, query.ProjectionStatus{Name: "nope"}); !errors.Is(err, query.ErrNotFound) {
		t.Fatalf("status of unknown: %v", err)
	}
	if _, err := query.NewRebuildProjectionHandler(a).Handle(ctx, query.RebuildProjection{Name: "nope"}); !errors.Is(err, query.ErrNotFound) {
		t.Fatalf("rebuild of unknown: %v", err)
	}
	skip := query.NewSkipEventHandler(a)
	if err := skip.Handle(ctx, query.SkipEvent{Name: QueuesName, Position: "x:y", By: "ops"}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("skip with a malformed position: %v", err)
	}
	if err := skip.Handle(ctx, query.SkipEvent{Name: QueuesName, Position: "12", By: "ops"}); !errors.Is(err, query.ErrConflict) {
		t.Fatalf("skip of a projection that did not fail: %v", err)
	}
	st, err := query.NewProjectionStatusHandler(a).Handle(ctx, query.ProjectionStatus{})
	if err != nil || len(st) != 3 {
		t.Fatalf("statuses: %+v, %v", st, err)
	}
	names := []string{st[0].Name, st[1].Name, st[2].Name}
	if !slices.Equal(names, []string{AnalyticsName, PlayerProgressName, QueuesName}) {
		t.Fatalf("status names %v", names)
	}
	if _, err := query.NewAnalyticsHandler(NewReadModels(b.db), nil).Handle(ctx, query.Analytics{Report: "nope"}); !errors.Is(err, query.ErrNotFound) {
		t.Fatalf("unknown report: %v", err)
	}
}
