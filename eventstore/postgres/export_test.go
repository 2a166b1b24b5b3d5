package postgres

import (
	"context"

	"github.com/taskqueue/taskqueue/eventstore"
)

// ListenerPID returns the backend PID of s's listener connection, 0 while
// it is down.
func ListenerPID(s *Store) uint32 { return s.listener.listenerPID() }

// QueuedAppends returns how many Append and AppendMany calls wait in s's
// group commit queue.
func QueuedAppends(s *Store) int {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	return len(s.commit.queue)
}

// PageQuery is ReadAll's page query (pageQuery), for the benchmark that
// measures its tombstone condition.
const PageQuery = pageQuery

// ByStreamQuery is ReadByStream's page query (byStreamQuery), for the test
// of its plan.
const ByStreamQuery = byStreamQuery

// StartLanesAt makes s start a lane beside the running ones once n appends
// queue (a full group, maxGroup, by default), so that tests can run small
// groups side by side.
func StartLanesAt(s *Store, n int) {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	s.commit.full = n
}

// TailReads returns how many shared reads of the head s's subscriptions
// made, and how many of their requests those answered.
func TailReads(s *Store) (reads, answers int64) {
	return s.tail.reads.Load(), s.tail.answers.Load()
}

// TailAnswer is one request's outcome in TailRound.
type TailAnswer struct {
	Answered bool
	Events   []eventstore.RecordedEvent
	Head     eventstore.Position
	Cut      bool
}

// TailRound runs one shared read for requests after afters (no filter)
// and returns what each got; a request it did not answer is dropped.
func TailRound(ctx context.Context, s *Store, afters ...eventstore.Position) ([]TailAnswer, error) {
	batch := make([]*tailRead, len(afters))
	for i, a := range afters {
		batch[i] = &tailRead{after: a, done: make(chan struct{})}
	}
	after := afters[0]
	for _, a := range afters {
		if a.Less(after) {
			after = a
		}
	}
	p, err := readPage(ctx, s.pool, after, eventstore.Filter{}, defaultPage)
	s.tail.answer(batch, p, err)
	s.tail.mu.Lock()
	s.tail.waiting = nil
	s.tail.mu.Unlock()
	out := make([]TailAnswer, len(batch))
	for i, r := range batch {
		select {
		case <-r.done:
			if r.err != nil {
				return nil, r.err
			}
			out[i] = TailAnswer{Answered: true, Events: r.p.events, Head: r.p.head, Cut: r.p.cut}
		default:
		}
	}
	return out, nil
}
