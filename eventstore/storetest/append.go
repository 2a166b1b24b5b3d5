package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

func (s suite) testExpectedAny(t *testing.T) {
	st := s.store(t)
	res := mustAppend(t, st, "any-1", eventstore.Any, events("A", 2)...)
	if res.Version != 2 || res.Duplicate || res.Position.IsZero() {
		t.Fatalf("first append with Any = %+v, want version 2, a position, not duplicate", res)
	}
	res2 := mustAppend(t, st, "any-1", eventstore.Any, event("A", 3))
	if res2.Version != 3 || !res.Position.Less(res2.Position) {
		t.Fatalf("second append with Any = %+v after %+v, want version 3 at a later position", res2, res)
	}
	if got := len(readStream(t, st, "any-1", 1, 0)); got != 3 {
		t.Fatalf("stream holds %d events, want 3", got)
	}
}

func (s suite) testExpectedNoStream(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	res := mustAppend(t, st, "nostream-1", eventstore.NoStream, events("A", 3)...)
	if res.Version != 3 {
		t.Fatalf("append with NoStream: version %d, want 3", res.Version)
	}
	_, err := st.Append(ctx, "nostream-1", eventstore.NoStream, event("A", 9))
	wantWrongVersion(t, err, "nostream-1", eventstore.NoStream, 3)
	// Exact(0) means the same as NoStream.
	_, err = st.Append(ctx, "nostream-1", eventstore.Exact(0), event("A", 9))
	wantWrongVersion(t, err, "nostream-1", eventstore.Exact(0), 3)
	if v := streamVersion(t, st, "nostream-1"); v != 3 {
		t.Fatalf("after rejected appends stream version is %d, want 3", v)
	}
	mustAppend(t, st, "nostream-2", eventstore.Exact(0), event("A", 1))
}

func (s suite) testExpectedStreamExists(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	_, err := st.Append(ctx, "exists-1", eventstore.StreamExists, event("A", 1))
	wantWrongVersion(t, err, "exists-1", eventstore.StreamExists, 0)
	if got := readStream(t, st, "exists-1", 1, 0); len(got) != 0 {
		t.Fatalf("rejected append wrote %d events", len(got))
	}
	mustAppend(t, st, "exists-1", eventstore.NoStream, event("A", 1))
	res := mustAppend(t, st, "exists-1", eventstore.StreamExists, event("A", 2))
	if res.Version != 2 {
		t.Fatalf("append with StreamExists: version %d, want 2", res.Version)
	}
}

func (s suite) testExpectedExact(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	mustAppend(t, st, "exact-1", eventstore.Exact(0), events("A", 2)...)
	res := mustAppend(t, st, "exact-1", eventstore.Exact(2), events("A", 3)...)
	if res.Version != 5 {
		t.Fatalf("append with Exact(2): version %d, want 5", res.Version)
	}
	for _, n := range []int64{0, 1, 4, 6, 100} {
		_, err := st.Append(ctx, "exact-1", eventstore.Exact(n), event("A", 0))
		wantWrongVersion(t, err, "exact-1", eventstore.Exact(n), 5)
	}
	_, err := st.Append(ctx, "exact-missing", eventstore.Exact(3), event("A", 0))
	wantWrongVersion(t, err, "exact-missing", eventstore.Exact(3), 0)
	if v := streamVersion(t, st, "exact-1"); v != 5 {
		t.Fatalf("after rejected appends stream version is %d, want 5", v)
	}
	if v := streamVersion(t, st, "exact-missing"); v != 0 {
		t.Fatalf("rejected append created stream at version %d", v)
	}
}

// testConcurrencyRace: in each round every goroutine appends to the same
// stream expecting the same version; exactly one may win.
func (s suite) testConcurrencyRace(t *testing.T) {
	st := s.store(t)
	const (
		racers = 8
		rounds = 10
		stream = "race-1"
	)
	ctx := testContext(t, longDeadline)
	winners := make([]uuid.UUID, 0, rounds)
	for round := int64(0); round < rounds; round++ {
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			mu      sync.Mutex
			won     []uuid.UUID
			wrongs  int
			failure error
		)
		for r := 0; r < racers; r++ {
			e := event("Raced", r)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := st.Append(ctx, stream, eventstore.Exact(round), e)
				mu.Lock()
				defer mu.Unlock()
				var wv *eventstore.WrongVersionError
				switch {
				case err == nil && res.Version == round+1 && !res.Duplicate:
					won = append(won, e.ID)
				case err == nil:
					failure = fmt.Errorf("winning append returned %+v, want version %d", res, round+1)
				case errors.As(err, &wv) && wv.Actual == round+1 && wv.Expected == eventstore.Exact(round):
					wrongs++
				default:
					failure = fmt.Errorf("losing append: %v, want a WrongVersionError with actual %d", err, round+1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if failure != nil {
			t.Fatalf("round %d: %v", round, failure)
		}
		if len(won) != 1 || wrongs != racers-1 {
			t.Fatalf("round %d: %d winners and %d wrong-version errors, want 1 and %d", round, len(won), wrongs, racers-1)
		}
		winners = append(winners, won[0])
	}
	stored := readStream(t, st, stream, 1, 0)
	if len(stored) != rounds {
		t.Fatalf("stream holds %d events, want %d", len(stored), rounds)
	}
	for i, e := range stored {
		if e.Version != int64(i+1) || e.ID != winners[i] {
			t.Fatalf("event %d: version %d id %s, want version %d id %s (the round's winner)", i, e.Version, e.ID, i+1, winners[i])
		}
	}
}

func (s suite) testIdempotentRetry(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)

	t.Run("Exact", func(t *testing.T) {
		mustAppend(t, st, "idem-exact", eventstore.NoStream, event("A", 0))
		batch := events("A", 2)
		first := mustAppend(t, st, "idem-exact", eventstore.Exact(1), batch...)
		retry := mustAppend(t, st, "idem-exact", eventstore.Exact(1), batch...)
		if !retry.Duplicate || retry.Version != first.Version || retry.Position != first.Position {
			t.Fatalf("retry = %+v, want the first result %+v with Duplicate", retry, first)
		}
		// Still a retry after later events landed in the stream.
		mustAppend(t, st, "idem-exact", eventstore.Exact(3), event("A", 9))
		late := mustAppend(t, st, "idem-exact", eventstore.Exact(1), batch...)
		if !late.Duplicate || late.Version != first.Version || late.Position != first.Position {
			t.Fatalf("late retry = %+v, want the first result %+v with Duplicate", late, first)
		}
		if n := len(readStream(t, st, "idem-exact", 1, 0)); n != 4 {
			t.Fatalf("stream holds %d events, want 4", n)
		}
	})

	t.Run("NoStream", func(t *testing.T) {
		batch := events("A", 3)
		first := mustAppend(t, st, "idem-nostream", eventstore.NoStream, batch...)
		retry := mustAppend(t, st, "idem-nostream", eventstore.NoStream, batch...)
		if !retry.Duplicate || retry.Version != 3 || retry.Position != first.Position {
			t.Fatalf("retry = %+v, want the first result %+v with Duplicate", retry, first)
		}
		if n := len(readStream(t, st, "idem-nostream", 1, 0)); n != 3 {
			t.Fatalf("stream holds %d events, want 3", n)
		}
	})

	t.Run("Any", func(t *testing.T) {
		mustAppend(t, st, "idem-any", eventstore.Any, events("A", 2)...)
		batch := events("B", 2)
		first := mustAppend(t, st, "idem-any", eventstore.Any, batch...)
		mustAppend(t, st, "idem-any", eventstore.Any, event("C", 0))
		retry := mustAppend(t, st, "idem-any", eventstore.Any, batch...)
		if !retry.Duplicate || retry.Version != first.Version || retry.Position != first.Position {
			t.Fatalf("retry = %+v, want the first result %+v with Duplicate", retry, first)
		}
		exists := mustAppend(t, st, "idem-any", eventstore.StreamExists, batch...)
		if !exists.Duplicate || exists.Version != first.Version {
			t.Fatalf("retry with StreamExists = %+v, want the first result %+v with Duplicate", exists, first)
		}
		if n := len(readStream(t, st, "idem-any", 1, 0)); n != 5 {
			t.Fatalf("stream holds %d events, want 5", n)
		}
	})

	t.Run("PartialOverlap", func(t *testing.T) {
		batch := events("A", 2)
		mustAppend(t, st, "idem-partial", eventstore.NoStream, batch...)
		overlap := []eventstore.EventData{batch[0], event("A", 7)}
		_, err := st.Append(ctx, "idem-partial", eventstore.NoStream, overlap...)
		wantWrongVersion(t, err, "idem-partial", eventstore.NoStream, 2)
		_, err = st.Append(ctx, "idem-partial", eventstore.Exact(0), overlap...)
		wantWrongVersion(t, err, "idem-partial", eventstore.Exact(0), 2)
		// The expected version matches but one ID is already stored earlier.
		_, err = st.Append(ctx, "idem-partial", eventstore.Exact(2), batch[1], event("A", 8))
		wantInvalid(t, "append an already stored ID after it", err)
		_, err = st.Append(ctx, "idem-partial", eventstore.Any, overlap...)
		wantInvalid(t, "append with Any a batch that partly overlaps", err)
		got := readStream(t, st, "idem-partial", 1, 0)
		if len(got) != 2 || got[0].ID != batch[0].ID || got[1].ID != batch[1].ID {
			t.Fatalf("stream holds %s, want only the first batch", describe(got))
		}
	})

	t.Run("IDInAnotherStream", func(t *testing.T) {
		e := event("A", 0)
		mustAppend(t, st, "idem-home", eventstore.NoStream, e)
		for _, exp := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any, eventstore.Exact(0)} {
			_, err := st.Append(ctx, "idem-elsewhere", exp, e)
			wantInvalid(t, "append to another stream an ID stored in idem-home with "+exp.String(), err)
		}
		if v := streamVersion(t, st, "idem-elsewhere"); v != 0 {
			t.Fatalf("rejected append created idem-elsewhere at version %d", v)
		}
	})
}

func (s suite) testBadInput(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	settle(t, st, mustAppend(t, st, "bad-existing", eventstore.NoStream, event("A", 0)).Position)
	before := head(t, st)

	good := event("A", 1)
	dup := event("A", 2)
	bad := func(mutate func(*eventstore.EventData)) eventstore.EventData {
		e := event("A", 3)
		mutate(&e)
		return e
	}
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []eventstore.EventData
	}{
		{"EmptyStreamID", "", eventstore.Any, []eventstore.EventData{good}},
		{"OverlongStreamID", strings.Repeat("s", eventstore.MaxStreamIDLength+1), eventstore.Any, []eventstore.EventData{good}},
		{"NewlineInStreamID", "bad\nstream", eventstore.Any, []eventstore.EventData{good}},
		{"NULInStreamID", "bad\x00stream", eventstore.Any, []eventstore.EventData{good}},
		{"DELInStreamID", "bad\x7fstream", eventstore.Any, []eventstore.EventData{good}},
		{"InvalidUTF8StreamID", "bad\xffstream", eventstore.Any, []eventstore.EventData{good}},
		{"NoType", "bad-1", eventstore.Any, []eventstore.EventData{good, bad(func(e *eventstore.EventData) { e.Type = "" })}},
		{"NonJSONData", "bad-1", eventstore.Any, []eventstore.EventData{good, bad(func(e *eventstore.EventData) { e.Data = []byte(`{"n":`) })}},
		{"EmptyData", "bad-1", eventstore.Any, []eventstore.EventData{good, bad(func(e *eventstore.EventData) { e.Data = nil })}},
		{"NegativeExpectedVersion", "bad-existing", eventstore.Exact(-1), []eventstore.EventData{good}},
		{"ZeroEvents", "bad-1", eventstore.Any, nil},
		{"DuplicateIDsInBatch", "bad-1", eventstore.Any, []eventstore.EventData{good, dup, bad(func(e *eventstore.EventData) { e.ID = dup.ID })}},
		{"NilUUID", "bad-1", eventstore.Any, []eventstore.EventData{good, bad(func(e *eventstore.EventData) { e.ID = uuid.Nil })}},
		{"NegativeSchemaVersion", "bad-1", eventstore.Any, []eventstore.EventData{bad(func(e *eventstore.EventData) { e.SchemaVersion = -1 })}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.Append(ctx, tc.stream, tc.expected, tc.events...)
			if err == nil {
				t.Fatalf("append succeeded with %+v, want an error wrapping ErrInvalid", res)
			}
			wantInvalid(t, "append "+tc.name, err)
			if errors.Is(err, eventstore.ErrWrongVersion) {
				t.Fatalf("bad input reported as wrong version: %v", err)
			}
		})
	}
	if got := head(t, st); got != before {
		t.Fatalf("head moved from %v to %v: bad input wrote something", before, got)
	}
	if all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0); len(all) != 1 {
		t.Fatalf("log holds %s after bad input, want only the first event", describe(all))
	}
	// The limits themselves are accepted.
	longest := strings.Repeat("ß", eventstore.MaxStreamIDLength/2)
	mustAppend(t, st, longest, eventstore.NoStream, good)
	if got := readStream(t, st, longest, 1, 0); len(got) != 1 || got[0].Stream != longest {
		t.Fatalf("stream with a %d-byte ID reads back %s", len(longest), describe(got))
	}
}

// testCancelledMidAppend cancels appends at many moments and checks each
// one happened fully or not at all.
func (s suite) testCancelledMidAppend(t *testing.T) {
	st := s.store(t)
	attempts := 60
	if testing.Short() {
		attempts = 20
	}
	const batchSize = 5
	// Spread the cancellations from "before the call" to "well after it
	// would have finished", measured on this machine with one append.
	start := time.Now()
	mustAppend(t, st, "cancel-probe", eventstore.NoStream, events("A", batchSize)...)
	typical := time.Since(start)
	var completed, cancelled int
	for i := 0; i < attempts; i++ {
		stream := fmt.Sprintf("cancel-%d", i)
		batch := events("A", batchSize)
		ctx, cancel := context.WithCancel(context.Background())
		delay := typical * 3 / 2 * time.Duration(i) / time.Duration(attempts)
		timer := time.AfterFunc(delay, cancel)
		if i == 0 {
			cancel()
		}
		res, err := st.Append(ctx, stream, eventstore.NoStream, batch...)
		timer.Stop()
		cancel()
		got := readStream(t, st, stream, 1, 0)
		switch {
		case err == nil:
			completed++
			if res.Version != batchSize || len(got) != batchSize {
				t.Fatalf("attempt %d: append reported %+v, stream holds %d events, want %d", i, res, len(got), batchSize)
			}
		case len(got) == 0:
			cancelled++
			if errors.Is(err, eventstore.ErrInvalid) {
				t.Fatalf("attempt %d: cancelled append returned ErrInvalid: %v", i, err)
			}
		case len(got) != batchSize:
			t.Fatalf("attempt %d: cancelled append (%v) left %d of %d events", i, err, len(got), batchSize)
		}
		for j, e := range got {
			if e.ID != batch[j].ID || e.Version != int64(j+1) {
				t.Fatalf("attempt %d: event %d is %s@%d, want %s@%d", i, j, e.ID, e.Version, batch[j].ID, j+1)
			}
		}
	}
	t.Logf("%d appends completed, %d cancelled, out of %d (one append took %v)", completed, cancelled, attempts, typical)
	// The store still works after all those cancellations.
	res := mustAppend(t, st, "cancel-after", eventstore.NoStream, events("A", 2)...)
	if res.Version != 2 {
		t.Fatalf("append after cancellations: %+v", res)
	}
}
