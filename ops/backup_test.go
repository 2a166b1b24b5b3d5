package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/ops/opstest"
	"github.com/taskqueue/taskqueue/projections"
)

// A backup taken while players' commands are being written holds every
// command acknowledged before it began, is a working data directory, and
// its read models, once caught up, equal a replay of its log.
func TestBackupUnderLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "taskqueue.db")
	if err := os.WriteFile(filepath.Join(dir, "jwt-secret"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := openSQLiteAt(t, path)
	startRunner(t, src) // the read models are written to while the backup is taken
	h, err := command.NewHandlers(src.Store, command.Config{})
	if err != nil {
		t.Fatal(err)
	}

	// Players enqueue tasks and stop and start their queues until told to
	// stop; each acknowledged command is recorded with when it was answered.
	type ack struct {
		player domain.PlayerID
		key    string
		at     time.Time
	}
	var (
		mu   sync.Mutex
		acks []ack
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			player := domain.PlayerID(fmt.Sprintf("p%d", p))
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("%s-%d", player, i)
				req := command.Request{PlayerID: string(player), IdempotencyKey: key}
				var err error
				switch i % 3 {
				case 0:
					_, err = h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req, Type: "chop-wood", Count: 1})
				case 1:
					_, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: req})
				default:
					_, err = h.StartQueue.Handle(ctx, command.StartQueue{Request: req})
				}
				if errors.Is(err, domain.ErrQueueFull) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{player, key, time.Now()})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	to := filepath.Join(t.TempDir(), "backup")
	res, err := Backup(ctx, BackupOptions{DataDir: dir, File: "taskqueue.db", To: to, Secret: "jwt-secret"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // commands after the backup: not in it
	stop.Store(true)
	wg.Wait()

	if secret, err := os.ReadFile(filepath.Join(to, "jwt-secret")); err != nil || string(secret) != "s3cret" {
		t.Fatalf("secret in the backup: %q, %v", secret, err)
	}
	copied := openSQLiteAt(t, res.Path)
	// Every command acknowledged before the backup began is in it.
	before := 0
	keys := map[domain.PlayerID]map[string]bool{}
	for _, a := range acks {
		if a.at.After(began) {
			continue
		}
		before++
		if keys[a.player] == nil {
			keys[a.player] = map[string]bool{}
			evs, err := copied.Store.ReadStream(ctx, a.player.Stream(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				keys[a.player][e.Metadata.CausationID] = true
			}
		}
		if !keys[a.player][a.key] {
			t.Errorf("command %s of %s, acknowledged before the backup began, is not in it", a.key, a.player)
		}
	}
	if before < 20 || len(acks) <= before {
		t.Fatalf("%d commands acknowledged before the backup, %d in all: the load did not straddle it", before, len(acks))
	}
	head, err := copied.Store.Head(ctx)
	if err != nil || head != res.Head {
		t.Fatalf("the copy's head %s (%v), the backup reported %s", head, err, res.Head)
	}

	// Restored: its read models go on from its checkpoints to its head,
	// and equal those of a replay of its log.
	restored := startRunner(t, copied)
	waitCaughtUp(t, restored, head)
	into := filepath.Join(t.TempDir(), "replayed.db")
	if _, err := ReplayTo(ctx, copied.Store, io.Discard, ReplayToOptions{
		ReplayOptions: ReplayOptions{Projection: AllProjections, Interval: 20 * time.Millisecond},
		To:            Moment{Position: head, HasPosition: true}, Into: into}); err != nil {
		t.Fatal(err)
	}
	replayed, err := sqlite.Open(ctx, into)
	if err != nil {
		t.Fatal(err)
	}
	defer replayed.Close()
	var players []domain.PlayerID
	for p := range keys {
		players = append(players, p)
	}
	got := opstest.SameReadModels(t, opstest.Side{Name: "restored", DB: copied.DB},
		opstest.Side{Name: "replayed", DB: projections.NewSQLiteStoreDB(replayed)}, players,
		time.Now().Add(-48*time.Hour), time.Now().Add(48*time.Hour))
	if got.Players == 0 {
		t.Fatal("nothing compared")
	}
}

// A backup refuses a directory in use and a data directory without a
// database, and writes nothing.
func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Backup(ctx, BackupOptions{DataDir: dir, File: "taskqueue.db", To: filepath.Join(dir, "b")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("backup of a directory without a database: %v", err)
	}
	openSQLiteAt(t, filepath.Join(dir, "taskqueue.db"))
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(ctx, BackupOptions{DataDir: dir, File: "taskqueue.db", To: full}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("backup into a non-empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(full, "taskqueue.db")); err == nil {
		t.Fatal("a refused backup wrote a file")
	}
}
