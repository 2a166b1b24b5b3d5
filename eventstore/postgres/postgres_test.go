package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/storetest"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// migratedURL returns the URL of a fresh schema with the migrations
// applied, dropped when the test ends.
func migratedURL(t testing.TB) string { return teststore.PostgresURL(t) }

// openStore returns a store on a fresh, migrated schema, closed when the
// test ends. Pools stay small: every engineer's tests share the server.
func openStore(t testing.TB) *postgres.Store {
	t.Helper()
	return openStoreOpts(t, postgres.WithMaxConns(6))
}

func openStoreOpts(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	return openURL(t, migratedURL(t), opts...)
}

func openURL(t testing.TB, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func harness() storetest.Harness {
	return storetest.Harness{
		New: func(t *testing.T) eventstore.Store { return openStore(t) },
		HoldAppend: func(ctx context.Context, t *testing.T, st eventstore.Store, stream string, events ...eventstore.EventData) (storetest.HeldAppend, error) {
			s := st.(*postgres.Store)
			tx, err := s.Pool().Begin(ctx)
			if err != nil {
				return storetest.HeldAppend{}, err
			}
			if _, err := s.AppendTx(ctx, tx, stream, eventstore.Any, events...); err != nil {
				_ = tx.Rollback(ctx)
				return storetest.HeldAppend{}, err
			}
			return storetest.HeldAppend{Commit: tx.Commit, Rollback: tx.Rollback}, nil
		},
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, harness())
}
