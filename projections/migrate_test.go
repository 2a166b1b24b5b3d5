package projections

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/migrations"
)

func TestMigrationsApplyOnBothDialects(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrations.Up(ctx, db, migrations.SQLite); err != nil {
		t.Fatalf("sqlite: %v", err)
	}
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pdb := stdlib.OpenDBFromPool(pool)
	defer pdb.Close()
	if _, err := migrations.Up(ctx, pdb, migrations.Postgres); err != nil {
		t.Fatalf("postgres: %v", err)
	}
}
