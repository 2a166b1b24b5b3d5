package app

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnusableDataDirIsReportedPlainly: a data directory on a read-only
// file system, or one that cannot be created, stops the start with a
// sentence that says so, not SQLite's "unable to open database file (14)".
func TestUnusableDataDirIsReportedPlainly(t *testing.T) {
	ro := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); this test needs root", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ro).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", ro, err, out)
		}
	})
	file := filepath.Join(t.TempDir(), "a-file")
	if out, err := exec.Command("touch", file).CombinedOutput(); err != nil {
		t.Fatalf("touch: %v %s", err, out)
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"read-only", Config{DataDir: ro}, "the data directory " + ro + " is read-only: its file system is mounted read-only"},
		{"read-only with a secret", Config{DataDir: ro, JWTSecret: strings.Repeat("s", 32)}, "the data directory " + ro + " is read-only"},
		{"uncreatable", Config{DataDir: filepath.Join(ro, "data")}, "cannot create the data directory " + filepath.Join(ro, "data") + ": read-only file system"},
		{"under a file", Config{DataDir: filepath.Join(file, "data")}, "cannot create the data directory " + filepath.Join(file, "data") + ": " + file + ": not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tc.cfg.Addr = "127.0.0.1:0"
			_, cleanup, err := NewWithLog(ctx, tc.cfg, &strings.Builder{})
			if err == nil {
				cleanup()
				t.Fatal("the app started")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "(14)") {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
