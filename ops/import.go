package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// ErrStoreNotEmpty is returned by Import into a store that holds events.
var ErrStoreNotEmpty = errors.New("the target event store is not empty")

// maxLineSize bounds one JSON line: an event's data is at most
// eventstore.MaxEventDataSize, plus its envelope.
const maxLineSize = eventstore.MaxEventDataSize + 64<<10

// ImportResult reports an import.
type ImportResult struct {
	// Events and Streams written.
	Events, Streams int
	// Last is the target store's position of the last event written.
	Last eventstore.Position
}

// Import appends the JSON lines of r (as Export writes them) to store, which
// must be empty: `taskqueue import < events.jsonl`. It checks the whole input
// first (see the package doc) and writes nothing when any line is bad or the
// store holds events; the error names the line.
func Import(ctx context.Context, store eventstore.Store, r io.Reader) (ImportResult, error) {
	spool, err := os.CreateTemp("", "taskqueue-import-*.jsonl")
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: spool the input: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	n, err := checkLines(io.TeeReader(r, spool))
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: read the head of the target store: %w", err)
	}
	if !head.IsZero() {
		return ImportResult{}, fmt.Errorf("import: %w (its log reaches position %s): import only into a new, empty store", ErrStoreNotEmpty, head)
	}
	if n == 0 {
		return ImportResult{}, nil
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return ImportResult{}, fmt.Errorf("import: rewind the spooled input: %w", err)
	}
	a := appender{store: store}
	err = eachLine(spool, func(_ int, l EventLine) error { return a.add(ctx, l) })
	if err == nil {
		err = a.flush(ctx)
	}
	if err != nil {
		return a.result, fmt.Errorf("import: %d events written before: %w", a.result.Events, err)
	}
	return a.result, nil
}

// checkLines reads every line of r and reports the first problem: a
// malformed line, an invalid event, a stream that does not start at version
// 1 or skips a version, an event ID seen twice. It returns the number of
// events.
func checkLines(r io.Reader) (int, error) {
	versions := map[string]int64{}
	ids := map[uuid.UUID]int{}
	n := 0
	err := eachLine(r, func(no int, l EventLine) error {
		if err := l.check(); err != nil {
			return fmt.Errorf("line %d: %w", no, err)
		}
		if want := versions[l.Stream] + 1; l.Version != want {
			if want == 1 {
				return fmt.Errorf("%w: line %d: stream %q starts at version %d, not 1: the input does not hold the stream from its start (an export with --from cannot be imported)", ErrInvalid, no, l.Stream, l.Version)
			}
			return fmt.Errorf("%w: line %d: stream %q has version %d after %d", ErrInvalid, no, l.Stream, l.Version, want-1)
		}
		if first, ok := ids[l.ID]; ok {
			return fmt.Errorf("%w: line %d: event ID %s already on line %d", ErrInvalid, no, l.ID, first)
		}
		ids[l.ID] = no
		versions[l.Stream] = l.Version
		n++
		return nil
	})
	return n, err
}

// eachLine calls fn with every non-empty line of r decoded, numbered from 1.
func eachLine(r io.Reader, fn func(no int, l EventLine) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineSize)
	for no := 1; sc.Scan(); no++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var l EventLine
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("%w: line %d is not an event line: %v", ErrInvalid, no, err)
		}
		if err := fn(no, l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the input: %w", err)
	}
	return nil
}

// appender appends events in log order, grouping consecutive events of one
// stream into one append with the exact expected version.
type appender struct {
	store   eventstore.Store
	pending []EventLine
	result  ImportResult
}

func (a *appender) add(ctx context.Context, l EventLine) error {
	if len(a.pending) > 0 {
		last := a.pending[len(a.pending)-1]
		if last.Stream != l.Stream || last.Version+1 != l.Version || len(a.pending) == eventstore.MaxEventsPerAppend {
			if err := a.flush(ctx); err != nil {
				return err
			}
		}
	}
	a.pending = append(a.pending, l)
	return nil
}

func (a *appender) flush(ctx context.Context) error {
	if len(a.pending) == 0 {
		return nil
	}
	first := a.pending[0]
	data := make([]eventstore.EventData, len(a.pending))
	for i, l := range a.pending {
		data[i] = l.EventData()
	}
	res, err := a.store.Append(ctx, first.Stream, eventstore.Exact(first.Version-1), data...)
	if err != nil {
		return fmt.Errorf("append %d events to %s at version %d: %w", len(data), first.Stream, first.Version, err)
	}
	if first.Version == 1 {
		a.result.Streams++
	}
	a.result.Events += len(data)
	a.result.Last = res.Position
	a.pending = a.pending[:0]
	return nil
}
