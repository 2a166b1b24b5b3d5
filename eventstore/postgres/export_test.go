package postgres

// ListenerPID returns the backend PID of s's listener connection, 0 while
// it is down.
func ListenerPID(s *Store) uint32 { return s.listener.listenerPID() }
