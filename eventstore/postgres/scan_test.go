package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
)

// ReadByStream pages through the log's prefix up to upTo in stream order,
// tombstones skipped, and goes on past pages that hold no event of the
// prefix: here stream b, appended after upTo, fills whole pages between
// streams a and c.
func TestReadByStreamPagesThePrefix(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	appendN := func(stream string, n int) {
		t.Helper()
		for range n {
			if _, err := s.Append(ctx, stream, eventstore.Any, newEvent("E")); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN("a", 4)
	appendN("c", 5)
	appendN("gone", 3)
	if _, err := s.DeleteStream(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	upTo, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendN("b", 10) // after upTo: not in the prefix
	appendN("a", 2)
	appendN("c", 1)

	var got []string
	stream, version, pages, empty := "", int64(0), 0, 0
	for more := true; more; pages++ {
		if pages > 20 {
			t.Fatal("no end after 20 pages")
		}
		var evs []eventstore.RecordedEvent
		evs, stream, version, more, err = s.ReadByStream(ctx, upTo, stream, version, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 && more {
			empty++
		}
		for _, e := range evs {
			if upTo.Less(e.Position) {
				t.Errorf("event %s/%d at %s is past upTo %s", e.Stream, e.Version, e.Position, upTo)
			}
			got = append(got, e.Stream+"/"+strconv.FormatInt(e.Version, 10))
		}
	}
	want := []string{"a/1", "a/2", "a/3", "a/4", "c/1", "c/2", "c/3", "c/4", "c/5"}
	if !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if empty == 0 {
		t.Fatal("no empty page before the end: the test does not test that the read goes on past one")
	}
}

// A page of ReadByStream walks the (stream_id, version) index, whatever the
// planner thinks of its upTo condition: with the limit and the upTo
// condition in one WHERE, it read the whole log up to upTo by the primary
// key and sorted it at every page (an external sort: 333 ms a page of a
// 218,257-event log, against 20 ms for the walk).
func TestReadByStreamWalksTheStreamIndex(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	// 200,000 events of 2,000 streams, in the order appends interleave
	// them, not analyzed yet (as after a burst of appends that autovacuum
	// has not come to): the planner then takes each row comparison for a
	// third of the table.
	for _, q := range []string{`ALTER TABLE event_log SET (autovacuum_enabled = false)`,
		`INSERT INTO event_log (event_id, stream_id, version, event_type, schema_version, data, occurred_at)
			SELECT gen_random_uuid(), 'queue-' || (i % 2000), i / 2000 + 1, 'E', 1,
				'{"type":"RepetitionCompleted","taskId":"t1","xp":10,"items":{"logs":1}}', now()
			FROM generate_series(0, 199999) AS i`} {
		if _, err := s.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	upTo, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []string{"", "queue-1"} {
		var plan string
		if err := s.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+postgres.ByStreamQuery,
			after, 0, strconv.FormatUint(upTo.Commit, 10), int64(upTo.Seq), 16384).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		nodes := planNodes(t, plan)
		if slices.Contains(nodes, "Sort") || !slices.Contains(nodes, "Index Scan event_log_stream_version_key") {
			t.Errorf("after %q the page is planned as %s, want a walk of event_log_stream_version_key without a sort",
				after, strings.Join(nodes, " > "))
		}
	}
}

// planNodes lists the nodes of an EXPLAIN (FORMAT JSON), depth first, an
// index scan with its index.
func planNodes(t *testing.T, plan string) []string {
	t.Helper()
	type node struct {
		Type  string `json:"Node Type"`
		Index string `json:"Index Name"`
		Plans []node `json:"Plans"`
	}
	var doc []struct {
		Plan node `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(plan), &doc); err != nil || len(doc) != 1 {
		t.Fatalf("EXPLAIN output %q: %v", plan, err)
	}
	var out []string
	var walk func(n node)
	walk = func(n node) {
		out = append(out, strings.TrimSpace(fmt.Sprint(n.Type, " ", n.Index)))
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	return out
}
