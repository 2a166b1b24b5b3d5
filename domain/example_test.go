package domain_test

import (
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// A player queues chopping then sawing; the processor completes the
// repetitions when due; the stream replays to the same queue.
func Example() {
	rules := domain.Rules{} // the embedded catalog, 10 tasks per queue
	player, _ := domain.ParsePlayerID("alice")
	q := domain.NewQueue(player, rules)
	start := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)

	var stream []domain.Event
	record := func(events []domain.Event, err error) {
		if err != nil {
			fmt.Println("refused:", err)
			return
		}
		stream = append(stream, events...)
	}
	record(q.Enqueue("t1", "chop-wood", 2, nil, start))
	record(q.Enqueue("t2", "saw-planks", 1, nil, start))
	record(q.Enqueue("t3", "mine-iron", 1, nil, start)) // needs mining level 5
	for {
		r, ok := q.Repetition()
		if !ok {
			break
		}
		record(q.CompleteRepetition(r.TaskID, r.Number, r.DueAt))
	}
	for _, e := range stream {
		fmt.Println(e.EventType(), e.OccurredAt().Sub(start))
	}
	replayed := domain.NewQueue(player, rules)
	for _, e := range stream {
		_ = replayed.Apply(e)
	}
	fmt.Println("inventory:", replayed.Inventory(), "same state:", replayed.Equal(q))
	// Output:
	// refused: mine-iron needs mining level 5, the player has level 1
	// TaskEnqueued 0s
	// RepetitionStarted 0s
	// TaskEnqueued 0s
	// RepetitionCompleted 3s
	// RepetitionStarted 3s
	// RepetitionCompleted 6s
	// TaskCompleted 6s
	// RepetitionStarted 6s
	// RepetitionCompleted 8s
	// TaskCompleted 8s
	// inventory: map[planks:1] same state: true
}
