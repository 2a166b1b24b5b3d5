package sessions

import "time"

// SetClock makes s read the time from now (the suite's Age moves it).
func SetClock(s *Sessions, now func() time.Time) { s.now = now }
