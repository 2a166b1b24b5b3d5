package postgres_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
)

// BenchmarkReadAllTombstoneCondition measures what skipping tombstones
// costs ReadAll: the page query as the store runs it (with "event_type <>
// '$deleted'") against the same query without that condition (the
// baseline), over the same log of 20,000 events of 400 streams, 10% of
// them deleted, read whole in pages of 500, the two alternating. It
// reports both times per page and their ratio.
func BenchmarkReadAllTombstoneCondition(b *testing.B) {
	s := openStore(b)
	ctx := context.Background()
	for i := range 400 {
		evs := make([]eventstore.EventData, 50)
		for j := range evs {
			evs[j] = eventstore.EventData{ID: uuid.New(), Type: "Bench", SchemaVersion: 1,
				Data: []byte(fmt.Sprintf(`{"n":%d}`, j)), Metadata: eventstore.Metadata{OccurredAt: time.Now()}}
		}
		if _, err := s.Append(ctx, fmt.Sprintf("bench-%d", i), eventstore.NoStream, evs...); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 400; i += 10 {
		if _, err := s.DeleteStream(ctx, fmt.Sprintf("bench-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	baseline := strings.Replace(postgres.PageQuery, "AND event_type <> '$deleted'", "", 1)
	if baseline == postgres.PageQuery {
		b.Fatal("the page query has no tombstone condition to take out")
	}
	readLog := func(query string) (pages int) {
		after := eventstore.Start
		for {
			rows, err := s.Pool().Query(ctx, query, strconv.FormatUint(after.Commit, 10), int64(after.Seq), nil, nil, nil, 500)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					b.Fatal(err)
				}
				if vals[3] == nil {
					continue // the empty page's row
				}
				n++
				after = eventstore.Position{Commit: uint64(vals[3].(int64)), Seq: uint64(vals[4].(int64))}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			pages++
			if n < 500 {
				return pages
			}
		}
	}
	var store, base time.Duration
	pages := 0
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		pages += readLog(postgres.PageQuery)
		t1 := time.Now()
		readLog(baseline)
		store, base = store+t1.Sub(t0), base+time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(store.Microseconds())/float64(pages), "µs/page")
	b.ReportMetric(float64(base.Microseconds())/float64(pages), "baseline-µs/page")
	b.ReportMetric(float64(store)/float64(base), "ratio")
}
