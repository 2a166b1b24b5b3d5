package projections

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
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
	benchRounds   = flag.Int("rebuild-rounds", 3, "rounds of BenchmarkRebuildPostgres: a rebuild and both COPY baselines each")
	benchFixed    = flag.Bool("rebuild-store-queries", false, "read the log with fixedReadStore's queries instead of the store's (see fixedReadStore)")
	benchProfile  = flag.String("rebuild-cpuprofile", "", "write a CPU profile of each rebuild of BenchmarkRebuildPostgres's rounds (the rebuild only) to this path with the round's number appended")
)

// BenchmarkRebuildPostgres fills a PostgreSQL log with about
// -rebuild-events events of the random workload, then measures, in one run:
//
//   - catch-up: the three projections built from position 0 at start (the
//     active generations: catch-up, not the bulk build);
//   - then -rebuild-rounds rounds of:
//   - rebuild: a blue-green rebuild of all three at once while serving (the
//     bulk build, bulk.go), from Rebuild until every view has switched;
//   - copy-models: a raw COPY of the same read-model rows (every row of
//     every read model) into empty tables of the same shape, the baseline
//     for the rows the rebuild writes;
//   - copy-events: a raw COPY of the same event rows into an empty table
//     shaped like event_log, the baseline for the rows the rebuild reads;
//
// and prints each round with the load average and the ratios COPY time ÷
// rebuild time (1 = the rebuild as fast as a raw COPY of its rows). Run the
// documented size with:
//
//	go test ./projections -run '^$' -bench RebuildPostgres -benchtime 1x -rebuild-events 1000000 -timeout 60m
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
		fmt.Fprintf(os.Stderr, "catch-up of the 3 projections from 0 (catch-up, not the bulk build): %.1f s, %.0f events/s\n",
			catchUp.Seconds(), float64(res.Events)/catchUp.Seconds())
		b.ReportMetric(float64(res.Events), "events")
		b.ReportMetric(catchUp.Seconds(), "catchup-s")

		var ratios, ratiosEvents []float64
		for round := 1; round <= *benchRounds; round++ {
			load := loadAverage()
			settle(b, be.url)
			stopProfile := profileRound(b, *benchProfile, round)
			rebuild := rebuildAll(b, r)
			stopProfile()

			rows, copyModels := copyBaseline(b, be, allViews())
			_, copyEvents := copyBaseline(b, be, []string{"event_log"})
			ratio := copyModels.Seconds() / rebuild.Seconds()
			ratioEvents := copyEvents.Seconds() / rebuild.Seconds()
			ratios, ratiosEvents = append(ratios, ratio), append(ratiosEvents, ratioEvents)
			fmt.Fprintf(os.Stderr, "round %d (load average %s): rebuild %.2f s (%.0f events/s); COPY of the %d read-model rows %.2f s (%.0f rows/s); "+
				"COPY of the %d event rows %.2f s (%.0f rows/s); COPY-models/rebuild %.2f, COPY-events/rebuild %.2f\n",
				round, load, rebuild.Seconds(), float64(res.Events)/rebuild.Seconds(), rows, copyModels.Seconds(), float64(rows)/copyModels.Seconds(),
				res.Events, copyEvents.Seconds(), float64(res.Events)/copyEvents.Seconds(), ratio, ratioEvents)
			b.ReportMetric(rebuild.Seconds(), "rebuild-s")
			b.ReportMetric(float64(res.Events)/rebuild.Seconds(), "rebuild-events/s")
			b.ReportMetric(float64(rows), "model-rows")
			b.ReportMetric(copyModels.Seconds(), "copy-models-s")
			b.ReportMetric(copyEvents.Seconds(), "copy-events-s")
		}
		stop()
		fmt.Fprintf(os.Stderr, "COPY-models/rebuild over %d rounds: %s; COPY-events/rebuild: %s\n", len(ratios), spread(ratios), spread(ratiosEvents))
		b.ReportMetric(median(ratios), "copy-models/rebuild")
		b.ReportMetric(median(ratiosEvents), "copy-events/rebuild")
	}
}

// rebuildAll rebuilds every projection of r at once and returns the time
// from the first Rebuild until every view has switched.
func rebuildAll(b *testing.B, r *Runner) time.Duration {
	ctx := context.Background()
	start := time.Now()
	waitRebuilt(ctx, b, r, startRebuilds(ctx, b, r), 50*time.Millisecond)
	return time.Since(start)
}

// profileRound starts a CPU profile of round into path.N (N the round),
// when path is not empty, and returns what stops it.
func profileRound(b *testing.B, path string, round int) (stop func()) {
	if path == "" {
		return func() {}
	}
	return testenv.CPUProfile(b, fmt.Sprintf("%s.%d", path, round))
}

// loadAverage returns the 1-, 5- and 15-minute load averages of the machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// spread renders the median and the range of xs.
func spread(xs []float64) string {
	return fmt.Sprintf("median %.2f (%.2f-%.2f)", median(xs), slices.Min(xs), slices.Max(xs))
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
// empty tables of the same shape (LIKE ... INCLUDING ALL, not partitioned),
// all the tables at once.
func copyBaseline(b *testing.B, be backend, tables []string) (int, time.Duration) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(be.url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns, cfg.MinConns = int32(len(tables)), int32(len(tables)) // a connection per table, opened before the clock starts
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
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
		src := tbl
		if tbl != "event_log" {
			// The view's active table, for its indexes.
			var gen string
			if err := pool.QueryRow(ctx, `SELECT generation FROM projection_checkpoints WHERE active AND name = $1`, ownerOf(tbl)).Scan(&gen); err != nil {
				b.Fatal(err)
			}
			src = physical(tbl, gen)
		}
		d := data{table: tbl}
		// Every column but the generated ones (PostgreSQL computes them, COPY
		// cannot set them), as the rebuild writes them.
		cols, err := pool.Query(ctx, `SELECT attname FROM pg_attribute
			WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, src)
		if err != nil {
			b.Fatal(err)
		}
		if d.cols, err = pgx.CollectRows(cols, pgx.RowTo[string]); err != nil {
			b.Fatal(err)
		}
		rs, err := pool.Query(ctx, "SELECT "+strings.Join(d.cols, ", ")+" FROM "+tbl)
		if err != nil {
			b.Fatal(err)
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
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS copy_"+tbl); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "CREATE TABLE copy_"+tbl+" (LIKE "+src+" INCLUDING ALL)"); err != nil {
			b.Fatal(err)
		}
		all = append(all, d)
	}
	// Every table at once, one COPY (and one connection) each, as a user
	// loading these tables would; the rebuild also writes its projections
	// side by side.
	settle(b, be.url)
	start := time.Now()
	var wg sync.WaitGroup
	for _, d := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pool.CopyFrom(ctx, pgx.Identifier{"copy_" + d.table}, d.cols, pgx.CopyFromRows(d.rows)); err != nil {
				b.Errorf("copy %s: %v", d.table, err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return n, time.Since(start)
}

// settle lets PostgreSQL finish the work the phase before left it, so that
// no phase pays for another's: a checkpoint (the COPY of a million event
// rows writes some 500 MB of WAL, and the checkpoint it triggers would run
// through the next phase) and the autovacuum workers the writes woke. The
// rebuild and both COPY baselines start after it alike.
func settle(b *testing.B, url string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var workers int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`).Scan(&workers); err != nil {
			b.Fatal(err)
		}
		if workers == 0 {
			return
		}
	}
	fmt.Fprintln(os.Stderr, "autovacuum still running after a minute; measuring anyway")
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
