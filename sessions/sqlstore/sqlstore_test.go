package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/sessions"
	"github.com/taskqueue/taskqueue/sessions/sqlstore"
)

func databases(t *testing.T) map[string]projections.DB {
	_, pool := teststore.Postgres(t, "", 2)
	return map[string]projections.DB{
		"sqlite":   projections.NewSQLiteStoreDB(teststore.SQLite(t, "")),
		"postgres": projections.NewPostgresDB(pool),
	}
}

// A session lives TTL after its last refresh, is gone once deleted or
// swept, and its ID is never stored.
func TestSessionsLifecycle(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const ttl = time.Hour
			s := sqlstore.New(db, ttl)
			t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			a := sessions.Session{ID: "sid-alice-0123456789", PlayerID: "alice", Role: auth.RolePlayer, CreatedAt: t0, RefreshedAt: t0}
			b := sessions.Session{ID: "sid-bob-0123456789", PlayerID: "bob", Role: auth.RoleAdmin, CreatedAt: t0, RefreshedAt: t0}
			for _, sess := range []sessions.Session{a, b} {
				if err := s.Put(ctx, sess); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Put(ctx, a); err == nil {
				t.Fatal("a second session with the same ID was saved")
			}
			active := func(sid string, at time.Time) bool {
				t.Helper()
				ok, err := s.Active(ctx, sid, at)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !active(a.ID, t0.Add(ttl)) || active(a.ID, t0.Add(ttl+time.Millisecond)) || active("never", t0) {
				t.Fatal("active does not follow the TTL")
			}

			got, ok, err := s.Refresh(ctx, a.ID, t0.Add(50*time.Minute))
			if err != nil || !ok {
				t.Fatalf("refresh = %v, %v", ok, err)
			}
			want := a
			want.RefreshedAt = t0.Add(50 * time.Minute)
			if got != want {
				t.Fatalf("refreshed session = %+v, want %+v", got, want)
			}
			if !active(a.ID, t0.Add(100*time.Minute)) {
				t.Fatal("a refreshed session expired from its creation, not its refresh")
			}
			if _, ok, err := s.Refresh(ctx, b.ID, t0.Add(ttl+time.Second)); err != nil || ok {
				t.Fatalf("refresh of an expired session = %v, %v; want not found", ok, err)
			}

			if err := s.Sweep(ctx, t0.Add(ttl+time.Second)); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRow(ctx, `SELECT count(*) FROM login_sessions`).Scan(&n); err != nil || n != 1 {
				t.Fatalf("%d sessions after the sweep (%v), want alice's", n, err)
			}
			var stored string
			if err := db.QueryRow(ctx, `SELECT id_hash FROM login_sessions`).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stored, "alice") || len(stored) != 64 {
				t.Fatalf("stored %q: want the SHA-256 of the ID, not the ID", stored)
			}

			if err := s.Delete(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
			if active(a.ID, t0.Add(time.Minute)) {
				t.Fatal("a deleted session is active")
			}
			if err := s.Delete(ctx, a.ID); err != nil {
				t.Fatalf("deleting a missing session: %v", err)
			}
		})
	}
}
