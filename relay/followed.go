package relay

import (
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// maxFollowed bounds what a pass of the relay remembers (repetition events
// and ended task IDs, some hundred bytes each): past it, it forgets
// everything and reads the streams' tails again until it has followed them
// anew.
const maxFollowed = 100_000

// followed is what one pass of the relay over the log (a subscription from
// its checkpoint, or one Republish) has seen of each queue stream since its
// first event of the stream: the repetition events of the tasks that have
// not ended. A TaskCompleted's rewards (completed) then need no read of
// the stream's tail when the pass saw all of its window, and give exactly
// what that read gives: the same events, folded in the same order.
//
// A pass sees the log in order and without gaps, so from the first event
// of a stream it saw on, it saw every event of the stream that relayFilter
// selects. It is used by one goroutine.
type followed struct {
	streams map[string]*followedStream
	held    int // events and ended IDs held, over all streams
}

type followedStream struct {
	since int64                     // version of the first event of the stream this pass saw
	tasks map[domain.TaskID][]event // a running task's repetition events, in stream order
	ended map[domain.TaskID]bool    // tasks that ended during the pass
}

// event is a decoded event and its version in its stream.
type event struct {
	version int64
	e       domain.Event
}

func newFollowed() *followed { return &followed{streams: map[string]*followedStream{}} }

// see records rec (decoded as e), a relayed event of a queue stream.
func (f *followed) see(rec eventstore.RecordedEvent, e domain.Event) {
	s := f.streams[rec.Stream]
	if s == nil {
		s = &followedStream{since: rec.Version, tasks: map[domain.TaskID][]event{}, ended: map[domain.TaskID]bool{}}
		f.streams[rec.Stream] = s
	}
	var id domain.TaskID
	switch e := e.(type) {
	case domain.RepetitionStarted:
		id = e.TaskID
	case domain.RepetitionCompleted:
		id = e.TaskID
	case domain.TaskFailed:
		s.end(f, e.TaskID)
		return
	case domain.TaskRemoved:
		s.end(f, e.TaskID)
		return
	default:
		return
	}
	if f.held >= maxFollowed {
		f.streams, f.held = map[string]*followedStream{}, 0
		return
	}
	s.tasks[id] = append(s.tasks[id], event{rec.Version, e})
	f.held++
}

// end forgets task id's events and remembers that it ended: a task enqueued
// again with the same ID (a key reused after the queue forgot it) may have
// events of its first run in its window, which the pass no longer holds.
func (s *followedStream) end(f *followed, id domain.TaskID) {
	f.held -= len(s.tasks[id])
	delete(s.tasks, id)
	if !s.ended[id] {
		s.ended[id] = true
		f.held++
	}
}

// window returns the events of task id of rec's stream from version from
// up to rec, and ends the task; ok is false when the pass did not see all
// of them (the caller then reads the stream).
func (f *followed) window(rec eventstore.RecordedEvent, id domain.TaskID, from int64) (events []domain.Event, ok bool) {
	s := f.streams[rec.Stream]
	if s == nil {
		return nil, false
	}
	defer s.end(f, id)
	if s.since > from || s.ended[id] {
		return nil, false
	}
	for _, ev := range s.tasks[id] {
		if ev.version >= from && ev.version <= rec.Version {
			events = append(events, ev.e)
		}
	}
	return events, true
}
