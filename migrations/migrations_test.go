package migrations

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/taskqueue/taskqueue/internal/testenv"
)

// Every migration that ships must apply cleanly to an empty database, twice
// in a row (the second time applying nothing), on both dialects.
func TestShippedMigrationsApply(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			db := open(t, d)
			ctx := context.Background()
			all, err := List(d)
			if err != nil {
				t.Fatal(err)
			}
			applied, err := Up(ctx, db, d)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != len(all) {
				t.Fatalf("applied %d of %d migrations", len(applied), len(all))
			}
			again, err := Up(ctx, db, d)
			if err != nil || len(again) != 0 {
				t.Fatalf("second Up applied %d, err %v; want 0, nil", len(again), err)
			}
			pending, err := Pending(ctx, db, d)
			if err != nil || len(pending) != 0 {
				t.Fatalf("Pending = %d, %v; want none", len(pending), err)
			}
		})
	}
}

func open(t *testing.T, d Dialect) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if d == SQLite {
		db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
	} else {
		db, err = sql.Open("pgx", testenv.Postgres(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testFS(d Dialect, second string) fstest.MapFS {
	return fstest.MapFS{
		d.String() + "/0001_first.sql":  {Data: []byte("CREATE TABLE a (x INTEGER);")},
		d.String() + "/0002_second.sql": {Data: []byte(second)},
		d.String() + "/README.md":       {Data: []byte("not a migration")},
	}
}

func TestUpIsAtomicPerMigration(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			db := open(t, d)
			ctx := context.Background()
			broken := testFS(d, "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1);")
			done, err := up(ctx, db, d, broken)
			if err == nil {
				t.Fatal("Up with a broken migration succeeded")
			}
			if len(done) != 1 || done[0].Version != 1 {
				t.Fatalf("applied %v before the failure, want only 0001", done)
			}
			// The failed migration left nothing behind: table b does not exist.
			if _, err := db.ExecContext(ctx, "INSERT INTO b (y) VALUES (1)"); err == nil {
				t.Fatal("table b exists: the failed migration was partly applied")
			}
			states, err := status(ctx, db, d, broken)
			if err != nil {
				t.Fatal(err)
			}
			if !states[0].Applied || states[1].Applied {
				t.Fatalf("states = %+v, want 0001 applied and 0002 not", states)
			}
			fixed := testFS(d, "CREATE TABLE b (y INTEGER);")
			done, err = up(ctx, db, d, fixed)
			if err != nil || len(done) != 1 || done[0].Version != 2 {
				t.Fatalf("Up after the fix = %v, %v; want 0002 applied", done, err)
			}
		})
	}
}

func TestUpRefusesModifiedMigration(t *testing.T) {
	db := open(t, SQLite)
	ctx := context.Background()
	if _, err := up(ctx, db, SQLite, testFS(SQLite, "CREATE TABLE b (y INTEGER);")); err != nil {
		t.Fatal(err)
	}
	changed := testFS(SQLite, "CREATE TABLE b (y INTEGER, z INTEGER);")
	if _, err := up(ctx, db, SQLite, changed); !errors.Is(err, ErrModified) {
		t.Fatalf("Up with an edited migration = %v, want ErrModified", err)
	}
	states, err := status(ctx, db, SQLite, changed)
	if err != nil || !states[1].Modified || states[0].Modified {
		t.Fatalf("status = %+v, %v; want only 0002 modified", states, err)
	}
}

func TestListRejectsBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number": {"sqlite/first.sql": {Data: []byte("SELECT 1")}},
		"zero":      {"sqlite/0000_x.sql": {Data: []byte("SELECT 1")}},
		"duplicate": {"sqlite/0001_a.sql": {Data: []byte("SELECT 1")}, "sqlite/01_b.sql": {Data: []byte("SELECT 1")}},
	} {
		if _, err := list(fsys, SQLite); err == nil {
			t.Errorf("%s: list accepted it", name)
		}
	}
	if _, err := list(fstest.MapFS{}, Dialect{"mysql"}); err == nil {
		t.Error("list accepted an unknown dialect")
	}
}

// Several instances starting at once apply each migration exactly once.
func TestConcurrentUpOnPostgres(t *testing.T) {
	url := testenv.Postgres(t)
	fsys := testFS(Postgres, "CREATE TABLE b (y INTEGER);")
	ctx := context.Background()
	var wg sync.WaitGroup
	counts := make([]int, 6)
	errs := make([]error, 6)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("pgx", url)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			done, err := up(ctx, db, Postgres, fsys)
			counts[i], errs[i] = len(done), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != 2 {
		t.Fatalf("migrations applied %d times in all, want 2", total)
	}
}
