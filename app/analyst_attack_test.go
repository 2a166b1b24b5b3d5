package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/web/auth"
)

// Old lock keys an analyst could hold before the stream and migration
// locks became row and table locks: pg_advisory_xact_lock(0x7471,
// hashtext(stream)) per stream, pg_advisory_lock(0x7461736b71756575) while
// migrating, pg_advisory_xact_lock(0x74715f616e616c) for the role.
const (
	oldStreamLockClass = 0x7471
	oldMigrationLock   = 0x7461736b71756575
	oldAnalystLock     = 0x74715f616e616c
)

// The attack of issue 16, run as the analyst role: it holds every lock it
// can (the advisory locks the service used to wait for, and ACCESS SHARE
// on every table in an open transaction) and tries the ones it should not
// get (row locks, stronger table locks). Meanwhile alice's commands answer
// at once and a second server starts on the same database.
func TestAnalystCannotStallPlayersOrStarts(t *testing.T) {
	dbURL := testenv.Postgres(t)
	admin := openSQL(t, dbURL)
	holdAnalystLock(t, admin)
	const pw = "analyst-pw-attack-5d1e"
	ctx := context.Background()

	a, cleanup, err := NewWithLog(ctx, Config{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", DatabaseURL: dbURL, DatabaseMaxConns: 4,
		JWTSecret: strings.Repeat("test-secret-", 4), LogLevel: "warn", AnalystPassword: pw,
	}, &testenv.SyncBuffer{})
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	t.Cleanup(cleanup)
	token, _, err := a.Tokens.Mint("alice", auth.RolePlayer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	command := func() (time.Duration, int) {
		req := httptest.NewRequest(http.MethodPost, "/api/queue/alice/tasks", strings.NewReader(`{"type":"chop-wood","count":1}`))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		start := time.Now()
		a.Handler.ServeHTTP(rec, req)
		return time.Since(start), rec.Code
	}
	if _, code := command(); code != http.StatusCreated { // alice's stream exists before the attack
		t.Fatalf("first command: %d", code)
	}

	analyst := openSQL(t, asAnalyst(t, dbURL, pw))
	analyst.SetMaxIdleConns(8)
	hold, err := analyst.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	for _, q := range []string{
		fmt.Sprintf(`SELECT pg_advisory_lock(%d, hashtext('queue-alice'))`, oldStreamLockClass),
		fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, int64(oldMigrationLock)),
		fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, int64(oldAnalystLock)),
	} {
		if _, err := hold.ExecContext(ctx, q); err != nil {
			t.Fatalf("as the analyst, %s: %v", q, err)
		}
	}
	// ACCESS SHARE on every table of the schema, held in an open
	// transaction (within the role's idle_in_transaction_session_timeout).
	reader, err := analyst.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tables := tablesOf(t, admin)
	if _, err := reader.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if table == "audit_log" {
			continue // not the analyst's (TestAnalystRoleLimits)
		}
		if _, err := reader.ExecContext(ctx, fmt.Sprintf(`SELECT 1 FROM %q LIMIT 1`, table)); err != nil {
			t.Fatalf("as the analyst, read %s: %v", table, err)
		}
	}
	defer reader.ExecContext(ctx, `ROLLBACK`) //nolint:errcheck // the connection closes anyway

	// The locks the service waits for are refused to the role.
	for _, q := range []string{
		`SELECT slot FROM stream_locks WHERE slot = hashtext('queue-alice') & 65535 FOR UPDATE`,
		`SELECT slot FROM stream_locks WHERE slot = hashtext('queue-alice') & 65535 FOR KEY SHARE`,
		`SELECT stream_id FROM event_streams WHERE stream_id = 'queue-alice' FOR SHARE`,
		`LOCK TABLE stream_locks IN ROW SHARE MODE`,
		`LOCK TABLE event_streams IN SHARE MODE`,
		`LOCK TABLE event_log IN SHARE MODE`,
		`LOCK TABLE schema_migrations IN SHARE ROW EXCLUSIVE MODE`,
	} {
		if err := asAnalystInTx(ctx, analyst, "SET TRANSACTION READ WRITE; "+q); !isInsufficientPrivilege(err) {
			t.Errorf("as the analyst, %s: %v, want insufficient_privilege", q, err)
		}
	}

	// alice's commands do not wait for any of it.
	var worst time.Duration
	for i := range 5 {
		d, code := command()
		if code != http.StatusCreated {
			t.Fatalf("command %d under the attack: %d after %s", i, code, d)
		}
		worst = max(worst, d)
	}
	t.Logf("alice's slowest of 5 commands while the analyst held every lock it could: %s", worst)
	if worst > 2*time.Second {
		t.Errorf("alice's command took %s under the attack", worst)
	}

	// A second server starts on the same database (migrations, the
	// analyst role's statements) while the analyst holds on.
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	_, cleanup2, err := NewWithLog(startCtx, Config{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", DatabaseURL: dbURL, DatabaseMaxConns: 2,
		JWTSecret: strings.Repeat("test-secret-", 4), LogLevel: "warn", AnalystPassword: pw,
		Processor: new(false),
	}, &testenv.SyncBuffer{})
	if err != nil {
		t.Fatalf("a server start while the analyst holds its locks: %v", err)
	}
	cleanup2()
	t.Logf("a second server started in %s", time.Since(start))
}

// The role's limits: a bounded number of connections, timeouts on its
// statements and its open transactions, read-only sessions. The role can
// change its own defaults (PostgreSQL allows it), but it still writes
// nothing, and the next start sets them again.
func TestAnalystRoleLimits(t *testing.T) {
	dbURL := testenv.Postgres(t)
	admin := openSQL(t, dbURL)
	holdAnalystLock(t, admin)
	const pw = "analyst-pw-limits-8b2c"
	startPostgresApp(t, dbURL, pw)
	ctx := context.Background()

	var connLimit int
	if err := admin.QueryRow(`SELECT rolconnlimit FROM pg_roles WHERE rolname = $1`, migrations.AnalystRole).Scan(&connLimit); err != nil {
		t.Fatal(err)
	}
	if connLimit != 5 {
		t.Errorf("connection limit %d, want 5", connLimit)
	}
	analyst := openSQL(t, asAnalyst(t, dbURL, pw))
	var stmt, idle, ro string
	if err := analyst.QueryRow(`SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout'),
		current_setting('default_transaction_read_only')`).Scan(&stmt, &idle, &ro); err != nil {
		t.Fatal(err)
	}
	if stmt != "1min" || idle != "10s" || ro != "on" {
		t.Errorf("analyst session: statement_timeout %s, idle_in_transaction_session_timeout %s, read only %s", stmt, idle, ro)
	}
	// The audit trail (principals, addresses) is not the analyst's to read.
	if _, err := analyst.Exec(`SELECT count(*) FROM audit_log`); !isInsufficientPrivilege(err) {
		t.Errorf("as the analyst, read audit_log: %v, want insufficient_privilege", err)
	}
	// The role turns its read-only default off (it may) and still writes
	// nothing anywhere.
	rw := openSQL(t, asAnalyst(t, dbURL, pw))
	rw.SetMaxOpenConns(1) // the session's setting holds for every statement
	if _, err := rw.Exec(`SET default_transaction_read_only = off`); err != nil {
		t.Fatal(err)
	}
	_, altered := rw.Exec(`ALTER ROLE taskqueue_analyst SET default_transaction_read_only = off`)
	_, _ = rw.Exec(`ALTER ROLE taskqueue_analyst SET statement_timeout = 0`)
	for _, table := range tablesOf(t, admin) {
		for _, q := range []string{`DELETE FROM %q`, `TRUNCATE %q`, `INSERT INTO %q DEFAULT VALUES`} {
			q = fmt.Sprintf(q, table)
			if err := asAnalystInTx(ctx, rw, "SET TRANSACTION READ WRITE; "+q); !isInsufficientPrivilege(err) {
				t.Errorf("as the analyst, read-write: %s: %v, want insufficient_privilege", q, err)
			}
		}
	}
	if err := asAnalystInTx(ctx, rw, `SET TRANSACTION READ WRITE; CREATE TABLE analyst_scratch (x int)`); !isInsufficientPrivilege(err) {
		t.Errorf("as the analyst, create a table in the schema: %v", err)
	}
	// Connections beyond the limit are refused.
	analyst.Close()
	rw.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE usename = $1`, migrations.AnalystRole).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d analyst sessions still open", n)
		}
	}
	many := openSQL(t, asAnalyst(t, dbURL, pw))
	var conns []*sql.Conn
	var refused error
	for range 6 {
		c, err := many.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
		}
		if err != nil {
			refused = err
			break
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	if len(conns) != 5 || refused == nil || !strings.Contains(refused.Error(), "too many connections") {
		t.Errorf("%d analyst connections, then %v; want 5, then too many connections for the role", len(conns), refused)
	}

	if altered == nil {
		startPostgresApp(t, dbURL, pw)
		var config string
		if err := admin.QueryRow(`SELECT array_to_string(rolconfig, ',') FROM pg_roles WHERE rolname = $1`, migrations.AnalystRole).Scan(&config); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"default_transaction_read_only=on", "statement_timeout=60s"} {
			if !strings.Contains(config, want) {
				t.Errorf("after the next start the role's defaults are %s, want %s", config, want)
			}
		}
	} else {
		t.Logf("the role may not change its own defaults: %v", altered)
	}
}

// tablesOf lists the tables of db's current schema.
func tablesOf(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if len(out) < 10 {
		t.Fatalf("only %d tables in the schema: %v", len(out), out)
	}
	return out
}

// asAnalystInTx runs q in a transaction of db that it rolls back.
func asAnalystInTx(ctx context.Context, db *sql.DB, q string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // the test only wants q's error
	_, err = tx.ExecContext(ctx, q)
	return err
}

func isInsufficientPrivilege(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}
