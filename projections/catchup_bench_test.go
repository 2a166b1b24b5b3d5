package projections

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

var (
	catchUpEvents  = flag.Int("catchup-events", 20000, "events appended during each outage of BenchmarkCatchUpPostgres")
	catchUpProfile = flag.String("catchup-cpuprofile", "", "write a CPU profile of each catch-up of BenchmarkCatchUpPostgres to this path with the round's number appended")
)

// BenchmarkCatchUpPostgres measures the catch-up of live projections after
// a long outage against a bulk rebuild in the same round. A log of about
// -catchup-events/10 events (players a…) is projected live; then each of
// -rebuild-rounds rounds:
//
//   - outage: the runner stops and -catchup-events more events are
//     appended (new players r<round>…, as many events per player as the
//     first workload);
//   - catch-up: the runner starts again, and the three projections catch
//     up from their checkpoints to the head (what is timed);
//   - rebuild: a blue-green rebuild of the three at once over the whole log
//     (bulk build, catch-up and switch).
//
// Each round prints both paces (events/s) and their ratio, with the load
// average. Run the documented size with:
//
//	go test ./projections -run '^$' -bench CatchUpPostgres -benchtime 1x -catchup-events 1000000 -timeout 60m
func BenchmarkCatchUpPostgres(b *testing.B) {
	ctx := context.Background()
	be := openPostgres(b, "")
	workload := func(seed uint64, prefix string, events int) projectiontest.Result {
		b.Helper()
		fill := time.Now()
		res, err := projectiontest.Workload{Seed: seed, Prefix: prefix, Players: max(10, events/200),
			Commands: events * 11 / 10, PerAppend: 100}.Run(ctx, be.store)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "appended %d events (players %s…) in %s\n", res.Events, prefix, time.Since(fill).Round(time.Millisecond))
		return res
	}
	for i := 0; i < b.N; i++ {
		res := workload(1, "a", max(1000, *catchUpEvents/10))
		total := res.Events
		r, stop := runFor(b, be, Config{Projections: allProjections()})
		for !caughtUp(b, r, res) {
			time.Sleep(100 * time.Millisecond)
		}
		var ratios []float64
		for round := 1; round <= *benchRounds; round++ {
			stop() // the outage
			res = workload(uint64(round)+1, fmt.Sprintf("r%d", round), *catchUpEvents)
			total += res.Events
			load := loadAverage()
			stopProfile := profileRound(b, *catchUpProfile, round)
			start := time.Now()
			r, stop = runFor(b, be, Config{Projections: allProjections()})
			for !caughtUp(b, r, res) {
				time.Sleep(50 * time.Millisecond)
			}
			catchUp := time.Since(start)
			stopProfile()
			rebuild := rebuildAll(b, r)
			catchUpPace, rebuildPace := float64(res.Events)/catchUp.Seconds(), float64(total)/rebuild.Seconds()
			ratios = append(ratios, catchUpPace/rebuildPace)
			fmt.Fprintf(os.Stderr, "round %d (load average %s): catch-up of %d events after the outage %.2f s (%.0f events/s); "+
				"rebuild of the whole log (%d events) %.2f s (%.0f events/s); catch-up pace / rebuild pace %.2f\n",
				round, load, res.Events, catchUp.Seconds(), catchUpPace, total, rebuild.Seconds(), rebuildPace, catchUpPace/rebuildPace)
			b.ReportMetric(catchUpPace, "catchup-events/s")
			b.ReportMetric(rebuildPace, "rebuild-events/s")
		}
		stop()
		fmt.Fprintf(os.Stderr, "catch-up pace / rebuild pace over %d rounds: %s\n", len(ratios), spread(ratios))
		b.ReportMetric(median(ratios), "catchup/rebuild")
	}
}
