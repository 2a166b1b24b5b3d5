package app

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections"
)

func TestLogOf(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "sqlite"},
		{Config{DatabaseURL: "postgres://u@h/db"}, "postgres"},
		{Config{KurrentDBURL: "esdb://admin:secret@kdb:2113?tls=false", KurrentDBNamespace: "eu-", DatabaseURL: "postgres://u@h/db"}, "kurrentdb:kdb:2113/eu-"},
	} {
		if got := logOf(c.cfg); got != c.want {
			t.Errorf("logOf(%+v) = %q, want %q", c.cfg, got, c.want)
		}
	}
}

// The first start binds the read-model database to its event log; later
// starts on the same log pass, one on another log is refused and changes
// nothing.
func TestBindLog(t *testing.T) {
	ctx := context.Background()
	lite := teststore.SQLite(t, "")
	_, pool := teststore.Postgres(t, "", 2)
	for name, db := range map[string]projections.DB{
		"sqlite":   projections.NewSQLiteStoreDB(lite),
		"postgres": projections.NewPostgresDB(pool),
	} {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			for range 2 {
				if err := bindLog(ctx, db, "postgres", now); err != nil {
					t.Fatalf("same log: %v", err)
				}
			}
			err := bindLog(ctx, db, "kurrentdb:kdb:2113/", now)
			if !errors.Is(err, ErrOtherLog) || !strings.Contains(err.Error(), `"postgres"`) || !strings.Contains(err.Error(), `"kurrentdb:kdb:2113/"`) {
				t.Fatalf("another log: %v", err)
			}
			if err := bindLog(ctx, db, "postgres", now); err != nil {
				t.Fatalf("the refused one changed the binding: %v", err)
			}
		})
	}
}

// An app built on a data directory whose read models are bound to another
// event log refuses to start, naming the setting to change.
func TestBuildRefusesAnotherLogsReadModels(t *testing.T) {
	dir := t.TempDir()
	_, cleanup, err := NewWithLog(context.Background(), Config{DataDir: dir, Addr: "127.0.0.1:0", LogLevel: "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	s := teststore.SQLite(t, dir+"/"+SQLiteFileName)
	if _, err := s.WriteDB().Exec(`UPDATE log_binding SET log = 'kurrentdb:elsewhere/'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, _, err = NewWithLog(context.Background(), Config{DataDir: dir, Addr: "127.0.0.1:0", LogLevel: "error"}, io.Discard)
	if !errors.Is(err, ErrOtherLog) || !strings.Contains(err.Error(), "TASKQUEUE_DATA_DIR") {
		t.Fatalf("build on another log's read models: %v", err)
	}
}
