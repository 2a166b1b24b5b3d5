package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/migrations"
)

// Queries in this package are written once for both dialects: "$1" style
// placeholders (SQLite reads "$N" as the N-th argument; the SQLite DB sends
// them as "?" when they come in order, see sqliteParams), ON CONFLICT
// upserts, no casts, no dialect-only functions. Where the dialects must
// differ the code asks Tx.Dialect().

// Tx is the runner's transaction as a projection sees it: every statement a
// projection runs through it commits, or rolls back, together with the
// projection's checkpoint. Not safe for concurrent use.
type Tx interface {
	Querier
	// Exec runs a statement and reports the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Querier reads: a Tx, or a DB outside any transaction.
type Querier interface {
	// Dialect tells which SQL backend runs the statements.
	Dialect() migrations.Dialect
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is the common part of pgx.Rows and *sql.Rows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the common part of pgx.Row and *sql.Row.
type Row interface {
	Scan(dest ...any) error
}

// DB is a read-model database: PostgreSQL through a pgx pool, or SQLite
// through database/sql. Safe for concurrent use.
type DB interface {
	Querier
	// InTx runs fn in one transaction and commits it when fn returns nil.
	InTx(ctx context.Context, fn func(Tx) error) error
}

// NewPostgresDB returns the DB of a PostgreSQL pool (the event store's pool
// or one of its own; the read models live beside the log either way).
func NewPostgresDB(pool *pgxpool.Pool) DB { return pgDB{pool} }

// SQLiteStore is the embedded event store (eventstore/sqlite's *Store) as a
// read-model database sees it.
type SQLiteStore interface {
	// WriteTx runs fn in a transaction on the store's single writer,
	// after the appends waiting for it, and commits it when fn returns nil.
	WriteTx(ctx context.Context, fn func(*sql.Tx) error) error
	// ReadDB is the store's pool of read-only connections.
	ReadDB() *sql.DB
}

// NewSQLiteStoreDB returns the DB of the event store's own file: read-model
// transactions and checkpoints run through s.WriteTx, serialized with the
// appends and behind those waiting (an append never waits for a queue of
// projection batches), and reads outside transactions on s.ReadDB.
func NewSQLiteStoreDB(s SQLiteStore) DB {
	return liteDB{writeTx: s.WriteTx, reader: s.ReadDB()}
}

// Unprepared marks a statement whose text is built for its data: a
// multi-row upsert of n rows, an IN list of n values. Such a statement has
// as many texts as there are batch sizes, so PostgreSQL runs it unprepared
// (pgx.QueryExecModeDescribeExec: the unnamed statement, one more round
// trip) instead of the default, which prepares every text it meets on each
// pooled connection and keeps it (512 per connection, with its
// description; the server keeps their plans): in a soak such statements
// held 24 MB of the heap after 30 minutes, growing with every batch size
// a connection had not met yet (docs/SOAK.md). Statements of a fixed
// text, or of a few texts, are left prepared. SQLite ignores the mark (a
// comment).
func Unprepared(query string) string { return unpreparedMark + query }

// unpreparedMark starts the text of a statement marked by Unprepared.
const unpreparedMark = "/* unprepared */ "

// pgArgs returns args, led by the query mode of q when Unprepared marked
// it (pgx reads a QueryExecMode first argument as the mode of that call).
func pgArgs(q string, args []any) []any {
	if !strings.HasPrefix(q, unpreparedMark) {
		return args
	}
	return append([]any{pgx.QueryExecModeDescribeExec}, args...)
}

type pgDB struct{ pool *pgxpool.Pool }

func (pgDB) Dialect() migrations.Dialect { return migrations.Postgres }

func (d pgDB) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	r, err := d.pool.Query(ctx, q, pgArgs(q, args)...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (d pgDB) QueryRow(ctx context.Context, q string, args ...any) Row {
	return d.pool.QueryRow(ctx, q, pgArgs(q, args)...)
}

func (d pgDB) InTx(ctx context.Context, fn func(Tx) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(pgTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

type pgTx struct{ tx pgx.Tx }

func (pgTx) Dialect() migrations.Dialect { return migrations.Postgres }

func (t pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, q, pgArgs(q, args)...)
	return tag.RowsAffected(), err
}

func (t pgTx) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	r, err := t.tx.Query(ctx, q, pgArgs(q, args)...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (t pgTx) QueryRow(ctx context.Context, q string, args ...any) Row {
	return t.tx.QueryRow(ctx, q, pgArgs(q, args)...)
}

// copyFrom writes rows into table with COPY (pgx CopyFrom), inside the
// transaction: the bulk build's write path (bulk.go).
func (t pgTx) copyFrom(ctx context.Context, table string, cols []string, rows [][]any) (int64, error) {
	return t.tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
}

// tryLock takes the session-level advisory lock named key on a connection
// of its own, without waiting, and holds it until release: no transaction
// stays open meanwhile, so the log's horizon never waits for it, and the
// lock ends with the session if the process dies. ok is false when another
// session holds it.
func (d pgDB) tryLock(ctx context.Context, key string) (release func(), ok bool, err error) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", key, err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("lock %s: %w", key, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); err != nil {
			_ = conn.Conn().Close(ctx) // the session ends, and the lock with it
		}
		conn.Release()
	}, true, nil
}

type liteDB struct {
	writeTx func(ctx context.Context, fn func(*sql.Tx) error) error
	reader  *sql.DB
}

func (liteDB) Dialect() migrations.Dialect { return migrations.SQLite }

func (d liteDB) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	r, err := d.reader.QueryContext(ctx, sqliteParams(q), liteArgs(args)...)
	if err != nil {
		return nil, err
	}
	return liteRows{r}, nil
}

func (d liteDB) QueryRow(ctx context.Context, q string, args ...any) Row {
	return d.reader.QueryRowContext(ctx, sqliteParams(q), liteArgs(args)...)
}

func (d liteDB) InTx(ctx context.Context, fn func(Tx) error) error {
	return d.writeTx(ctx, func(tx *sql.Tx) error { return fn(liteTx{tx}) })
}

type liteTx struct{ tx *sql.Tx }

func (liteTx) Dialect() migrations.Dialect { return migrations.SQLite }

func (t liteTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, sqliteParams(q), liteArgs(args)...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (t liteTx) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	r, err := t.tx.QueryContext(ctx, sqliteParams(q), liteArgs(args)...)
	if err != nil {
		return nil, err
	}
	return liteRows{r}, nil
}

func (t liteTx) QueryRow(ctx context.Context, q string, args ...any) Row {
	return t.tx.QueryRowContext(ctx, sqliteParams(q), liteArgs(args)...)
}

type liteRows struct{ *sql.Rows }

func (r liteRows) Close() { _ = r.Rows.Close() }

// sqliteParams returns q with its parameters written "?" when they are
// exactly $1, $2, ..., $n in that order, each once (what upsert and every
// IN list of this package write), and q unchanged otherwise. Both forms
// bind the same arguments, but SQLite keeps "$N" parameters in a list it
// searches linearly for every parameter, when it prepares the statement
// and again when the driver binds it: a multi-row upsert of a few thousand
// parameters spent most of its time there (quadratic in the batch), while
// holding the single writer of the file that every append waits for.
func sqliteParams(q string) string {
	if !strings.Contains(q, "$") {
		return q
	}
	var (
		b    strings.Builder
		next = 1 // the parameter expected next
		last = 0 // end of the text copied so far
	)
	b.Grow(len(q))
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '\'', '"', '`':
			// A string literal or quoted identifier: skip to its end (a
			// doubled quote is an escaped one and simply restarts the scan).
			end := strings.IndexByte(q[i+1:], c)
			if end < 0 {
				return q
			}
			i += end + 1
		case '[':
			end := strings.IndexByte(q[i+1:], ']')
			if end < 0 {
				return q
			}
			i += end + 1
		case '-':
			if i+1 < len(q) && q[i+1] == '-' {
				end := strings.IndexByte(q[i:], '\n')
				if end < 0 {
					return q
				}
				i += end
			}
		case '/':
			if i+1 < len(q) && q[i+1] == '*' {
				end := strings.Index(q[i+2:], "*/")
				if end < 0 {
					return q
				}
				i += end + 3
			}
		case '?', ':', '@':
			return q // another kind of parameter: leave the statement alone
		case '$':
			if i > 0 && isNameByte(q[i-1]) {
				return q // a '$' inside an identifier
			}
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j < len(q) && isNameByte(q[j]) {
				return q // a named parameter such as $1a or $name
			}
			if n, err := strconv.Atoi(q[i+1 : j]); err != nil || n != next || q[i+1] == '0' {
				return q // out of order, repeated, or not a number
			}
			next++
			b.WriteString(q[last:i])
			b.WriteByte('?')
			last = j
			i = j - 1
		}
	}
	b.WriteString(q[last:])
	return b.String()
}

// isNameByte reports whether c continues a SQLite parameter name.
func isNameByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// sqliteTimeLayout is how times are stored in SQLite: UTC, fixed width to the
// microsecond, so that text order is time order (range scans and indexes
// work on the text).
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// liteArgs stores times in sqliteTimeLayout.
func liteArgs(args []any) []any {
	for i, a := range args {
		switch v := a.(type) {
		case time.Time:
			args[i] = formatLiteTime(v)
		case *time.Time:
			if v == nil {
				args[i] = nil
			} else {
				args[i] = formatLiteTime(*v)
			}
		}
	}
	return args
}

func formatLiteTime(t time.Time) string { return t.UTC().Format(sqliteTimeLayout) }

// Time scans a timestamp from either dialect (time.Time from PostgreSQL,
// text from SQLite); a NULL scans as the zero time.
type Time struct{ time.Time }

// Scan implements sql.Scanner.
func (t *Time) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		t.Time = time.Time{}
	case time.Time:
		t.Time = v.UTC()
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	default:
		return fmt.Errorf("scan time: unsupported type %T", src)
	}
	return nil
}

func (t *Time) parse(s string) error {
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		v, err = time.Parse("2006-01-02 15:04:05.999999999-07:00", s)
	}
	if err != nil {
		v, err = time.Parse(time.DateOnly, s)
	}
	if err != nil {
		return fmt.Errorf("scan time %q: %w", s, err)
	}
	t.Time = v.UTC()
	return nil
}

// placeholders returns "$from, $from+1, ..., $from+n-1".
func placeholders(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// maxParams bounds the arguments of one statement (SQLite's default limit is
// 32766, PostgreSQL's 65535).
const maxParams = 30000

// upsert writes rows (each with len(cols) values) into table with multi-row
// INSERT ... ON CONFLICT (key) DO UPDATE statements, as few as the parameter
// limit allows: one round trip per few thousand rows, not one per row.
// update lists "col = expression" assignments for the conflict case (for
// example "n = table.n + excluded.n"); empty means DO NOTHING.
func upsert(ctx context.Context, tx Tx, table string, cols, key []string, update []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if c, ok := tx.(copier); ok && len(rows) >= stageRows {
		return stagedUpsert(ctx, tx, c, table, cols, key, update, rows)
	}
	per := maxParams / len(cols)
	conflict := " ON CONFLICT (" + strings.Join(key, ", ") + ") DO NOTHING"
	if len(update) > 0 {
		conflict = " ON CONFLICT (" + strings.Join(key, ", ") + ") DO UPDATE SET " + strings.Join(update, ", ")
	}
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, len(chunk)*len(cols))
		for i, r := range chunk {
			if len(r) != len(cols) {
				return fmt.Errorf("upsert into %s: row has %d values for %d columns", table, len(r), len(cols))
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + placeholders(len(args)+1, len(cols)) + ")")
			args = append(args, r...)
		}
		b.WriteString(conflict)
		if _, err := tx.Exec(ctx, Unprepared(b.String()), args...); err != nil {
			return fmt.Errorf("upsert %d rows into %s: %w", len(chunk), table, err)
		}
	}
	return nil
}

// stageRows is the number of rows from which an upsert on PostgreSQL goes
// through a staging table (stagedUpsert): a catch-up batch far behind
// (16,384 events) writes thousands of rows per table.
const stageRows = 1024

// stagedUpsert is upsert for many rows on PostgreSQL: COPY them into a
// temporary table shaped like table (one per table and connection, emptied
// at every commit), then one INSERT … SELECT … ON CONFLICT from it, instead
// of statements of a thousand rows of parameters each. With DO NOTHING the
// first row of each key wins, as in a multi-row INSERT: the later ones are
// dropped here, so that the order in which the SELECT reads the staging
// table does not matter.
func stagedUpsert(ctx context.Context, tx Tx, c copier, table string, cols, key, update []string, rows [][]any) error {
	if len(update) == 0 {
		rows = firstOfEachKey(cols, key, rows)
	}
	stage := "stage_" + table
	if _, err := tx.Exec(ctx, Unprepared("CREATE TEMP TABLE IF NOT EXISTS "+stage+" (LIKE "+table+") ON COMMIT DELETE ROWS")); err != nil {
		return fmt.Errorf("upsert %d rows into %s: staging table: %w", len(rows), table, err)
	}
	if _, err := c.copyFrom(ctx, stage, cols, rows); err != nil {
		return fmt.Errorf("upsert %d rows into %s: copy into the staging table: %w", len(rows), table, err)
	}
	conflict := " ON CONFLICT (" + strings.Join(key, ", ") + ") DO NOTHING"
	if len(update) > 0 {
		conflict = " ON CONFLICT (" + strings.Join(key, ", ") + ") DO UPDATE SET " + strings.Join(update, ", ")
	}
	list := strings.Join(cols, ", ")
	if _, err := tx.Exec(ctx, Unprepared("INSERT INTO "+table+" ("+list+") SELECT "+list+" FROM "+stage+conflict)); err != nil {
		return fmt.Errorf("upsert %d rows into %s: %w", len(rows), table, err)
	}
	// Emptied now, not only at the commit: a second upsert into the same
	// table in this transaction must not insert these rows again.
	if _, err := tx.Exec(ctx, Unprepared("TRUNCATE "+stage)); err != nil {
		return fmt.Errorf("upsert %d rows into %s: empty the staging table: %w", len(rows), table, err)
	}
	return nil
}

// firstOfEachKey returns rows without those whose key columns equal an
// earlier row's.
func firstOfEachKey(cols, key []string, rows [][]any) [][]any {
	var idx []int
	for _, k := range key {
		idx = append(idx, slices.Index(cols, k))
	}
	seen := make(map[string]bool, len(rows))
	out := make([][]any, 0, len(rows))
	var b strings.Builder
	for _, r := range rows {
		b.Reset()
		for _, i := range idx {
			switch v := r[i].(type) {
			case time.Time: // the instant, as the column compares it
				fmt.Fprintf(&b, "t%d\x00", v.UnixNano())
			default:
				fmt.Fprintf(&b, "%T\x00%v\x00", v, v)
			}
		}
		if k := b.String(); !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// excludedAll returns "c = excluded.c" for every column not in key.
func excludedAll(cols, key []string) []string {
	var out []string
	for _, c := range cols {
		isKey := false
		for _, k := range key {
			isKey = isKey || k == c
		}
		if !isKey {
			out = append(out, c+" = excluded."+c)
		}
	}
	return out
}

var errNoRows = errors.New("no rows")

// isNoRows reports whether err means an empty result in either dialect.
func isNoRows(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows) || errors.Is(err, errNoRows)
}
