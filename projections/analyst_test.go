package projections

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/internal/testenv"
)

// With taskqueue.analyst_password set on the migrating connection, migration
// 0014 creates the read-only role taskqueue_analyst: it reads the read
// models, also the views re-created by a rebuild, and cannot write. (The
// role is cluster-wide and outlives the test; its password is random.)
func TestAnalystRoleReadsButCannotWrite(t *testing.T) {
	ctx := context.Background()
	base := testenv.Postgres(t)
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("taskqueue.analyst_password", hex.EncodeToString(pw))
	u.RawQuery = q.Encode()
	b := openPostgres(t, u.String())
	r := startRunner(t, b, Config{})
	waitCaughtUp(t, r)

	q = u.Query()
	q.Del("taskqueue.analyst_password")
	u.User = url.UserPassword("taskqueue_analyst", hex.EncodeToString(pw))
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect as taskqueue_analyst: %v", err)
	}
	defer conn.Close(ctx)
	for _, v := range allViews() {
		if _, err := conn.Exec(ctx, "SELECT * FROM "+v+" LIMIT 1"); err != nil {
			t.Fatalf("analyst cannot read %s: %v", v, err)
		}
	}
	_, err = conn.Exec(ctx, "DELETE FROM queue_status__v1")
	if err == nil || !(strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "read-only")) {
		t.Fatalf("analyst deleted from queue_status__v1: %v", err)
	}
	gen, err := r.Rebuild(ctx, QueuesName)
	if err != nil {
		t.Fatal(err)
	}
	waitForRunner(t, r, "the switch", func(ctx context.Context) (bool, error) {
		s, err := r.StatusOf(ctx, QueuesName)
		return s.Generation == gen && s.Rebuild == nil, err
	})
	if _, err := conn.Exec(ctx, "SELECT * FROM queue_status LIMIT 1"); err != nil {
		t.Fatalf("analyst cannot read the rebuilt queue_status: %v", err)
	}
}
