package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func event(typ, data string) eventstore.EventData {
	return eventstore.EventData{
		ID:   uuid.New(),
		Type: typ,
		Data: json.RawMessage(data),
		Metadata: eventstore.Metadata{
			OccurredAt:    time.Date(2026, 11, 29, 14, 0, 0, 123456789, time.FixedZone("x", 3600)),
			CorrelationID: "corr", CausationID: "cause", Actor: "alice",
		},
	}
}

func TestAppendReadsBackWhatWasWritten(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "nested", "dir", "events.db"))
	a, b := event("A", `{"z": 1,  "a":[1,2]}`), event("B", `"\u00e9x"`)
	b.SchemaVersion = 3
	res, err := s.Append(ctx, "queue-alice", eventstore.NoStream, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || res.Duplicate || res.Position.Commit != 0 || res.Position.Seq == 0 {
		t.Fatalf("append result %+v", res)
	}
	got, err := s.ReadStream(ctx, "queue-alice", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d events, want 2", len(got))
	}
	for i, want := range []eventstore.EventData{a, b} {
		g := got[i]
		wantAt := want.Metadata.OccurredAt.UTC().Truncate(time.Microsecond)
		if g.ID != want.ID || g.Type != want.Type || string(g.Data) != string(want.Data) ||
			!g.Metadata.OccurredAt.Equal(wantAt) || g.Metadata.OccurredAt.Location() != time.UTC ||
			g.Metadata.CorrelationID != "corr" || g.Metadata.CausationID != "cause" || g.Metadata.Actor != "alice" ||
			g.Stream != "queue-alice" || g.Version != int64(i+1) {
			t.Errorf("event %d = %+v, want %+v", i, g, want)
		}
	}
	if got[0].SchemaVersion != 1 || got[1].SchemaVersion != 3 {
		t.Errorf("schema versions %d, %d, want 1, 3", got[0].SchemaVersion, got[1].SchemaVersion)
	}
	if got[1].Position != res.Position || !got[0].Position.Less(got[1].Position) {
		t.Errorf("positions %v %v, append reported %v", got[0].Position, got[1].Position, res.Position)
	}
	if v, err := s.StreamVersion(ctx, "queue-alice"); err != nil || v != 2 {
		t.Errorf("StreamVersion = %d, %v; want 2", v, err)
	}
	if h, err := s.Head(ctx); err != nil || h != res.Position {
		t.Errorf("Head = %v, %v; want %v", h, err, res.Position)
	}
}

func TestWrongVersionAndIdempotentRetry(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	first := event("A", `{}`)
	res, err := s.Append(ctx, "s", eventstore.Exact(0), first)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx, "s", eventstore.NoStream, event("A", `{}`))
	var wv *eventstore.WrongVersionError
	if !errors.As(err, &wv) || wv.Actual != 1 || wv.Stream != "s" || !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("second NoStream append: %v, want WrongVersionError with actual 1", err)
	}
	for _, exp := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(0), eventstore.Any, eventstore.StreamExists} {
		again, err := s.Append(ctx, "s", exp, first)
		if err != nil || !again.Duplicate || again.Version != 1 || again.Position != res.Position {
			t.Errorf("retry with %v: %+v, %v; want duplicate of %+v", exp, again, err, res)
		}
	}
	// The same ID in another stream, or at another place, is invalid.
	if _, err := s.Append(ctx, "other", eventstore.Any, first); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("ID stored in another stream: %v, want ErrInvalid", err)
	}
	if _, err := s.Append(ctx, "s", eventstore.Exact(1), first); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("ID stored at another place: %v, want ErrInvalid", err)
	}
	if _, err := s.Append(ctx, "s", eventstore.Exact(5), first); !errors.As(err, &wv) || wv.Actual != 1 {
		t.Errorf("ID stored elsewhere and version off: %v, want WrongVersionError", err)
	}
	if evs, _ := s.ReadStream(ctx, "s", 0, 0); len(evs) != 1 {
		t.Errorf("stream has %d events after retries, want 1", len(evs))
	}
}

var badAppends = []struct {
	name     string
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData
}{
	{"empty stream", "", eventstore.Any, []eventstore.EventData{event("A", `{}`)}},
	{"long stream", strings.Repeat("x", eventstore.MaxStreamIDLength+1), eventstore.Any, []eventstore.EventData{event("A", `{}`)}},
	{"no type", "s", eventstore.Any, []eventstore.EventData{event("A", `{}`), event("", `{}`)}},
	{"not JSON", "s", eventstore.Any, []eventstore.EventData{event("A", `{}`), event("A", `{nope`)}},
	{"negative version", "s", eventstore.Exact(-1), []eventstore.EventData{event("A", `{}`)}},
	{"no events", "s", eventstore.Any, nil},
}

func TestBadInputWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	for _, tc := range badAppends {
		if _, err := s.Append(ctx, tc.stream, tc.expected, tc.events...); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	if h, err := s.Head(ctx); err != nil || !h.IsZero() {
		t.Errorf("Head after bad input = %v, %v; want the empty log", h, err)
	}
}

func TestCancelledAppendWritesNothing(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, "s", eventstore.Any, event("A", `{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v, want context.Canceled", err)
	}
	if v, err := s.StreamVersion(context.Background(), "s"); err != nil || v != 0 {
		t.Fatalf("version after cancelled append = %d, %v; want 0", v, err)
	}
}

func TestExactVersionRaceHasOneWinner(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	const writers, versions = 8, 20
	for v := int64(0); v < versions; v++ {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Append(ctx, "race", eventstore.Exact(v), event("A", `{}`))
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case !errors.Is(err, eventstore.ErrWrongVersion):
					t.Errorf("append at %d: %v", v, err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("version %d: %d winners, want 1", v+1, wins)
		}
	}
}

// A second Store on the same file stands for another process: its appends
// reach a subscriber of the first only through the fallback poll.
func TestSubscriberSeesAppendsOfThisAndAnotherStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "events.db")
	s, other := open(t, path), open(t, path)
	if _, err := s.Append(ctx, "queue-1", eventstore.Any, event("A", `1`)); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, eventstore.Start, eventstore.Filter{StreamPrefixes: []string{"queue-"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	next := func() {
		t.Helper()
		evs, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got = append(got, string(e.Data))
		}
	}
	next() // catch-up
	appended := make(chan error, 2)
	go func() {
		_, err := s.Append(ctx, "skip-1", eventstore.Any, event("A", `"skipped"`))
		appended <- err
		_, err = other.Append(ctx, "queue-2", eventstore.Any, event("A", `2`))
		appended <- err
	}()
	for len(got) < 2 {
		next()
	}
	for range 2 {
		if err := <-appended; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "queue-1", eventstore.Any, event("A", `3`)); err != nil {
		t.Fatal(err)
	}
	for len(got) < 3 {
		next()
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("subscriber got %v, want [1 2 3]", got)
	}
	head, _ := s.Head(ctx)
	if sub.Position() != head {
		t.Errorf("subscription position %v, head %v", sub.Position(), head)
	}
	sub.Close()
	if _, err := sub.Next(ctx); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestWriteDBCommitsWithAppendsInOneFile(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	tx, err := s.WriteDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE read_model (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO read_model VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.ReadDB().QueryRowContext(ctx, `SELECT n FROM read_model`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("read model row = %d, %v", n, err)
	}
	if _, err := s.ReadDB().ExecContext(ctx, `INSERT INTO read_model VALUES (2)`); err == nil {
		t.Error("ReadDB accepted a write")
	}
}

// Positions rely on events never being deleted (see 0001_events.sql).
func TestEventsAreAppendOnly(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	if _, err := s.Append(ctx, "s", eventstore.Any, event("A", `{}`)); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`DELETE FROM events`, `UPDATE events SET data = x'7b7d'`} {
		if _, err := s.WriteDB().ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only trigger to refuse", stmt, err)
		}
	}
	if evs, err := s.ReadStream(ctx, "s", 1, 0); err != nil || len(evs) != 1 {
		t.Fatalf("stream after refused writes: %d events, %v", len(evs), err)
	}
}

// Two Stores on one file stand for two processes: their writers contend
// for the file's write lock, which BEGIN IMMEDIATE and busy_timeout must
// turn into waiting, never into SQLITE_BUSY errors or interleaved versions.
// (With deferred transactions instead of BEGIN IMMEDIATE this test fails:
// a writer that read before another process wrote gets SQLITE_BUSY at once.)
func TestTwoStoresWriteOneFileWithoutBusyErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "events.db")
	stores := []*sqlite.Store{open(t, path), open(t, path)}
	const writers, appends = 4, 25
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		for _, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < appends; j++ {
					if _, err := s.Append(ctx, "shared", eventstore.Any, event("A", `{}`)); err != nil {
						t.Errorf("append to shared: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	evs, err := stores[0].ReadAll(ctx, eventstore.Start, eventstore.Filter{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	want := writers * len(stores) * appends
	if len(evs) != want {
		t.Fatalf("log holds %d events, want %d", len(evs), want)
	}
	for i, e := range evs {
		if e.Version != int64(i+1) {
			t.Fatalf("event %d of the log has version %d: versions and positions disagree", i, e.Version)
		}
	}
}
