package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

func tailEvents(typ string, n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		data, _ := json.Marshal(map[string]int{"i": i})
		out[i] = eventstore.EventData{ID: uuid.New(), Type: typ, SchemaVersion: 1, Data: data,
			Metadata: eventstore.Metadata{OccurredAt: time.Now().UTC().Truncate(time.Microsecond)}}
	}
	return out
}

// openAtHead returns a store on a fresh schema, a context that ends with
// the test (within a minute), and the log's head.
func openAtHead(t *testing.T) (*postgres.Store, context.Context, eventstore.Position) {
	t.Helper()
	s := openStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	start, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, ctx, start
}

// readBack reads the log after start once its n events are readable:
// readers stop below the oldest open writing transaction of the server,
// which another test's may hold for a moment.
func readBack(t *testing.T, ctx context.Context, s *postgres.Store, start eventstore.Position, n int) []eventstore.RecordedEvent {
	t.Helper()
	var all []eventstore.RecordedEvent
	testenv.WaitFor(t, fmt.Sprintf("the %d events to be readable", n), func() bool {
		var err error
		if all, err = s.ReadAll(ctx, start, eventstore.Filter{}, 10_000); err != nil {
			t.Fatal(err)
		}
		return len(all) >= n
	})
	if len(all) != n {
		t.Fatalf("read back %d events, want %d", len(all), n)
	}
	return all
}

// Subscriptions that follow the head of the log share their reads of it
// (several answered by one read), and each still gets exactly the events
// its filter selects, in log order, once, while appends commit side by
// side.
func TestSubscriptionsAtTheHeadShareTheirReads(t *testing.T) {
	s, base, start := openAtHead(t)
	ctx, cancel := context.WithCancel(base) // ends the subscriptions
	defer cancel()
	filters := []eventstore.Filter{
		{}, {},
		{StreamPrefixes: []string{"a-"}},
		{EventTypes: []string{"X"}},
		{Streams: []string{"b-1"}},
		{StreamPrefixes: []string{"b-"}, EventTypes: []string{"Y"}},
	}
	var (
		mu  sync.Mutex
		got = make([][]eventstore.RecordedEvent, len(filters))
		wg  sync.WaitGroup
	)
	for i, f := range filters {
		sub, err := s.Subscribe(ctx, start, f)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			for ctx.Err() == nil {
				evs, err := sub.Next(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				got[i] = append(got[i], evs...)
				mu.Unlock()
			}
		}()
	}
	// The subscriptions find the log empty first, and then follow its head.
	time.Sleep(100 * time.Millisecond)

	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 60 {
				stream := fmt.Sprint([]string{"a-", "b-"}[i%2], w)
				typ := []string{"X", "Y", "Z"}[(i/2)%3]
				if _, err := s.Append(ctx, stream, eventstore.Any, tailEvents(typ, 1+i%3)...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	writers.Wait()
	all := readBack(t, ctx, s, start, 4*60*2)
	want := make([][]eventstore.RecordedEvent, len(filters))
	for i, f := range filters {
		for _, e := range all {
			if f.Match(e.Stream, e.Type) {
				want[i] = append(want[i], e)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := true
		for i := range filters {
			if len(got[i]) < len(want[i]) {
				done = false
			}
		}
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything more would be a duplicate
	cancel()
	wg.Wait()
	for i, f := range filters {
		if len(got[i]) != len(want[i]) {
			t.Errorf("subscription %d (%+v) got %d events, want %d", i, f, len(got[i]), len(want[i]))
			continue
		}
		for j := range want[i] {
			g, w := got[i][j], want[i][j]
			if g.ID != w.ID || g.Position != w.Position || g.Stream != w.Stream || g.Version != w.Version || string(g.Data) != string(w.Data) {
				t.Errorf("subscription %d (%+v), event %d: got %s %s@%d at %v, want %s %s@%d at %v",
					i, f, j, g.ID, g.Stream, g.Version, g.Position, w.ID, w.Stream, w.Version, w.Position)
				break
			}
		}
	}
	reads, answers := postgres.TailReads(s)
	t.Logf("%d shared reads answered %d reads of %d subscriptions", reads, answers, len(filters))
	if answers <= reads {
		t.Errorf("%d shared reads answered %d requests: none was shared", reads, answers)
	}
}

// A shared read that its limit cuts answers the requests before its end
// with the events up to it, marked cut, and leaves a request at or past its
// end for the next read, which starts from there.
func TestSharedReadCutByItsLimit(t *testing.T) {
	s, ctx, start := openAtHead(t)
	for i := range 7 {
		if _, err := s.Append(ctx, fmt.Sprint("s-", i), eventstore.NoStream, tailEvents("X", 100)...); err != nil {
			t.Fatal(err)
		}
	}
	all := readBack(t, ctx, s, start, 700)
	got, err := postgres.TailRound(ctx, s, start, all[549].Position, all[499].Position)
	if err != nil {
		t.Fatal(err)
	}
	first := got[0]
	if !first.Answered || !first.Cut || len(first.Events) != 500 || first.Head != all[499].Position {
		t.Fatalf("request at the start: answered %v, cut %v, %d events, head %v; want 500 events, cut at %v",
			first.Answered, first.Cut, len(first.Events), first.Head, all[499].Position)
	}
	for j, e := range first.Events {
		if e.ID != all[j].ID {
			t.Fatalf("event %d is %s, want %s", j, e.ID, all[j].ID)
		}
	}
	if got[1].Answered || got[2].Answered {
		t.Fatalf("requests at or past the read's end were answered: %+v, %+v", got[1], got[2])
	}
	got, err = postgres.TailRound(ctx, s, all[549].Position, all[499].Position)
	if err != nil {
		t.Fatal(err)
	}
	for i, from := range []int{550, 500} {
		a := got[i]
		if !a.Answered || a.Cut || len(a.Events) != 700-from || a.Head != all[699].Position || a.Events[0].ID != all[from].ID {
			t.Fatalf("request after event %d: answered %v, cut %v, %d events, head %v; want the %d after it, head %v",
				from, a.Answered, a.Cut, len(a.Events), a.Head, 700-from, all[699].Position)
		}
	}
}
