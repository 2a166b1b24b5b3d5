package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Backup writes a consistent copy of the SQLite file at src to dst, which
// must not exist, while src is in use by this or another process: VACUUM
// INTO reads one snapshot of the file, so the copy holds exactly the
// transactions committed when the backup began, the log and everything
// kept beside it (read models and their checkpoints, the processor's
// schedule, sessions, snapshots) at one moment. Writers go on meanwhile
// (WAL mode). The copy is synced to disk before Backup returns and passes
// SQLite's quick_check; Open uses it as it is.
func Backup(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("back up %s: %w", src, err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("back up %s: %s exists: name a new file", src, dst)
	}
	// A connection of its own, not read-only (query_only refuses VACUUM
	// INTO), that writes nothing to src.
	db, err := sql.Open("sqlite", dsn(src, nil))
	if err != nil {
		return fmt.Errorf("back up %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("back up %s into %s: %w", src, dst, err)
	}
	if err := check(ctx, dst); err != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("back up %s into %s: %w", src, dst, err)
	}
	return nil
}

// check syncs the copy at path and runs quick_check on it.
func check(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync the copy: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&result); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("check the copy: quick_check says %q", result)
	}
	return nil
}
