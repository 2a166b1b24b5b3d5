package command

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// CompleteRepetitions completes the due repetitions of many queues at once
// (the processor's batch). Each completion is judged exactly as
// CompleteRepetition would judge it alone (idempotency key, expected
// version, the aggregate's rules) and has an outcome of its own; what the
// batch saves is round trips: the queues not cached are read in one
// ReadStreams call, and the completions' events are appended in one
// AppendMany call (one transaction on the SQL backends).
type CompleteRepetitions struct {
	Completions []CompleteRepetition
}

// CompletionResult is the outcome of one completion of a batch: its
// Result, or Err when it failed.
type CompletionResult struct {
	Result
	Err error
}

// CompleteRepetitionsHandler handles CompleteRepetitions.
type CompleteRepetitionsHandler struct{ queues *Queues }

// Handle completes the repetitions and returns one CompletionResult per
// completion, in order. It returns an error only when the batch as a whole
// failed (its read or its append: the database away, ctx ended); then it
// may have completed some of them, and running it again is safe (the
// completions it made are recognized by their idempotency keys).
func (h CompleteRepetitionsHandler) Handle(ctx context.Context, cmd CompleteRepetitions) ([]CompletionResult, error) {
	items := make([]batchItem, len(cmd.Completions))
	for i, c := range cmd.Completions {
		items[i] = batchItem{req: c.Request, fp: completionFingerprint(c), decide: completionDecision(c)}
	}
	outs, errs, err := h.queues.executeBatch(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("complete %d repetitions: %w", len(items), err)
	}
	res := make([]CompletionResult, len(items))
	for i, c := range cmd.Completions {
		res[i].Result = outs[i].Result
		if errs[i] != nil {
			res[i].Err = fmt.Errorf("complete repetition %d of task %s of %s: %w", c.Number, c.TaskID, c.PlayerID, errs[i])
		}
	}
	return res, nil
}

// batchItem is one command of a batch.
type batchItem struct {
	req    Request
	fp     string
	decide decision
}

// batchEntry is a batch item on its way: its stream, its cache entry (whose
// lock the batch holds) and its decision.
type batchEntry struct {
	item       int
	player     domain.PlayerID
	stream     string
	key        string
	firstID    uuid.UUID
	c          *cached
	optimistic bool // decided on the cached queue without reading
	p          *pending
}

// executeBatch runs items, each on a stream of its own, as execute would
// run them one by one, but with one read for the queues that need one and
// one AppendMany for every decision that appends. An item whose append
// finds another version (another writer got there first), or that
// needs the stream read again, runs again alone afterwards, reading its
// stream first, so a conflict costs that item a retry, never the batch. An item naming a
// stream an earlier item names also runs alone. It returns the outcome or
// the error of each item, or an error of the batch as a whole (from the
// read or the append) with no outcomes.
func (r *Queues) executeBatch(ctx context.Context, items []batchItem) ([]outcome, []error, error) {
	outs := make([]outcome, len(items))
	errs := make([]error, len(items))
	var entries []*batchEntry
	var alone []int
	streams := map[string]bool{}
	for i, it := range items {
		player, err := domain.ParsePlayerID(it.req.PlayerID)
		if err != nil {
			errs[i] = err
			continue
		}
		key := it.req.IdempotencyKey
		if key == "" {
			key = uuid.NewString()
		} else if err := ValidateKey(key); err != nil {
			errs[i] = err
			continue
		}
		stream := player.Stream()
		if streams[stream] {
			alone = append(alone, i)
			continue
		}
		streams[stream] = true
		entries = append(entries, &batchEntry{item: i, player: player, stream: stream, key: key, firstID: eventID(stream, key, it.fp, 0)})
	}
	again, err := r.decideBatch(ctx, items, entries, outs, errs)
	if err != nil {
		return nil, nil, err
	}
	for _, i := range alone {
		outs[i], errs[i] = r.execute(ctx, items[i].req, items[i].fp, items[i].decide)
	}
	for _, i := range again { // their cached queues proved out of date: read first
		outs[i], errs[i] = r.executeAs(ctx, items[i].req, items[i].fp, items[i].decide, false)
	}
	return outs, errs, nil
}

// decideBatch holds the locks of entries' streams (taken in stream order,
// so two batches never wait for each other in a cycle), loads the queues
// not cached in one ReadStreams call, decides every item, appends the
// decisions in one AppendMany call, and fills outs and errs. It returns the
// items to run again alone, or the error of the batch as a whole.
func (r *Queues) decideBatch(ctx context.Context, items []batchItem, entries []*batchEntry, outs []outcome, errs []error) (again []int, _ error) {
	slices.SortFunc(entries, func(a, b *batchEntry) int { return strings.Compare(a.stream, b.stream) })
	held := 0
	defer func() {
		for _, e := range entries[:held] {
			r.snapshotIfDue(e.c) // before the release
			e.c.release()
		}
	}()
	for _, e := range entries {
		e.c = r.entry(e.stream)
		if err := e.c.acquire(ctx); err != nil {
			return nil, err
		}
		held++
	}
	if err := r.loadBatch(ctx, entries, errs); err != nil {
		return nil, err
	}

	var appends []eventstore.StreamAppend
	var appending []*batchEntry
	for _, e := range entries {
		if errs[e.item] != nil {
			continue
		}
		it := items[e.item]
		p, out, err := r.prepare(e.c.st, e.stream, it.req, e.key, it.fp, e.firstID, it.decide, e.optimistic)
		switch {
		case errors.Is(err, errMaybeStale):
			again = append(again, e.item)
		case p == nil:
			outs[e.item], errs[e.item] = out, err
		default:
			e.p = p
			appends = append(appends, eventstore.StreamAppend{Stream: e.stream, Expected: eventstore.Exact(e.c.st.version), Events: p.data})
			appending = append(appending, e)
		}
	}
	if len(appends) == 0 {
		return again, nil
	}
	results, err := r.store.AppendMany(ctx, appends)
	if err != nil {
		return nil, fmt.Errorf("append to %d streams: %w", len(appends), err)
	}
	for j, e := range appending {
		out, retry, err := r.settle(ctx, e.c, e.c.st, e.player, e.stream, e.key, e.firstID, e.p, results[j].AppendResult, results[j].Err, e.optimistic)
		if retry || errors.Is(err, errMaybeStale) {
			again = append(again, e.item)
			continue
		}
		outs[e.item], errs[e.item] = out, err
	}
	return again, nil
}

// loadBatch brings the queues of entries up to date for a decision, their
// locks held: with Config.Optimistic a cached queue is used as it is (the
// append's expected version proves it current), every other queue is read
// from where its cache stands, all in one ReadStreams call. A stream longer
// than a page is loaded alone (catchUp: from its snapshot, if it has one),
// and so is a queue restored from a snapshot not checked yet. A queue that
// fails to load fails its item; a failed read fails the batch.
func (r *Queues) loadBatch(ctx context.Context, entries []*batchEntry, errs []error) error {
	var reads []eventstore.StreamRead
	var loading []*batchEntry
	for _, e := range entries {
		switch {
		case e.c.st != nil && e.c.st.check != uuid.Nil:
			if _, err := r.catchUp(ctx, e.c, e.player); err != nil {
				errs[e.item] = err
			}
			continue
		case r.cfg.Optimistic && e.c.st != nil:
			e.optimistic = true
			continue
		}
		from := int64(1)
		if e.c.st != nil {
			from = e.c.st.version + 1
		}
		reads = append(reads, eventstore.StreamRead{Stream: e.stream, From: from})
		loading = append(loading, e)
	}
	for start := 0; start < len(reads); start += eventstore.MaxStreamsPerRead {
		end := min(len(reads), start+eventstore.MaxStreamsPerRead)
		pages, err := r.store.ReadStreams(ctx, reads[start:end], r.cfg.ReadPageSize)
		if err != nil {
			return fmt.Errorf("load %d queues: %w", end-start, err)
		}
		for j, page := range pages {
			e := loading[start+j]
			if err := r.applyPage(ctx, e, page); err != nil {
				errs[e.item] = err
			}
		}
	}
	return nil
}

// applyPage applies the first page of e's stream read by loadBatch. When
// the page is full, the stream is long: a queue not loaded before is
// loaded alone instead (from its snapshot, if any), a cached one reads
// the rest of its tail.
func (r *Queues) applyPage(ctx context.Context, e *batchEntry, page []eventstore.RecordedEvent) error {
	if len(page) == r.cfg.ReadPageSize {
		_, err := r.catchUp(ctx, e.c, e.player)
		return err
	}
	if e.c.st == nil {
		e.c.st = r.fresh(e.player)
	}
	for _, rec := range page {
		if err := r.applyRecorded(e.c.st, rec); err != nil {
			e.c.st = nil // the next command loads from scratch
			return fmt.Errorf("load %s: %w", e.stream, err)
		}
	}
	return nil
}
