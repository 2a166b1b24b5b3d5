package eventstore

// As returns s as a T, looking through decorators (a store with an
// Unwrap() Store method: tracing, metrics, realtime's local appends) down
// to the first store that is a T; ok is false when none is. It is how a
// caller finds a capability of one backend (PostgreSQL's CommittedHead,
// its stream-order reads) on the store it was given.
func As[T any](s Store) (t T, ok bool) {
	for s != nil {
		if t, ok = s.(T); ok {
			return t, true
		}
		u, isDecorator := s.(interface{ Unwrap() Store })
		if !isDecorator {
			break
		}
		s = u.Unwrap()
	}
	return t, false
}
