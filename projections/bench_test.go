package projections

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

var (
	benchEvents   = flag.Int("rebuild-events", 20000, "events in the log of BenchmarkRebuildPostgres")
	benchSettings = flag.String("rebuild-pg-settings", "", "extra PostgreSQL settings for BenchmarkRebuildPostgres's connections, as URL query parameters (e.g. enable_seqscan=off)")
	benchFixed    = flag.Bool("rebuild-store-queries", false, "read the log with fixedReadStore's queries instead of the store's (see fixedReadStore)")
)

// BenchmarkRebuildPostgres fills a PostgreSQL log with about
// -rebuild-events events of the random workload, then measures, in one run:
//
//   - catch-up: the three projections built from position 0 at start;
//   - rebuild: a blue-green rebuild of all three at once while serving;
//   - copy-models: a raw COPY of the same read-model rows (every row of
//     every read model) into empty tables of the same shape, the baseline
//     for the rows the rebuild writes;
//   - copy-events: a raw COPY of the same event rows into an empty table
//     shaped like event_log, the baseline for the rows the rebuild reads.
//
// Run the full size once with:
//
//	go test ./projections -run '^$' -bench RebuildPostgres -benchtime 1x -rebuild-events 1000000 -timeout 60m
//
// -rebuild-pg-settings enable_seqscan=off steers the event store's page
// query off a sequential scan of the whole log that its "held back" check
// makes at every page on a large log (see the report of this session).
func BenchmarkRebuildPostgres(b *testing.B) {
	ctx := context.Background()
	url := testenv.Postgres(b)
	if *benchSettings != "" {
		url += "&" + *benchSettings
	}
	be := openPostgres(b, url)
	if *benchFixed {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		be.store = fixedReadStore{be.store, pool}
		fmt.Fprintln(os.Stderr, "reading the log with fixedReadStore's queries")
	}
	fill := time.Now()
	res, err := projectiontest.Workload{Seed: 1, Players: max(10, *benchEvents/200), Commands: *benchEvents * 11 / 10, PerAppend: 100}.Run(ctx, be.store)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "filled the log with %d events in %s\n", res.Events, time.Since(fill).Round(time.Millisecond))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, stop := runFor(b, be, Config{Projections: allProjections()})
		for !caughtUp(b, r, res) {
			time.Sleep(100 * time.Millisecond) // polling, sparse so it does not load the database
		}
		catchUp := time.Since(start)

		start = time.Now()
		var wg sync.WaitGroup
		for _, name := range r.Names() {
			gen, err := r.Rebuild(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := time.Now()
				if err := r.WaitRebuilt(ctx, name, gen, time.Second, func(p Progress) {
					if time.Since(last) > 10*time.Second {
						fmt.Fprintf(os.Stderr, "%-16s %s\n", name, FormatProgress(p, 30))
						last = time.Now()
					}
				}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		rebuild := time.Since(start)
		stop()

		rows, copyModels := copyBaseline(b, be, allViews(), "")
		_, copyEvents := copyBaseline(b, be, []string{"event_log"}, "")
		b.ReportMetric(float64(res.Events), "events")
		b.ReportMetric(catchUp.Seconds(), "catchup-s")
		b.ReportMetric(float64(res.Events)/catchUp.Seconds(), "catchup-events/s")
		b.ReportMetric(rebuild.Seconds(), "rebuild-s")
		b.ReportMetric(float64(res.Events)/rebuild.Seconds(), "rebuild-events/s")
		b.ReportMetric(float64(rows), "model-rows")
		b.ReportMetric(copyModels.Seconds(), "copy-models-s")
		b.ReportMetric(copyEvents.Seconds(), "copy-events-s")
	}
}

func caughtUp(b *testing.B, r *Runner, res projectiontest.Result) bool {
	st, err := r.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range st {
		if s.State != StateLive || s.Position.Less(res.Last) {
			return false
		}
	}
	return true
}

// copyBaseline reads every row of the tables and times a COPY of them into
// empty tables of the same shape (LIKE ... INCLUDING ALL, not partitioned).
func copyBaseline(b *testing.B, be backend, tables []string, _ string) (int, time.Duration) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, be.url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	type data struct {
		table string
		cols  []string
		rows  [][]any
	}
	var all []data
	n := 0
	for _, tbl := range tables {
		rs, err := pool.Query(ctx, "SELECT * FROM "+tbl)
		if err != nil {
			b.Fatal(err)
		}
		d := data{table: tbl}
		for _, f := range rs.FieldDescriptions() {
			d.cols = append(d.cols, f.Name)
		}
		for rs.Next() {
			v, err := rs.Values()
			if err != nil {
				b.Fatal(err)
			}
			d.rows = append(d.rows, v)
		}
		rs.Close()
		if rs.Err() != nil {
			b.Fatal(rs.Err())
		}
		n += len(d.rows)
		src := tbl
		if tbl != "event_log" {
			// The view's active table, for its indexes.
			var gen string
			if err := pool.QueryRow(ctx, `SELECT generation FROM projection_checkpoints WHERE active AND name = $1`, ownerOf(tbl)).Scan(&gen); err != nil {
				b.Fatal(err)
			}
			src = physical(tbl, gen)
		}
		if _, err := pool.Exec(ctx, "CREATE TABLE copy_"+tbl+" (LIKE "+src+" INCLUDING ALL)"); err != nil {
			b.Fatal(err)
		}
		all = append(all, d)
	}
	start := time.Now()
	for _, d := range all {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"copy_" + d.table}, d.cols, pgx.CopyFromRows(d.rows)); err != nil {
			b.Fatalf("copy %s: %v", d.table, err)
		}
	}
	return n, time.Since(start)
}

func ownerOf(table string) string {
	for _, p := range allProjections() {
		for _, t := range p.Tables() {
			if t == table {
				return p.Name()
			}
		}
	}
	return ""
}
