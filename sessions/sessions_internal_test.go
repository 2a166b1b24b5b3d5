package sessions

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
)

// TestLocalSessionsDoNotOutliveTheirTTL signs in many players on the
// in-process store, none of whom comes back, and checks that the store
// forgets their sessions once they expire instead of keeping one per
// sign-in for the life of the process; a session still in use stays.
func TestLocalSessionsDoNotOutliveTheirTTL(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	s := New(nil)
	s.now = func() time.Time { return now }
	kept, err := s.Create(ctx, "keeper", auth.RolePlayer)
	if err != nil {
		t.Fatal(err)
	}
	const players = 5000
	for i := range players {
		if i%100 == 0 {
			now = now.Add(time.Hour) // two days pass over the sign-ins
			if _, err := s.Refresh(ctx, kept.ID); err != nil {
				t.Fatalf("refresh the session in use: %v", err)
			}
		}
		if _, err := s.Create(ctx, fmt.Sprintf("player-%d", i), auth.RolePlayer); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	held := len(s.local)
	s.mu.Unlock()
	// A session lives TTL (24 h) after its last use: the sign-ins of
	// the last day (100 an hour), the one in use, no more.
	if limit := int(TTL/time.Hour)*100 + 100 + 1; held > limit {
		t.Errorf("after %d sign-ins over %d hours the store holds %d sessions, more than the %d of its last day",
			players, players/100, held, limit)
	}
	if ok, err := s.Active(ctx, kept.ID); err != nil || !ok {
		t.Errorf("the session in use: active %v, %v; want active", ok, err)
	}
}
