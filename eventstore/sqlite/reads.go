package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// readStatements are the reads prepared once on the reader pool.
type readStatements struct {
	stream   *sql.Stmt // selectStream
	version  *sql.Stmt // a stream's version
	snapshot *sql.Stmt // a stream's snapshot
}

func prepareReads(ctx context.Context, db *sql.DB) (readStatements, error) {
	var (
		r    readStatements
		errs []error
	)
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{
		{&r.stream, selectStream},
		{&r.version, selectVersion},
		{&r.snapshot, `SELECT version, event_id, schema_version, data FROM stream_snapshots WHERE stream_id = ?`},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		errs = append(errs, err)
		*p.st = st
	}
	if err := errors.Join(errs...); err != nil {
		r.close()
		return readStatements{}, err
	}
	return r, nil
}

func (r readStatements) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{r.stream, r.version, r.snapshot} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// prepared runs a prepared statement where a queryer is expected; the
// query text is the statement's own.
type prepared struct{ st *sql.Stmt }

func (p prepared) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return p.st.QueryContext(ctx, args...)
}
