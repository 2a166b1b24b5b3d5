// Package storetest owns the contract suite of the eventstore.Store port:
// one set of tests that every backend (sqlite, postgres, kurrentdb) runs
// unchanged, and reusable benchmarks.
//
// A backend's test calls Run with a Harness:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			New: func(t *testing.T) eventstore.Store { ... a fresh, empty store ... },
//		})
//	}
//
// The suite asserts behaviour only through the port, on content, never on
// wall-clock speed. Deadlines (several seconds) exist only so a broken backend
// fails instead of hanging. Some subtests give a subscriber a short window to
// run ahead before a held transaction commits; a slow machine makes those
// checks weaker, never flaky.
//
// Contracts the suite adds to the port's documentation (backends must keep
// them):
//
//   - Close is idempotent: the suite closes every store it gets (sometimes
//     early), so a second Close must return nil or ErrClosed and not panic.
//   - A Next that returned ctx.Err() leaves the subscription usable: a later
//     Next with a live context resumes where it stopped.
//   - After Close of the store, Append, Subscribe and a blocked or later Next
//     return errors wrapping ErrClosed.
//   - Head eventually reaches the Position an Append returned. Tests that
//     append and then expect ReadAll to return everything first wait for
//     that (a backend may hold global readers back while some transaction
//     is open, as PostgreSQL does).
//
// Subtest names are stable: CI logs and issue notes refer to them.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// Harness tells the suite how to get stores of one backend.
type Harness struct {
	// New returns a fresh, empty store for one test. It registers whatever
	// cleanup the backend needs with t.Cleanup. Required.
	New func(t *testing.T) eventstore.Store

	// HoldAppend appends events to stream (expected version Any) inside a
	// transaction that it leaves open: when it returns, the events have
	// taken their place in the log (a PostgreSQL backend has drawn their
	// sequence numbers) but are not committed. The suite then commits later
	// appends and finally calls Commit or Rollback on the result.
	//
	// Optional: a backend where writes cannot commit out of order (SQLite,
	// one writer) leaves it nil, and the out-of-order subtests skip with
	// HoldAppendSkipReason.
	HoldAppend func(ctx context.Context, t *testing.T, s eventstore.Store, stream string, events ...eventstore.EventData) (HeldAppend, error)

	// HoldAppendSkipReason says why HoldAppend is nil; the out-of-order
	// subtests skip with it. A default is used when empty.
	HoldAppendSkipReason string

	// PagesMayCutAppends, when set, says why this backend's ReadAll pages
	// may end inside an append; the whole-appends subtests skip with it.
	PagesMayCutAppends string

	// AppendManyPerStream, when set, says why this backend's AppendMany
	// stores each append on its own, without a multi-stream transaction:
	// the subtests that check a call's atomicity as a whole then check each
	// append's, and the subtest that readers see a call whole skips.
	AppendManyPerStream string
}

// HeldAppend is an append whose transaction is still open.
type HeldAppend struct {
	// Commit commits the held transaction.
	Commit func(ctx context.Context) error
	// Rollback abandons it: none of its events may ever be delivered.
	Rollback func(ctx context.Context) error
}

// Run runs the whole contract suite against the backend h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("storetest: Harness.New is required")
	}
	s := suite{h: h}
	t.Run("Append", func(t *testing.T) {
		t.Run("ExpectedVersionAny", s.testExpectedAny)
		t.Run("ExpectedVersionNoStream", s.testExpectedNoStream)
		t.Run("ExpectedVersionStreamExists", s.testExpectedStreamExists)
		t.Run("ExpectedVersionExact", s.testExpectedExact)
		t.Run("OptimisticConcurrencyRace", s.testConcurrencyRace)
		t.Run("IdempotentRetry", s.testIdempotentRetry)
		t.Run("BadInput", s.testBadInput)
		t.Run("CancelledMidAppend", s.testCancelledMidAppend)
	})
	t.Run("AppendMany", func(t *testing.T) {
		t.Run("OutcomePerStream", s.testAppendManyOutcomes)
		t.Run("IdempotentRetry", s.testAppendManyIdempotentRetry)
		t.Run("AtomicPerStream", s.testAppendManyAtomicPerStream)
		t.Run("InvalidCallStoresNothing", s.testAppendManyInvalidCall)
		t.Run("CancelledMidCall", s.testAppendManyCancelled)
		t.Run("AfterClose", s.testAppendManyAfterClose)
		t.Run("ReadersSeeACallWhole", s.testAppendManySeenWhole)
	})
	t.Run("Read", func(t *testing.T) {
		t.Run("ReadBackByteEqual", s.testReadBack)
		t.Run("ReadStreamFromAndLimit", s.testReadStreamRange)
		t.Run("ReadStreamsAsReadStream", s.testReadStreams)
		t.Run("ReadAllPagingAndFilters", s.testReadAllPaging)
		t.Run("ReadAllPagesEndAtAppends", s.testPagesEndAtAppends)
		t.Run("ReadAllPagesEndAtAppendsOfOneCall", s.testPagesEndAtAppendsOfOneCall)
		t.Run("StreamVersion", s.testStreamVersion)
		t.Run("Head", s.testHead)
	})
	t.Run("Snapshots", s.testSnapshots)
	t.Run("DeleteStream", s.testDeleteStream)
	t.Run("Subscribe", func(t *testing.T) {
		t.Run("CatchUpThenLive", s.testCatchUpThenLive)
		t.Run("ConcurrentWritersLiveSubscriber", s.testConcurrentWriters)
		t.Run("ConcurrentMultiAppendsLiveSubscriber", s.testConcurrentMultiAppends)
		t.Run("OutOfOrderCommit", s.testOutOfOrderCommit)
		t.Run("OutOfOrderRollback", s.testOutOfOrderRollback)
		t.Run("ResumeFromCheckpoint", s.testResume)
		t.Run("Filters", s.testSubscribeFilters)
		t.Run("PositionPassesFilteredEvents", s.testPositionPastFiltered)
		t.Run("ContextCancellation", s.testSubscribeCancel)
		t.Run("Close", s.testClose)
	})
}

type suite struct {
	h Harness
}

// store returns a fresh store that is closed when the test ends.
func (s suite) store(t *testing.T) eventstore.Store {
	t.Helper()
	st := s.h.New(t)
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// ctx returns a context that ends when the test does, with a generous
// deadline so a broken backend fails instead of hanging.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Generous deadlines: they only turn a hang into a failure.
const (
	shortDeadline = 20 * time.Second
	longDeadline  = 90 * time.Second
)
