package app

import (
	"context"
	"testing"

	"github.com/taskqueue/taskqueue/internal/testenv"
)

// Every session of the service's pool ends a transaction left idle
// (IdleInTransactionTimeout), unless the URL sets its own value.
func TestPostgresSessionsEndIdleTransactions(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	for _, c := range []struct{ url, want string }{
		{url, IdleInTransactionTimeout},
		{url + "&idle_in_transaction_session_timeout=7s", "7s"},
	} {
		pool, db, err := connectPostgres(ctx, Config{DatabaseURL: c.url, DatabaseMaxConns: 2, RequestTimeout: 5e9})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = pool.QueryRow(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&got)
		db.Close()
		pool.Close()
		if err != nil || got != c.want {
			t.Errorf("idle_in_transaction_session_timeout with %q: %q, %v; want %q", c.url, got, err, c.want)
		}
	}
}
