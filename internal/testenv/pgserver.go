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
	host string
	port int
	cred *syscall.Credential
	cmd  *exec.Cmd
}

// Port is the server's port.
func (s *PostgresServer) Port() int { return s.port }

// DataDir is the server's data directory.
func (s *PostgresServer) DataDir() string { return s.dir }

// Stop stops the server now (immediate shutdown); the data directory stays
// until the test ends.
func (s *PostgresServer) Stop() { s.stop() }

// Run runs one of PostgreSQL's programs (pg_basebackup, pg_ctl…) as the
// user the server runs as, failing t with its output if it fails.
func (s *PostgresServer) Run(program string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(pgBin, program), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("testenv: %s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ServerDir returns a new empty directory the server's user may write (an
// archive, a base backup), removed when the test ends.
func (s *PostgresServer) ServerDir() string {
	s.t.Helper()
	return PostgresUserDir(s.t)
}

// PostgresUserDir is ServerDir without a server: a new empty directory the
// user PostgreSQL servers of tests run as may write (for a test that must
// name it in a server's settings before starting it).
func PostgresUserDir(t testing.TB) string {
	t.Helper()
	needPostgresPrograms(t)
	_, cred, err := pgTemplate()
	if err != nil {
		t.Fatalf("testenv: PostgreSQL template: %v", err)
	}
	dir, err := os.MkdirTemp("", "taskqueue-pg-dir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// needPostgresPrograms skips t without PostgreSQL's server programs (fails
// it when services are required).
func needPostgresPrograms(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		if Required() {
			t.Fatalf("PostgreSQL's programs are not in %s and TASKQUEUE_TEST_REQUIRE_SERVICES=1", pgBin)
		}
		t.Skipf("PostgreSQL's programs are not in %s", pgBin)
	}
}

// pgBin is where Debian installs PostgreSQL 15's server programs.
var pgBin = "/usr/lib/postgresql/15/bin"

// StartPostgresServer starts a PostgreSQL server for t and stops it (and
// removes its data) when t ends. Without PostgreSQL's programs it skips t
// (fails it when services are required).
func StartPostgresServer(t testing.TB) *PostgresServer {
	t.Helper()
	return StartPostgresServerWith(t, PostgresOptions{})
}

// PostgresOptions configures StartPostgresServerWith.
type PostgresOptions struct {
	// Settings are extra server settings (postgres -c name=value).
	Settings map[string]string
	// DataDir, when set, is a data directory to run (a restored base
	// backup; it is moved into the server's own temporary directory)
	// instead of a copy of the template.
	DataDir string
	// Host, when set, is the host of a Network the server runs on (in its
	// namespace, on its address, port 5432) instead of the loopback.
	Host *Host
}

// StartPostgresServerWith is StartPostgresServer with options.
func StartPostgresServerWith(t testing.TB, opt PostgresOptions) *PostgresServer {
	t.Helper()
	needPostgresPrograms(t)
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
	if opt.DataDir != "" {
		if err := os.Rename(opt.DataDir, data); err != nil {
			t.Fatalf("testenv: take the data directory %s: %v", opt.DataDir, err)
		}
	} else if out, err := exec.Command("cp", "-a", template, data).CombinedOutput(); err != nil {
		t.Fatalf("testenv: copy the PostgreSQL template: %v: %s", err, out)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
		if opt.DataDir != "" { // the template's copy keeps the template's owner
			if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", cred.Uid, cred.Gid), data).CombinedOutput(); err != nil {
				t.Fatalf("testenv: chown %s: %v: %s", data, err, out)
			}
		}
	}
	host, port := "127.0.0.1", 5432 // a host of a Network has its ports to itself
	if opt.Host != nil {
		host = opt.Host.IP
	} else {
		l, err := listenBelowEphemeral() // restarted on its port: see listenBelowEphemeral
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	s := &PostgresServer{t: t, dir: data, host: host, port: port, cred: cred}
	args := []string{"-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=" + host, "-c", "unix_socket_directories=", "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=60",
		"-c", "shared_buffers=16MB"}
	if opt.Host != nil { // clients on every host of the network, without a password
		hba := filepath.Join(dir, "pg_hba.conf")
		if err := os.WriteFile(hba, []byte("host all all "+opt.Host.IP+"/24 trust\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-c", "hba_file="+hba)
	}
	for name, value := range opt.Settings {
		args = append(args, "-c", name+"="+value)
	}
	if opt.Host == nil {
		s.cmd = exec.Command(filepath.Join(pgBin, "postgres"), args...)
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	} else { // ip netns exec needs root: the user is dropped after it (setpriv execs postgres)
		prog := []string{filepath.Join(pgBin, "postgres")}
		if cred != nil {
			prog = []string{"setpriv", "--reuid", strconv.Itoa(int(cred.Uid)), "--regid", strconv.Itoa(int(cred.Gid)),
				"--clear-groups", prog[0]}
		}
		s.cmd = opt.Host.Command(prog[0], append(prog[1:], args...)...)
	}
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
			t.Fatalf("testenv: the PostgreSQL server on %s:%d did not answer within 2 minutes: %v", host, port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// URL is the server's connection string (database postgres, user
// postgres, no password).
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", net.JoinHostPort(s.host, strconv.Itoa(s.port)))
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
