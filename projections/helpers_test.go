package projections

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// backend is one event store with its read-model database.
type backend struct {
	name  string
	store eventstore.Store
	db    DB
	url   string // PostgreSQL connection string or SQLite path
}

func openSQLite(t testing.TB, path string) backend {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "taskqueue.db")
	}
	s := teststore.SQLite(t, path)
	return backend{name: "sqlite", store: s, db: NewSQLiteStoreDB(s), url: path}
}

// openPostgres opens a store on url, or on a fresh schema when url is "".
func openPostgres(t testing.TB, url string) backend {
	t.Helper()
	if url == "" {
		url = testenv.Postgres(t)
	}
	s, pool := teststore.Postgres(t, url, 6)
	return backend{name: "postgres", store: s, db: NewPostgresDB(pool), url: url}
}

func allProjections() []Projection { return All() }

func allViews() []string {
	var out []string
	for _, p := range allProjections() {
		out = append(out, p.Tables()...)
	}
	return out
}

// startRunner runs a Runner until the test ends.
func startRunner(t testing.TB, b backend, cfg Config) *Runner {
	t.Helper()
	cfg.Store, cfg.DB = b.store, b.db
	if cfg.Projections == nil {
		cfg.Projections = allProjections()
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

// waitFor polls cond after every commit (and at least every 50 ms) until it
// holds or the generous deadline passes.
func waitForRunner(t testing.TB, r *Runner, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for {
		ch := r.Committed()
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("wait for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			st, _ := r.Status(context.Background())
			t.Fatalf("timed out waiting for %s; status %+v", what, st)
		case <-ch:
			// Check again after a commit, but not more than every 20 ms:
			// a status costs queries that would slow the projections.
			time.Sleep(20 * time.Millisecond)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitCaughtUp waits until every projection is live at the head of the log,
// at or past each of the positions given (the last appends: on PostgreSQL
// the safe head may trail them while other transactions are open), and no
// rebuild runs.
func waitCaughtUp(t testing.TB, r *Runner, last ...eventstore.Position) {
	t.Helper()
	waitForRunner(t, r, "projections at the head", func(ctx context.Context) (bool, error) {
		st, err := r.Status(ctx)
		if err != nil {
			return false, err
		}
		for _, s := range st {
			if s.State == StateFailed {
				return false, fmt.Errorf("projection %s failed: %+v", s.Name, s.Failure)
			}
			if s.State != StateLive || s.Position.Less(s.Head) || s.Rebuild != nil {
				return false, nil
			}
			for _, l := range last {
				if s.Position.Less(l) {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// dump returns every row of table as a sorted list of strings; columns
// named in skip are left out.
func dump(t testing.TB, q Querier, table string, skip ...string) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	defer rows.Close()
	var cols []string
	switch r := rows.(type) {
	case liteRows:
		cols, _ = r.Columns()
	case pgx.Rows:
		for _, f := range r.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
	default:
		t.Fatalf("dump: rows of type %T", rows)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		var b strings.Builder
		for i, v := range vals {
			if slices.Contains(skip, cols[i]) {
				continue
			}
			fmt.Fprintf(&b, "%s=%s ", cols[i], format(v))
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	slices.Sort(out)
	return out
}

func format(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(x)
	case float64:
		if x == math.Trunc(x) {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.9g", x)
	}
	return fmt.Sprint(v)
}

// sameRows fails the test with the first differences between two dumps.
func sameRows(t testing.TB, what string, want, got []string) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	shown := 0
	for _, w := range want {
		if !slices.Contains(got, w) && shown < 5 {
			t.Errorf("%s: missing row %s", what, w)
			shown++
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) && shown < 10 {
			t.Errorf("%s: unexpected row %s", what, g)
			shown++
		}
	}
	t.Fatalf("%s: %d rows want, %d rows got, differ", what, len(want), len(got))
}

// copyLog appends every event of from to the empty store to, in log order,
// and returns the number of events and the position of the last append.
func copyLog(t testing.TB, from, to eventstore.Store) (int, eventstore.Position) {
	t.Helper()
	ctx := context.Background()
	pos, last := eventstore.Start, eventstore.Start
	n := 0
	for {
		evs, err := from.ReadAll(ctx, pos, eventstore.Filter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return n, last
		}
		for i := 0; i < len(evs); {
			j := i + 1
			for j < len(evs) && evs[j].Stream == evs[i].Stream && evs[j].Version == evs[j-1].Version+1 {
				j++
			}
			data := make([]eventstore.EventData, 0, j-i)
			for _, e := range evs[i:j] {
				data = append(data, e.EventData)
			}
			ar, err := to.Append(ctx, evs[i].Stream, eventstore.Exact(evs[i].Version-1), data...)
			if err != nil {
				t.Fatalf("copy log: %v", err)
			}
			last = ar.Position
			n += j - i
			i = j
		}
		pos = evs[len(evs)-1].Position
	}
}

// firstEvents returns the log's first n events or more, waiting while fewer are
// readable: on PostgreSQL a transaction open anywhere on the server (other
// tests, other sessions) holds the log's readers back for a while.
func firstEvents(t testing.TB, s eventstore.Store, n int) []eventstore.RecordedEvent {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := s.ReadAll(ctx, eventstore.Start, eventstore.Filter{}, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) >= n { // a page ends at a commit's end: it may hold more
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events readable after 30 s, want %d", len(evs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
