package metrics_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/metrics"
)

// An AppendMany call counts what it stored as Appends do: each stored
// append's events by type, its repetitions and the processor's lateness;
// a failed append and a retried one count nothing.
func TestStoreCountsAppendMany(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "taskqueue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	reg := metrics.New()
	store := reg.Store(raw)
	ev := func(typ string) eventstore.EventData {
		return eventstore.EventData{ID: uuid.New(), Type: typ, Data: []byte(`{}`),
			Metadata: eventstore.Metadata{OccurredAt: time.Now().Add(-2 * time.Second), Actor: "system"}}
	}
	call := []eventstore.StreamAppend{
		{Stream: "queue-a", Expected: eventstore.Any, Events: []eventstore.EventData{ev("RepetitionCompleted"), ev("RepetitionStarted")}},
		{Stream: "queue-b", Expected: eventstore.Any, Events: []eventstore.EventData{ev("RepetitionCompleted")}},
		{Stream: "queue-c", Expected: eventstore.Exact(4), Events: []eventstore.EventData{ev("RepetitionCompleted")}},
	}
	for range 2 { // the second call is a retry: duplicates and the same wrong version
		if _, err := store.AppendMany(ctx, call); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetValue()
			}
			got[key] = metricValue(m)
		}
	}
	for key, want := range map[string]float64{
		"taskqueue_events_appended_total,RepetitionCompleted": 2,
		"taskqueue_events_appended_total,RepetitionStarted":   1,
		"taskqueue_repetitions_total,completed":               2,
		"taskqueue_processor_lateness_seconds":                2,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}
