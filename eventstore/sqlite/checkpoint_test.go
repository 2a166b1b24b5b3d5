package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// The WAL is copied into the database file in the background, soon after
// appends commit, not by the writer in the commit that crosses SQLite's
// 1,000-page threshold: a few appends (far fewer WAL pages than that) are
// in the database file itself within moments, and the writer connection
// has its automatic checkpoint off.
func TestWALCheckpointedInBackground(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "events.db"))
	var auto int
	if err := s.WriteDB().QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Errorf("writer's wal_autocheckpoint = %d, want 0 (checkpoints run in the background)", auto)
	}
	const n = 20
	for i := range n {
		if _, err := s.Append(ctx, "ckpt", eventstore.Any, event("E", fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// The database file alone, without its WAL, holds what was
	// checkpointed. Copy it (SQLite would read the WAL beside it) and count.
	inFile := func() (int, error) {
		b, err := os.ReadFile(filepath.Join(dir, "events.db"))
		if err != nil {
			return 0, err
		}
		cp := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(cp, b, 0o600); err != nil {
			return 0, err
		}
		db, err := sql.Open("sqlite", "file:"+cp+"?mode=ro")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var count int
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE stream_id = 'ckpt'`).Scan(&count)
		return count, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		count, err := inFile()
		if err == nil && count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database file holds %d of %d appended events after 10 s (err %v): the WAL was not checkpointed", count, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
