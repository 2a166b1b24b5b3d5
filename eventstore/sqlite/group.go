package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/taskqueue/taskqueue/eventstore"
)

const (
	// maxInsertRows is the most rows one INSERT of a group takes:
	// SQLite allows 32,766 parameters per statement, 11 per row. One
	// append (at most MaxEventsPerAppend events) always fits.
	maxInsertRows = 2900
	// preparedRows is the most rows an INSERT that is kept prepared
	// takes; larger ones are prepared for the one statement.
	preparedRows = maxGroup
)

// selectVersions reads the versions of the streams in a JSON array: one
// prepared statement whatever their number, each version one step down
// the (stream_id, version) index.
const selectVersions = `SELECT j.value, COALESCE((SELECT MAX(version) FROM events WHERE stream_id = j.value), 0)
	FROM json_each(?) AS j`

// groupStatements are the statements a group runs, prepared on the
// writer's one connection once and kept: the version of many streams, and
// INSERT OR ROLLBACKs of 1 to preparedRows rows. The gate's holder
// prepares and uses them; mu keeps Close apart.
type groupStatements struct {
	mu       sync.Mutex
	versions *sql.Stmt
	inserts  map[int]*sql.Stmt
}

// statements returns the prepared version read and INSERT of rows rows,
// nil for those not prepared.
func (g *groupStatements) statements(rows int) (versions, insert *sql.Stmt) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.versions, g.inserts[rows]
}

// prepare prepares, outside any transaction, the statements a group of
// rows rows will use, if they are not yet prepared. Errors are left for
// the group to meet (it then prepares its statements in its transaction).
func (s *Store) prepare(ctx context.Context, rows int) {
	g := &s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.versions == nil {
		if st, err := s.writer.PrepareContext(ctx, selectVersions); err == nil {
			g.versions = st
		}
	}
	if rows < 1 || rows > preparedRows || g.inserts[rows] != nil {
		return
	}
	if g.inserts == nil {
		g.inserts = make(map[int]*sql.Stmt)
	}
	if st, err := s.writer.PrepareContext(ctx, insertOrRollbackSQL(rows)); err == nil {
		g.inserts[rows] = st
	}
}

// closeGroupStatements closes what prepare prepared.
func (s *Store) closeGroupStatements() error {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	var errs []error
	if s.group.versions != nil {
		errs = append(errs, s.group.versions.Close())
	}
	for _, st := range s.group.inserts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// errRolledBack reports that a fast INSERT broke a constraint and, being
// INSERT OR ROLLBACK, rolled the whole transaction back.
var errRolledBack = errors.New("a group's insert broke a constraint and rolled its transaction back")

// storeParts stores parts in tx, in order, each with its own outcome, as
// if each ran appendIn one after the other, and reports whether it wrote
// anything. An error is a failure of the transaction, not of a part: the
// caller must roll back, or, on errRolledBack, find it rolled back.
//
// With fast false it does exactly that: appendIn, part after part. With
// fast true the common case costs two statements for all the parts: one
// read of the streams' versions, and one INSERT of every part whose
// expected version matches. A part that does not match is decided by
// appendIn on what is stored (a retry whose events are there, or a wrong
// version), so the parts before it are inserted first. The INSERT is
// INSERT OR ROLLBACK: SQLite then needs no statement journal (a copy of
// every page the statement changes, which a multi-row INSERT that may
// abort halfway must keep), and an event ID already stored (a retry with
// Any, an ID of another stream) rolls the transaction back with
// errRolledBack: the group then runs again with fast false.
func (s *Store) storeParts(ctx context.Context, tx *sql.Tx, parts []*appendPart, fast bool, clock *recordClock) (stored bool, err error) {
	slow := func(p *appendPart) error {
		p.res, p.err = s.appendIn(ctx, tx, p.stream, p.expected, p.events, clock)
		if p.err != nil && !ownFailure(p.err) {
			return p.err
		}
		stored = stored || (p.err == nil && !p.res.Duplicate)
		return nil
	}
	if !fast {
		for _, p := range parts {
			if err := slow(p); err != nil {
				return stored, err
			}
		}
		return stored, nil
	}
	versions, err := s.versionsOf(ctx, tx, parts)
	if err != nil {
		return false, err
	}
	var pending []*appendPart
	flush := func() error {
		for len(pending) > 0 {
			n, rows := 0, 0
			for n < len(pending) && rows+len(pending[n].events) <= maxInsertRows {
				rows += len(pending[n].events)
				n++
			}
			if err := s.insertParts(ctx, tx, pending[:n], rows, clock); err != nil {
				return err
			}
			stored = true
			pending = pending[n:]
		}
		return nil
	}
	for _, p := range parts {
		if p.expected.Check(versions[p.stream]) {
			p.from = versions[p.stream]
			versions[p.stream] += int64(len(p.events))
			pending = append(pending, p)
			continue
		}
		if err := flush(); err != nil {
			return stored, err
		}
		// No write: the stream's version stays as read.
		if err := slow(p); err != nil {
			return stored, err
		}
	}
	return stored, flush()
}

// versionsOf reads the current version of every stream of parts.
func (s *Store) versionsOf(ctx context.Context, tx *sql.Tx, parts []*appendPart) (map[string]int64, error) {
	versions := make(map[string]int64, len(parts))
	var list strings.Builder
	list.WriteByte('[')
	for _, p := range parts {
		if _, ok := versions[p.stream]; ok {
			continue
		}
		versions[p.stream] = 0
		if list.Len() > 1 {
			list.WriteByte(',')
		}
		list.WriteString(jsonString(p.stream))
	}
	list.WriteByte(']')
	var (
		rows *sql.Rows
		err  error
	)
	if st, _ := s.group.statements(0); st != nil {
		rows, err = tx.StmtContext(ctx, st).QueryContext(ctx, list.String())
	} else {
		rows, err = tx.QueryContext(ctx, selectVersions, list.String())
	}
	if err != nil {
		return nil, fmt.Errorf("read stream versions: %w", s.closedOr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream  string
			version int64
		)
		if err := rows.Scan(&stream, &version); err != nil {
			return nil, fmt.Errorf("read stream versions: %w", err)
		}
		versions[stream] = version
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream versions: %w", s.closedOr(err))
	}
	return versions, nil
}

// jsonString quotes s as a JSON string. Stream IDs are valid UTF-8 without
// control characters (eventstore.ValidateStreamID), so only '"' and '\\'
// need escaping.
func jsonString(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// insertParts inserts the events of parts (rows in all) in ONE statement,
// each part's at the versions after its from, and sets each part's
// result. The rows take consecutive
// positions (rowids one above the largest, in the order of the VALUES:
// the table is append-only and written by one connection at a time).
// Each part gets its own recorded_at, later than the previous part's, so
// that restOfAppend tells two appends of one stream apart.
func (s *Store) insertParts(ctx context.Context, tx *sql.Tx, parts []*appendPart, rows int, clock *recordClock) error {
	args := make([]any, 0, 11*rows)
	for _, p := range parts {
		now := clock.next()
		for i, e := range p.events {
			args = append(args, p.stream, p.from+int64(i)+1, e.ID.String(), e.Type, e.SchemaVersion, []byte(e.Data),
				e.Metadata.OccurredAt.UnixMicro(), e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.Actor, now)
		}
	}
	var (
		r   sql.Result
		err error
	)
	if _, st := s.group.statements(rows); st != nil {
		r, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else {
		r, err = tx.ExecContext(ctx, insertOrRollbackSQL(rows), args...)
	}
	if isConstraint(err) {
		return errRolledBack
	}
	if err != nil {
		return fmt.Errorf("insert events: %w", s.closedOr(err))
	}
	last, err := r.LastInsertId()
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	pos := last - int64(rows)
	for _, p := range parts {
		pos += int64(len(p.events))
		p.res = eventstore.AppendResult{Version: p.from + int64(len(p.events)), Position: eventstore.Position{Seq: uint64(pos)}}
		p.err = nil
	}
	return nil
}

// insertOrRollbackSQL is insertSQL(n) as INSERT OR ROLLBACK.
func insertOrRollbackSQL(n int) string {
	return strings.Replace(insertSQL(n), "INSERT INTO", "INSERT OR ROLLBACK INTO", 1)
}

// isConstraint reports a broken constraint (SQLITE_CONSTRAINT and its
// extended codes).
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 19
}

// recordClock hands out the recorded_at of a group's appends: the clock in
// microseconds, strictly increasing within the group.
type recordClock struct{ last int64 }

func (c *recordClock) next() int64 {
	c.last = max(time.Now().UTC().UnixMicro(), c.last+1)
	return c.last
}
