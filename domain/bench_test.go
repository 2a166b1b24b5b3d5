package domain_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/taskqueue/taskqueue/domain"
)

// BenchmarkDecide: one decision (enqueue then remove) on a queue of 9 tasks,
// events included.
func BenchmarkDecide(b *testing.B) {
	q := domain.NewQueue("bench", domain.Rules{})
	for i := range 9 {
		if _, err := q.Enqueue(domain.TaskID(fmt.Sprint("w", i)), "chop-wood", 1000, nil, at(0)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := q.Enqueue("x", "saw-planks", 5, nil, at(1)); err != nil {
			b.Fatal(err)
		}
		if _, err := q.Remove("x", at(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplay: decoding and applying one stored event.
func BenchmarkReplay(b *testing.B) {
	q := domain.NewQueue("bench", domain.Rules{})
	var stored [][]byte
	var types []domain.EventType
	now := at(0)
	for i := range 500 {
		events, err := q.Enqueue(domain.TaskID(fmt.Sprint("t", i)), "chop-wood", 1, nil, now)
		if err != nil {
			b.Fatal(err)
		}
		r, _ := q.Repetition()
		more, err := q.CompleteRepetition(r.TaskID, r.Number, r.DueAt)
		if err != nil {
			b.Fatal(err)
		}
		now = r.DueAt
		for _, e := range append(events, more...) {
			typ, _, data, _ := domain.EncodeEvent(e)
			stored = append(stored, data)
			types = append(types, typ)
		}
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		r := domain.NewQueue("bench", domain.Rules{})
		for i, data := range stored {
			e, err := domain.DecodeEvent(string(types[i]), types[i].SchemaVersion(), data)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Apply(e); err != nil {
				b.Fatal(err)
			}
		}
		n += len(stored)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}

// BenchmarkDecodeEvent: decoding one stored event of a queue's history
// (gathering and crafting tasks: repetitions with and without inputs) on
// as many goroutines as GOMAXPROCS, as the rebuilds decode their pages.
func BenchmarkDecodeEvent(b *testing.B) {
	q := domain.NewQueue("bench", domain.Rules{})
	var stored [][]byte
	var types []domain.EventType
	now := at(0)
	for i := range 300 {
		typ := domain.TaskTypeID([]string{"chop-wood", "chop-wood", "saw-planks"}[i%3])
		events, err := q.Enqueue(domain.TaskID(fmt.Sprint("t", i)), typ, 1, nil, now)
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, ok := q.Repetition()
			if !ok {
				break
			}
			more, err := q.CompleteRepetition(r.TaskID, r.Number, r.DueAt)
			if err != nil {
				b.Fatal(err)
			}
			now = r.DueAt
			events = append(events, more...)
		}
		for _, e := range events {
			typ, _, data, _ := domain.EncodeEvent(e)
			stored = append(stored, data)
			types = append(types, typ)
		}
	}
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % len(stored)
			if _, err := domain.DecodeEvent(string(types[i]), types[i].SchemaVersion(), stored[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
