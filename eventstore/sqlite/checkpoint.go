package sqlite

import (
	"context"
	"database/sql"
	"net/url"
	"time"
)

// checkpointEvery is the least time between two checkpoints of the WAL
// into the database file. At the store's pace (~10,000 appends/s, a few
// WAL pages each) that is a few hundred to a few thousand pages a
// checkpoint, about SQLite's own automatic threshold (1,000 pages).
const checkpointEvery = 50 * time.Millisecond

// The store checkpoints in the background instead of in the commit that
// crosses SQLite's threshold. SQLite's automatic checkpoint runs inside
// that commit, on the writer's one connection: it syncs the WAL, copies
// its pages into the database file and syncs that, and every append queued
// behind it waits (about an eighth of the writer's time in the append
// benchmark, and a latency spike each time). The writer connection
// therefore has wal_autocheckpoint off, and a goroutine of its own, on a
// connection of its own, runs PASSIVE checkpoints (which wait for no
// reader nor writer: the writer goes on appending to the WAL meanwhile) at
// most every checkpointEvery while appends or WriteTx transactions commit.
// Durability is as before: with synchronous=NORMAL a commit is in the WAL
// (safe from a crash of the process) and a checkpoint syncs the WAL before
// it copies it. The WAL restarts from its start once a checkpoint copied
// all of it, as with the automatic one.
//
// Another process that writes the file with its own connections keeps its
// own automatic checkpoints.

// checkpointer runs the background checkpoints.
type checkpointer struct {
	db   *sql.DB
	kick chan struct{} // a commit happened since the last checkpoint
	stop chan struct{}
	done chan struct{}
}

func startCheckpointer(ctx context.Context, path string) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// committed tells the checkpointer that the WAL grew.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		timer.Reset(checkpointEvery)
		select {
		case <-timer.C:
		case <-c.stop:
			timer.Stop()
			return
		}
		// A failure (the file busy with another process's checkpoint) is
		// left for the next round: the WAL only grows meanwhile.
		_, _ = c.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// close stops the checkpointer and closes its connection. SQLite
// checkpoints the WAL when the file's last connection closes.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}

// writerParams are the writer's DSN parameters beyond the pragmas: BEGIN
// IMMEDIATE (see the package doc) and no automatic checkpoint (see
// checkpointer).
func writerParams() url.Values {
	return url.Values{"_txlock": {"immediate"}, "_pragma": {"wal_autocheckpoint(0)"}}
}
