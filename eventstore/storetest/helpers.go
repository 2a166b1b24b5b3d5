package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// occurredAt is a fixed domain time; tests never read the clock for data.
var occurredAt = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// event returns a new event of type typ with data {"n": n}.
func event(typ string, n int) eventstore.EventData {
	return eventstore.EventData{
		ID:            uuid.New(),
		Type:          typ,
		SchemaVersion: 1,
		Data:          []byte(fmt.Sprintf(`{"n":%d}`, n)),
		Metadata:      eventstore.Metadata{OccurredAt: occurredAt, CorrelationID: "corr", Actor: "tester"},
	}
}

// events returns n new events of type typ.
func events(typ string, n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = event(typ, i)
	}
	return out
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	res, err := s.Append(ctx, stream, expected, evs...)
	if err != nil {
		t.Fatalf("append %d events to %s (expected %s): %v", len(evs), stream, expected, err)
	}
	return res
}

func readStream(t testing.TB, s eventstore.Store, stream string, from int64, limit int) []eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	evs, err := s.ReadStream(ctx, stream, from, limit)
	if err != nil {
		t.Fatalf("read stream %s from %d limit %d: %v", stream, from, limit, err)
	}
	return evs
}

// readAll pages through the global log after pos with page size limit
// until a page comes back empty.
func readAll(t testing.TB, s eventstore.Store, after eventstore.Position, filter eventstore.Filter, limit int) []eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), longDeadline)
	defer cancel()
	var out []eventstore.RecordedEvent
	for {
		page, err := s.ReadAll(ctx, after, filter, limit)
		if err != nil {
			t.Fatalf("read all after %v: %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		// Over the limit only to finish the append the limit cut (one
		// stream, at most MaxEventsPerAppend-1 more).
		if limit > 0 && len(page) > limit {
			for _, e := range page[limit:] {
				if e.Stream != page[limit-1].Stream || len(page) >= limit+eventstore.MaxEventsPerAppend {
					t.Fatalf("read all after %v limit %d returned %d events: %s", after, limit, len(page), describe(page))
				}
			}
		}
		for _, e := range page {
			if !after.Less(e.Position) {
				t.Fatalf("read all after %v returned event at %v, not after it", after, e.Position)
			}
			after = e.Position
		}
		out = append(out, page...)
	}
}

func streamVersion(t testing.TB, s eventstore.Store, stream string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	v, err := s.StreamVersion(ctx, stream)
	if err != nil {
		t.Fatalf("stream version of %s: %v", stream, err)
	}
	return v
}

func head(t testing.TB, s eventstore.Store) eventstore.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	p, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	return p
}

// settle waits until the store's Head reaches pos. A backend may hold the
// global log back while some transaction is open (PostgreSQL readers stop
// below the oldest running transaction, and other tests share the server),
// so a test that appended and then reads the global log expecting all of it
// waits for the head first. It waits for a condition, with a generous
// deadline; it never sleeps for correctness.
func settle(t testing.TB, s eventstore.Store, pos eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(shortDeadline)
	for {
		h := head(t, s)
		if !h.Less(pos) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("head stayed at %v, before %v, for %v", h, pos, shortDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func subscribe(t testing.TB, s eventstore.Store, after eventstore.Position, filter eventstore.Filter) eventstore.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	sub, err := s.Subscribe(ctx, after, filter)
	if err != nil {
		t.Fatalf("subscribe after %v: %v", after, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// collectUntil reads sub until done reports true for what was delivered so
// far, and returns everything delivered. It fails the test at the deadline.
func collectUntil(t testing.TB, sub eventstore.Subscription, d time.Duration, done func([]eventstore.RecordedEvent) bool) []eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []eventstore.RecordedEvent
	for !done(got) {
		batch, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("subscription next after %d events: %v (delivered: %s)", len(got), err, describe(got))
		}
		if len(batch) == 0 {
			t.Fatalf("subscription next returned an empty batch and no error")
		}
		got = append(got, batch...)
	}
	return got
}

// collectN reads sub until at least n events were delivered.
func collectN(t testing.TB, sub eventstore.Subscription, n int) []eventstore.RecordedEvent {
	t.Helper()
	return collectUntil(t, sub, shortDeadline, func(got []eventstore.RecordedEvent) bool { return len(got) >= n })
}

// collectIDs reads sub until every id in want was delivered.
func collectIDs(t testing.TB, sub eventstore.Subscription, d time.Duration, want ...uuid.UUID) []eventstore.RecordedEvent {
	t.Helper()
	missing := make(map[uuid.UUID]bool, len(want))
	for _, id := range want {
		missing[id] = true
	}
	seen := 0
	return collectUntil(t, sub, d, func(got []eventstore.RecordedEvent) bool {
		for _, e := range got[seen:] {
			delete(missing, e.ID)
		}
		seen = len(got)
		return len(missing) == 0
	})
}

// drainFor reads whatever sub delivers within d. It is used only to give a
// subscriber the chance to run ahead; nothing asserts on how much it got.
func drainFor(t testing.TB, sub eventstore.Subscription, d time.Duration) []eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []eventstore.RecordedEvent
	for {
		batch, err := sub.Next(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return got
			}
			t.Fatalf("subscription next: %v", err)
		}
		got = append(got, batch...)
	}
}

func dataIDs(evs []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// describe prints events compactly for failure messages.
func describe(evs []eventstore.RecordedEvent) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 40 {
			fmt.Fprintf(&b, "... %d more", len(evs)-i)
			break
		}
		fmt.Fprintf(&b, "%s@%d %s pos %v", e.Stream, e.Version, e.ID.String()[:8], e.Position)
	}
	b.WriteByte(']')
	return b.String()
}

// sameSequence fails unless a and b hold the same events (ID, stream,
// version, position) in the same order.
func sameSequence(t testing.TB, what string, a, b []eventstore.RecordedEvent) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d events vs %d\n got:  %s\n want: %s", what, len(a), len(b), describe(a), describe(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Stream != y.Stream || x.Version != y.Version || x.Position != y.Position {
			t.Fatalf("%s: event %d differs: %s@%d %s pos %v vs %s@%d %s pos %v", what, i,
				x.Stream, x.Version, x.ID, x.Position, y.Stream, y.Version, y.ID, y.Position)
		}
	}
}

// checkLogOrder fails unless positions strictly increase, no ID repeats and
// every stream's versions ascend.
func checkLogOrder(t testing.TB, what string, evs []eventstore.RecordedEvent) {
	t.Helper()
	seen := make(map[uuid.UUID]bool, len(evs))
	last := make(map[string]int64)
	for i, e := range evs {
		if seen[e.ID] {
			t.Fatalf("%s: event %s delivered twice (second at index %d)", what, e.ID, i)
		}
		seen[e.ID] = true
		if i > 0 && !evs[i-1].Position.Less(e.Position) {
			t.Fatalf("%s: position %v at index %d does not follow %v", what, e.Position, i, evs[i-1].Position)
		}
		if e.Version <= last[e.Stream] {
			t.Fatalf("%s: stream %s version %d after version %d", what, e.Stream, e.Version, last[e.Stream])
		}
		last[e.Stream] = e.Version
	}
}

func wantInvalid(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("%s: error = %v, want one wrapping ErrInvalid", what, err)
	}
}

func wantWrongVersion(t testing.TB, err error, stream string, expected eventstore.ExpectedVersion, actual int64) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("append to %s expecting %s: error = %v, want ErrWrongVersion", stream, expected, err)
	}
	var wv *eventstore.WrongVersionError
	if !errors.As(err, &wv) {
		t.Fatalf("append to %s expecting %s: error %v is not a *WrongVersionError", stream, expected, err)
	}
	if wv.Stream != stream || wv.Expected != expected || wv.Actual != actual {
		t.Fatalf("WrongVersionError = {Stream %q, Expected %s, Actual %d}, want {%q, %s, %d}",
			wv.Stream, wv.Expected, wv.Actual, stream, expected, actual)
	}
}
