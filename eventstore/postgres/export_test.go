package postgres

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
