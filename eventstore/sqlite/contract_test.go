package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/storetest"
)

// TestContract runs the port's contract suite on a fresh file per test.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) eventstore.Store { return open(t, filepath.Join(t.TempDir(), "events.db")) },
		HoldAppendSkipReason: "SQLite admits one writer per file: a transaction holding the write lock " +
			"blocks every later append, so commits cannot happen out of order",
	})
}
