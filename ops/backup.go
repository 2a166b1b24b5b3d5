package ops

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
)

// BackupOptions configures Backup.
type BackupOptions struct {
	// DataDir is the serving data directory; File is its SQLite file name
	// in it (app.SQLiteFileName).
	DataDir, File string
	// To is the directory to write; it must not exist or be empty.
	To string
	// Secret is the name of the file in DataDir that holds the generated
	// token secret, copied when it exists (tokens signed before the backup
	// stay valid on a restore). Empty: none.
	Secret string
}

// BackupResult reports a Backup.
type BackupResult struct {
	// Path of the copy of the SQLite file.
	Path string
	// Events in the copy, and the position of its last one: every command
	// acknowledged before the backup began is at or before it.
	Events int64
	Head   eventstore.Position
	// Bytes is the size of the copy.
	Bytes int64
}

// Backup copies the embedded default's data directory while the service
// serves (`taskqueue backup --to DIR`): the SQLite file as of one moment
// (sqlite.Backup), and the generated token secret. Restoring is starting
// the service with DIR as its data directory: its projections go on from
// the checkpoints in the copy.
func Backup(ctx context.Context, opt BackupOptions) (BackupResult, error) {
	var res BackupResult
	if opt.To == "" {
		return res, fmt.Errorf("backup: %w: no directory to write (--to)", ErrInvalid)
	}
	src := filepath.Join(opt.DataDir, opt.File)
	if _, err := os.Stat(src); err != nil {
		return res, fmt.Errorf("backup: %w: no database at %s (is TASKQUEUE_DATA_DIR right?)", ErrInvalid, src)
	}
	entries, err := os.ReadDir(opt.To)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(opt.To, 0o700); err != nil {
			return res, fmt.Errorf("backup: %w", err)
		}
	case err != nil:
		return res, fmt.Errorf("backup: %w", err)
	case len(entries) > 0:
		return res, fmt.Errorf("backup: %w: %s is not empty", ErrInvalid, opt.To)
	}
	res.Path = filepath.Join(opt.To, opt.File)
	if err := sqlite.Backup(ctx, src, res.Path); err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	if opt.Secret != "" {
		if err := copySecret(filepath.Join(opt.DataDir, opt.Secret), filepath.Join(opt.To, opt.Secret)); err != nil {
			return res, fmt.Errorf("backup: %w", err)
		}
	}
	fi, err := os.Stat(res.Path)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	res.Bytes = fi.Size()
	db, err := sql.Open("sqlite", "file:"+res.Path+"?mode=ro")
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	var head int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE event_type <> '$deleted'), coalesce(max(position), 0) FROM events`).Scan(&res.Events, &head); err != nil {
		return res, fmt.Errorf("backup: read the copy: %w", err)
	}
	res.Head = eventstore.Position{Seq: uint64(head)}
	return res, nil
}

// copySecret copies the secret file, when there is one, keeping it private.
func copySecret(from, to string) error {
	b, err := os.ReadFile(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}
