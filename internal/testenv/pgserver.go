package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a PostgreSQL server of the test's own, on a free
// loopback port, in a temporary data directory (copied from a template
// made once per machine with initdb): for tests that must not share the
// server of TASKQUEUE_TEST_DATABASE_URL. A test that partitions its
// database (TCPProxy.Partition) while a transaction is open holds back the
// transaction horizon of the whole server — every subscription of every
// other test on it then waits until the partition heals — and a test that
// times a take-over must not wait behind another test's partition.
// Nothing is kept: fsync is off.
type PostgresServer struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

// pgBin is where Debian installs PostgreSQL 15's server programs.
var pgBin = "/usr/lib/postgresql/15/bin"

// StartPostgresServer starts a PostgreSQL server for t and stops it (and
// removes its data) when t ends. Without PostgreSQL's programs it skips t
// (fails it when services are required).
func StartPostgresServer(t testing.TB) *PostgresServer {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		if Required() {
			t.Fatalf("PostgreSQL's programs are not in %s and TASKQUEUE_TEST_REQUIRE_SERVICES=1", pgBin)
		}
		t.Skipf("PostgreSQL's programs are not in %s", pgBin)
	}
	template, cred, err := pgTemplate()
	if err != nil {
		t.Fatalf("testenv: PostgreSQL template: %v", err)
	}
	dir, err := os.MkdirTemp("", "taskqueue-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("cp", "-a", template, data).CombinedOutput(); err != nil {
		t.Fatalf("testenv: copy the PostgreSQL template: %v: %s", err, out)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &PostgresServer{t: t, dir: data, port: port}
	s.cmd = exec.Command(filepath.Join(pgBin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=60",
		"-c", "shared_buffers=16MB")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if testing.Verbose() {
		s.cmd.Stderr = os.Stderr
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testenv: start postgres: %v", err)
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL())
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			break
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the PostgreSQL server on port %d did not answer within 2 minutes: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// URL is the server's connection string (database postgres, user
// postgres, no password).
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// stop kills the server (nothing is kept) and waits for it.
func (s *PostgresServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

var (
	templateOnce sync.Once
	templateDir  string
	templateCred *syscall.Credential
	templateErr  error
)

// pgTemplate returns a data directory made by initdb, shared by every test
// process of the machine (it is made once, in the system's temporary
// directory, and renamed into place when complete), and the credential the
// server runs with: PostgreSQL refuses to run as root, so as root it runs
// as the postgres user.
func pgTemplate() (string, *syscall.Credential, error) {
	templateOnce.Do(func() {
		if os.Geteuid() == 0 {
			u, err := user.Lookup("postgres")
			if err != nil {
				templateErr = fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
				return
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			templateCred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		}
		out, err := exec.Command(filepath.Join(pgBin, "postgres"), "--version").Output()
		if err != nil {
			templateErr = err
			return
		}
		version := strings.Fields(string(out))
		templateDir = filepath.Join(os.TempDir(), fmt.Sprintf("taskqueue-pg-template-%s-%d", version[len(version)-1], os.Geteuid()))
		if _, err := os.Stat(filepath.Join(templateDir, "PG_VERSION")); err == nil {
			return
		}
		tmp, err := os.MkdirTemp("", "taskqueue-pg-initdb-")
		if err != nil {
			templateErr = err
			return
		}
		defer os.RemoveAll(tmp)
		if templateCred != nil {
			if err := os.Chown(tmp, int(templateCred.Uid), int(templateCred.Gid)); err != nil {
				templateErr = err
				return
			}
		}
		initdb := exec.Command(filepath.Join(pgBin, "initdb"), "-D", filepath.Join(tmp, "data"), "-A", "trust", "-U", "postgres",
			"-E", "UTF8", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: templateCred}
		if out, err := initdb.CombinedOutput(); err != nil {
			templateErr = fmt.Errorf("initdb: %w: %s", err, out)
			return
		}
		if err := os.Rename(filepath.Join(tmp, "data"), templateDir); err != nil && !os.IsExist(err) {
			if _, serr := os.Stat(filepath.Join(templateDir, "PG_VERSION")); serr != nil { // another process won the race
				templateErr = err
			}
		}
	})
	return templateDir, templateCred, templateErr
}
