// Package testreadside opens, for tests, a real event store together with
// the database of its read models (teststore's stores, projections' DB on
// them): what the processor, the relay and the operator tools run on. It
// is for tests only. (The projections package's own tests cannot import
// it, since it imports projections; theirs are in projections/helpers_test.go.)
package testreadside

import (
	"testing"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections"
)

// Backend is a real event store and the database of its read models.
type Backend struct {
	Name  string
	Store eventstore.Store
	DB    projections.DB
}

// SQLite opens a SQLite store in a file of the test's own.
func SQLite(t testing.TB) Backend {
	t.Helper()
	s := teststore.SQLite(t, "")
	return Backend{Name: "sqlite", Store: s, DB: projections.NewSQLiteStoreDB(s)}
}

// Postgres opens a store with a pool of its own of maxConns connections on
// url (a fresh schema when url is ""), as another process would.
func Postgres(t testing.TB, url string, maxConns int32) Backend {
	t.Helper()
	if url == "" {
		url = testenv.Postgres(t)
	}
	s, pool := teststore.Postgres(t, url, maxConns)
	return Backend{Name: "postgres", Store: s, DB: projections.NewPostgresDB(pool)}
}

// Each runs f as a subtest on SQLite and on PostgreSQL (a pool of 6).
func Each(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, Postgres(t, "", 6)) })
}
