package testenv

import (
	"os"
	"runtime/pprof"
	"testing"
)

// CPUProfile starts a CPU profile of this process into the file at path
// (a benchmark's chosen stretch, not its setup) when path is not empty,
// and returns what stops it.
func CPUProfile(tb testing.TB, path string) (stop func()) {
	tb.Helper()
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	}
}
