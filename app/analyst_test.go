package app

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/migrations"
)

// analystTestLock serializes the tests that set the analyst role's
// password: the role is cluster-wide, so two runs of these tests at once
// (other packages never set it) would change each other's password.
const analystTestLock = 0x74715f616e616c + 1 // "tq_anal" + 1

// startPostgresApp builds the app on dbURL with the analyst password pw
// and closes it again; it returns the app's log.
func startPostgresApp(t *testing.T, dbURL, pw string) string {
	t.Helper()
	var log testenv.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, cleanup, err := NewWithLog(ctx, Config{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", DatabaseURL: dbURL, DatabaseMaxConns: 4,
		JWTSecret: strings.Repeat("test-secret-", 4), LogLevel: "debug", AnalystPassword: pw,
	}, &log)
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	cleanup()
	return log.String()
}

// openSQL opens dbURL (closed when the test ends).
func openSQL(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// holdAnalystLock holds the session advisory lock analystTestLock until
// the test ends.
func holdAnalystLock(t *testing.T, db *sql.DB) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock($1)`, int64(analystTestLock)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(analystTestLock))
		conn.Close()
	})
}

// passwordIs reports whether the role's stored password (SCRAM-SHA-256,
// PostgreSQL's default, or md5) is pw.
func passwordIs(t *testing.T, db *sql.DB, pw string) bool {
	t.Helper()
	var stored sql.NullString
	if err := db.QueryRow(`SELECT rolpassword FROM pg_authid WHERE rolname = $1`, migrations.AnalystRole).Scan(&stored); err != nil {
		t.Fatalf("read the role's password: %v", err)
	}
	s := stored.String
	if strings.HasPrefix(s, "md5") {
		return false // not produced with password_encryption = scram-sha-256
	}
	// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	parts := strings.Split(rest, "$")
	if !ok || len(parts) != 2 {
		t.Fatalf("stored password is not a SCRAM verifier: %.16q...", s)
	}
	iterSalt, keys := strings.Split(parts[0], ":"), strings.Split(parts[1], ":")
	iter, err := strconv.Atoi(iterSalt[0])
	if err != nil || len(iterSalt) != 2 || len(keys) != 2 {
		t.Fatalf("malformed SCRAM verifier")
	}
	salt, err1 := base64.StdEncoding.DecodeString(iterSalt[1])
	storedKey, err2 := base64.StdEncoding.DecodeString(keys[0])
	if err1 != nil || err2 != nil {
		t.Fatalf("malformed SCRAM verifier")
	}
	salted, err := pbkdf2.Key(sha256.New, pw, salt, iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, salted)
	mac.Write([]byte("Client Key"))
	sum := sha256.Sum256(mac.Sum(nil))
	return hmac.Equal(sum[:], storedKey)
}

// asAnalyst returns dbURL with the analyst's user and password.
func asAnalyst(t *testing.T, dbURL, pw string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(migrations.AnalystRole, pw)
	return u.String()
}

// With TASKQUEUE_ANALYST_PASSWORD the server creates the read-only login
// role at start and grants it SELECT on the read models; a later start with
// another password changes it; the password never reaches the log.
func TestAnalystRoleFromConfig(t *testing.T) {
	dbURL := testenv.Postgres(t)
	admin := openSQL(t, dbURL)
	holdAnalystLock(t, admin)
	const pw1, pw2 = "analyst-pw-one-7f3a", "analyst-pw-two-91c2"

	if log := startPostgresApp(t, dbURL, pw1); strings.Contains(log, pw1) {
		t.Fatalf("the log holds the password:\n%s", log)
	}
	var login, readOnly bool
	if err := admin.QueryRow(`SELECT rolcanlogin, COALESCE('default_transaction_read_only=on' = ANY(rolconfig), false)
		FROM pg_roles WHERE rolname = $1`, migrations.AnalystRole).Scan(&login, &readOnly); err != nil {
		t.Fatalf("role %s after a start with a password: %v", migrations.AnalystRole, err)
	}
	if !login || !readOnly {
		t.Fatalf("role %s: login %v, read-only sessions %v", migrations.AnalystRole, login, readOnly)
	}
	if !passwordIs(t, admin, pw1) {
		t.Fatal("the role's password is not the configured one")
	}
	for _, table := range []string{"queue_status", "player_progress", "task_history", "event_log"} {
		for priv, want := range map[string]bool{"SELECT": true, "INSERT": false, "UPDATE": false, "DELETE": false, "TRUNCATE": false} {
			var got bool
			if err := admin.QueryRow(`SELECT has_table_privilege($1, $2, $3)`, migrations.AnalystRole, table, priv).Scan(&got); err != nil {
				t.Fatalf("privilege %s on %s: %v", priv, table, err)
			}
			if got != want {
				t.Errorf("%s has %s on %s: %v, want %v", migrations.AnalystRole, priv, table, got, want)
			}
		}
	}

	// Connected as the analyst: reads work, writes are refused.
	analyst := openSQL(t, asAnalyst(t, dbURL, pw1))
	var user string
	var n int
	if err := analyst.QueryRow(`SELECT current_user, (SELECT count(*) FROM queue_status)`).Scan(&user, &n); err != nil || user != migrations.AnalystRole {
		t.Fatalf("read as the analyst: user %q, %v", user, err)
	}
	for _, stmt := range []string{
		`INSERT INTO queue_status (player_id) VALUES ('x')`,
		`UPDATE queue_status SET stream_version = 0`,
		`DELETE FROM event_log`,
		`CREATE TABLE analyst_scratch (x int)`,
	} {
		if _, err := analyst.Exec(stmt); err == nil {
			t.Errorf("the analyst could run %s", stmt)
		}
	}
	// Also with the session's read-only default turned off: no privilege.
	tx, err := analyst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SET TRANSACTION READ WRITE`); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(`DELETE FROM task_history`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("delete as the analyst in a read-write transaction: %v, want insufficient_privilege", err)
	}
	_ = tx.Rollback()

	// A later start with another password changes it.
	if log := startPostgresApp(t, dbURL, pw2); strings.Contains(log, pw2) {
		t.Fatalf("the log holds the password:\n%s", log)
	}
	if !passwordIs(t, admin, pw2) {
		t.Fatal("the password did not change on a start with a new one")
	}
}

// Without a password the start creates no role and grants nothing in its
// schema (the role may exist from another schema's test: roles are
// cluster-wide).
func TestNoAnalystRoleWithoutPassword(t *testing.T) {
	dbURL := testenv.Postgres(t)
	admin := openSQL(t, dbURL)
	holdAnalystLock(t, admin)
	var existed bool
	if err := admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, migrations.AnalystRole).Scan(&existed); err != nil {
		t.Fatal(err)
	}
	startPostgresApp(t, dbURL, "")
	var exists bool
	if err := admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, migrations.AnalystRole).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists && !existed {
		t.Fatal("a start without a password created the role")
	}
	if exists {
		var usage, sel bool
		if err := admin.QueryRow(`SELECT has_schema_privilege($1, current_schema(), 'USAGE'),
			has_table_privilege($1, 'queue_status', 'SELECT')`, migrations.AnalystRole).Scan(&usage, &sel); err != nil {
			t.Fatal(err)
		}
		if usage || sel {
			t.Fatalf("without a password the role got privileges in this schema: usage %v, select %v", usage, sel)
		}
	}
}
