package projections

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/internal/teststore"
)

var sqliteParamsCases = []struct{ in, want string }{
	{"SELECT 1", "SELECT 1"},
	{"SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)", "SELECT * FROM t WHERE a = ? AND b IN (?, ?)"},
	{"INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
		"INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b"},
	// Literals, quoted identifiers and comments are not parameters.
	{"SELECT '$1', \"$2\", `$3`, [$4] FROM t WHERE a = $1", "SELECT '$1', \"$2\", `$3`, [$4] FROM t WHERE a = ?"},
	{"SELECT 'it''s $9' WHERE a = $1", "SELECT 'it''s $9' WHERE a = ?"},
	{"SELECT a -- $5\nFROM t WHERE a = $1 /* $7 */ AND b = $2", "SELECT a -- $5\nFROM t WHERE a = ? /* $7 */ AND b = ?"},
	// Anything else keeps the statement as written.
	{"SELECT $1 WHERE a = $1", "SELECT $1 WHERE a = $1"},                 // repeated
	{"SELECT $2, $1", "SELECT $2, $1"},                                   // out of order
	{"SELECT $1, $3", "SELECT $1, $3"},                                   // a gap
	{"SELECT $01", "SELECT $01"},                                         // not how $N is written
	{"SELECT $1a, $2", "SELECT $1a, $2"},                                 // a named parameter
	{"SELECT $name", "SELECT $name"},                                     // a named parameter
	{"SELECT $1, ?", "SELECT $1, ?"},                                     // another kind
	{"SELECT $1, :a", "SELECT $1, :a"},                                   // another kind
	{"SELECT a$1 FROM t WHERE a = $1", "SELECT a$1 FROM t WHERE a = $1"}, // '$' in an identifier
	{"SELECT 'open WHERE a = $1", "SELECT 'open WHERE a = $1"},           // unterminated literal
}

func TestSQLiteParams(t *testing.T) {
	for _, c := range sqliteParamsCases {
		if got := sqliteParams(c.in); got != c.want {
			t.Errorf("sqliteParams(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSQLiteParamsBindTheSame runs statements through the SQLite DB, which
// rewrites them, and checks each argument lands where "$N" put it.
func TestSQLiteParamsBindTheSame(t *testing.T) {
	ctx := context.Background()
	s := teststore.SQLite(t, filepath.Join(t.TempDir(), "taskqueue.db"))
	db := NewSQLiteStoreDB(s)
	err := db.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE params_test (k TEXT PRIMARY KEY, a INTEGER, b TEXT)`); err != nil {
			return err
		}
		rows := [][]any{{"x", 1, "one"}, {"y", 2, "two"}, {"z", 3, "three"}}
		if err := upsert(ctx, tx, "params_test", []string{"k", "a", "b"}, []string{"k"}, []string{"a = excluded.a"}, rows); err != nil {
			return err
		}
		// Reordered "$N" are kept as written and still bind by number.
		_, err := tx.Exec(ctx, `UPDATE params_test SET b = $2 WHERE k = $1`, "y", "deux")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range []string{"x", "y", "z"} {
		var (
			a int
			b string
		)
		if err := db.QueryRow(ctx, `SELECT a, b FROM params_test WHERE k = $1`, k).Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s=%d,%s", k, a, b))
	}
	if want := "x=1,one y=2,deux z=3,three"; strings.Join(got, " ") != want {
		t.Errorf("rows = %v, want %s", got, want)
	}
}

// TestPostgresStatementsBuiltPerBatchStayUnprepared runs multi-row
// upserts and IN-list reads of 1 to 60 rows (120 statement texts) on one
// pooled PostgreSQL connection, and checks that the connection prepared
// none of them. pgx prepares and keeps every text it runs by default (512
// a connection, and the server keeps each one's plan), so the statements
// built for each batch size held a part of the heap that grew with every
// size a connection had not met yet (docs/SOAK.md).
func TestPostgresStatementsBuiltPerBatchStayUnprepared(t *testing.T) {
	url := teststore.PostgresURL(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // one connection: its statements are all of the test's
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := NewPostgresDB(pool)
	// pgx keeps a statement prepared on the server exactly while it
	// caches it, so the server's list of the session is pgx's cache.
	prepared := func() (n int) {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := db.InTx(ctx, func(tx Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE batch_test (k text PRIMARY KEY, n bigint NOT NULL, at timestamptz NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := prepared()
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	const sizes = 60
	for n := 1; n <= sizes; n++ {
		rows := make([][]any, n)
		players := make([]string, n)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("p%d", i), int64(n), at.Add(time.Duration(n) * time.Second)}
			players[i] = fmt.Sprintf("p%d", i)
		}
		err := db.InTx(ctx, func(tx Tx) error {
			if err := upsert(ctx, tx, "batch_test", []string{"k", "n", "at"}, []string{"k"}, excludedAll([]string{"k", "n", "at"}, []string{"k"}), rows); err != nil {
				return err
			}
			_, err := Queues{}.load(ctx, tx, "queue_status", players)
			return err
		})
		if err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
	}
	// Every row holds what the last batch that had it wrote.
	for i := 0; i < sizes; i++ {
		var n int64
		var got time.Time
		if err := db.QueryRow(ctx, `SELECT n, at FROM batch_test WHERE k = $1`, fmt.Sprintf("p%d", i)).Scan(&n, &got); err != nil {
			t.Fatal(err)
		}
		if n != sizes || !got.Equal(at.Add(sizes*time.Second)) {
			t.Fatalf("row p%d = (%d, %s), want (%d, %s)", i, n, got, sizes, at.Add(sizes*time.Second))
		}
	}
	after := prepared()
	// Only the fixed texts of this test may be prepared (the row check
	// and the count): none of the 2×60 built for a batch.
	if after-before > 2 {
		t.Errorf("after %d batch sizes the connection holds %d prepared statements (%d before): statements built per batch size are prepared and kept",
			sizes, after, before)
	}
}

// BenchmarkSQLiteUpsert writes one multi-row upsert of queue_status-wide
// rows (23 columns) in a transaction on a SQLite file, with the parameters
// written "$N" (as this package writes them) and "?" (what sqliteParams
// turns them into): "$N" costs SQLite a linear search per parameter when it
// prepares and binds the statement, quadratic in the rows of a batch.
//
//	go test ./projections -run '^$' -bench SQLiteUpsert -benchtime 20x
func BenchmarkSQLiteUpsert(b *testing.B) {
	ctx := context.Background()
	s := teststore.SQLite(b, filepath.Join(b.TempDir(), "taskqueue.db"))
	cols := make([]string, 23)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d", i)
	}
	if _, err := s.WriteDB().ExecContext(ctx, `CREATE TABLE upsert_bench (`+strings.Join(cols, ", ")+`, PRIMARY KEY (c0))`); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{50, 500} {
		var q strings.Builder
		q.WriteString("INSERT INTO upsert_bench (" + strings.Join(cols, ", ") + ") VALUES ")
		for r := 0; r < n; r++ {
			if r > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(" + placeholders(r*len(cols)+1, len(cols)) + ")")
		}
		q.WriteString(" ON CONFLICT (c0) DO UPDATE SET " + strings.Join(excludedAll(cols, cols[:1]), ", "))
		for _, style := range []struct {
			name string
			q    string
		}{{"dollar", q.String()}, {"question", sqliteParams(q.String())}} {
			b.Run(fmt.Sprintf("rows=%d/params=%s", n, style.name), func(b *testing.B) {
				args := make([]any, 0, n*len(cols))
				for r := 0; r < n; r++ {
					args = append(args, fmt.Sprintf("player-%d", r))
					for c := 1; c < len(cols); c++ {
						args = append(args, `{"some":"text"}`)
					}
				}
				for i := 0; i < b.N; i++ {
					if err := inWriteTx(ctx, s.WriteDB(), style.q, args); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/row")
			})
		}
	}
}

func inWriteTx(ctx context.Context, db *sql.DB, q string, args []any) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return err
	}
	return tx.Commit()
}

// TestStagedUpsertAsMultiRow upserts the same rows on PostgreSQL into two
// tables of the same shape, one with few enough rows per call for the
// multi-row INSERT path, one with enough for the staging table
// (stagedUpsert), and checks the tables end the same: DO UPDATE over
// existing rows, DO NOTHING with repeated keys (the first row wins), and
// two upserts into one table in one transaction.
func TestStagedUpsertAsMultiRow(t *testing.T) {
	ctx := context.Background()
	b := openPostgres(t, "")
	for _, tbl := range []string{"staged_a", "staged_b"} {
		if err := b.db.InTx(ctx, func(tx Tx) error {
			_, err := tx.Exec(ctx, `CREATE TABLE `+tbl+` (k text, at timestamptz, n bigint NOT NULL, s text NOT NULL, PRIMARY KEY (k, at))`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	cols, key := []string{"k", "at", "n", "s"}, []string{"k", "at"}
	day := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	batch := func(round int) [][]any {
		var rows [][]any
		for i := range 3 * stageRows {
			// Keys repeat within the batch (i and i+stageRows share one)
			// and across rounds.
			k := i % (2 * stageRows)
			rows = append(rows, []any{fmt.Sprintf("k%05d", k), day.Add(time.Duration(k%7) * time.Hour), int64(round*100000 + i), fmt.Sprintf("r%d-%d", round, i)})
		}
		return rows
	}
	write := func(tbl string, per int, rows [][]any, update []string) {
		t.Helper()
		if err := b.db.InTx(ctx, func(tx Tx) error {
			for start := 0; start < len(rows); start += per {
				if err := upsert(ctx, tx, tbl, cols, key, update, rows[start:min(start+per, len(rows))]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	nothing := []string(nil)
	add := []string{"n = TBL.n + excluded.n", "s = excluded.s"}
	updateOf := func(tbl string) []string {
		out := make([]string, len(add))
		for i, a := range add {
			out[i] = strings.ReplaceAll(a, "TBL", tbl)
		}
		return out
	}
	for round := 1; round <= 2; round++ {
		rows := batch(round)
		// DO NOTHING: repeated keys in one batch, the first one wins.
		write("staged_a", stageRows-1, rows, nothing)
		write("staged_b", len(rows), rows, nothing)
		// DO UPDATE: keys unique within a call, existing rows updated; two
		// calls into the same table in one transaction.
		uniq := rows[:2*stageRows]
		write("staged_a", stageRows-1, uniq, updateOf("staged_a"))
		write("staged_b", stageRows, uniq, updateOf("staged_b"))
	}
	a, bb := dump(t, b.db, "staged_a"), dump(t, b.db, "staged_b")
	if len(a) != 2*stageRows {
		t.Fatalf("%d rows, want %d", len(a), 2*stageRows)
	}
	sameRows(t, "staged upsert", a, bb)
}
