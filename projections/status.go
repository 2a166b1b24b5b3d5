package projections

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// Status is what a projection is doing, for /api/admin/projections, /readyz
// and the CLI.
type Status struct {
	Name       string `json:"name"`
	Version    int    `json:"version"`
	Generation string `json:"generation"`
	State      State  `json:"state"`
	// Position is the checkpoint of the serving generation.
	Position eventstore.Position `json:"position"`
	// Head is the end of the log's safe prefix when the status was taken.
	Head eventstore.Position `json:"head"`
	// LagEvents is how far Position is behind Head, counted in log
	// sequence numbers (exact on SQLite; on PostgreSQL sequence numbers
	// may have gaps, so it is an upper bound).
	LagEvents int64 `json:"lagEvents"`
	// LagSeconds is how long the first event not yet applied has been in
	// the log (0 when none is waiting).
	LagSeconds      float64 `json:"lagSeconds"`
	EventsPerSecond float64 `json:"eventsPerSecond"`
	EventsApplied   int64   `json:"eventsApplied"`
	// Failure is set when State is failed.
	Failure *Failure `json:"failure,omitempty"`
	// Degraded is set when State is degraded.
	Degraded *Degradation `json:"degraded,omitempty"`
	// Rebuild is set while a new generation is being built.
	Rebuild *Progress `json:"rebuild,omitempty"`
}

// Degradation is an outage of the infrastructure a projection needs (the
// database or the log unreachable, the disk full): the projection retries
// by itself until it is over.
type Degradation struct {
	// Since is when the first attempt of the outage failed.
	Since time.Time `json:"since"`
	// Error is the last transient error.
	Error string `json:"error"`
}

// degradation returns pr's outage, nil when there is none.
func (pr *proj) degradation() *Degradation {
	since, last, down := pr.outage.Down()
	if !down {
		return nil
	}
	d := &Degradation{Since: since}
	if last != nil {
		d.Error = last.Error()
	}
	return d
}

// Progress is a rebuild's progress.
type Progress struct {
	Generation      string              `json:"generation"`
	Version         int                 `json:"version"`
	State           State               `json:"state"`
	Position        eventstore.Position `json:"position"`
	Done            int64               `json:"done"`
	Total           int64               `json:"total"`
	EventsPerSecond float64             `json:"eventsPerSecond"`
	ETA             time.Duration       `json:"etaMs"`
	Failure         *Failure            `json:"failure,omitempty"`
}

// Names returns the runner's projection names, sorted.
func (r *Runner) Names() []string { return append([]string(nil), r.order...) }

// Status reports every projection, sorted by name.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, err := r.cfg.Store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection status: read head: %w", err)
	}
	out := make([]Status, 0, len(r.order))
	for _, name := range r.order {
		s, err := r.status(ctx, r.projs[name], head)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// StatusOf reports one projection, or ErrUnknownProjection.
func (r *Runner) StatusOf(ctx context.Context, name string) (Status, error) {
	pr, ok := r.projs[name]
	if !ok {
		return Status{}, fmt.Errorf("projection status %q: %w", name, ErrUnknownProjection)
	}
	head, err := r.cfg.Store.Head(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("projection status: read head: %w", err)
	}
	return r.status(ctx, pr, head)
}

func (r *Runner) status(ctx context.Context, pr *proj, head eventstore.Position) (Status, error) {
	now := r.cfg.Now()
	s := Status{Name: pr.p.Name(), Version: pr.p.Version(), Head: head, State: StateStopped}
	cps, err := loadCheckpoints(ctx, r.cfg.DB, pr.p.Name())
	if err != nil {
		return Status{}, err
	}
	pr.mu.Lock()
	workers := make(map[string]*worker, len(pr.workers))
	for g, w := range pr.workers {
		workers[g] = w
	}
	pr.mu.Unlock()
	degraded := pr.degradation()
	for _, c := range cps {
		w := workers[c.generation]
		pos, applied, state, rate := c.position, c.applied, StateStopped, 0.0
		var fail *Failure
		var bulkDone int64
		if w != nil {
			w.mu.Lock()
			if w.pos.Compare(pos) > 0 {
				pos, applied = w.pos, w.applied
			}
			bulkDone = w.bulkDone
			state, fail, rate = w.state, w.fail, w.meter.rate(now)
			w.mu.Unlock()
		}
		if degraded != nil && fail == nil {
			state = StateDegraded
		}
		if c.active {
			s.Version, s.Generation, s.Position, s.EventsApplied = c.version, c.generation, pos, applied
			s.State, s.Failure, s.EventsPerSecond = state, fail, rate
			s.LagEvents = seqLag(pos, head)
			if pos.Less(head) {
				next, err := r.cfg.Store.ReadAll(ctx, pos, pr.p.Filter(), 1)
				if err != nil {
					return Status{}, fmt.Errorf("projection status of %s: %w", pr.p.Name(), err)
				}
				if len(next) > 0 {
					s.LagSeconds = max(0, now.Sub(next[0].RecordedAt).Seconds())
				} else if state == StateCatchingUp {
					s.LagEvents = 0 // nothing it reads is left
				}
			}
			continue
		}
		pg := &Progress{Generation: c.generation, Version: c.version, State: state, Position: pos,
			Done: max(int64(pos.Seq), bulkDone), Total: int64(head.Seq), EventsPerSecond: rate, Failure: fail}
		if pg.Done > pg.Total {
			pg.Total = pg.Done
		}
		if rate > 0 {
			pg.ETA = time.Duration(float64(pg.Total-pg.Done) / rate * float64(time.Second))
		}
		s.Rebuild = pg
	}
	if degraded != nil && s.Failure == nil {
		// Also before its first checkpoint could be written.
		s.State, s.Degraded = StateDegraded, degraded
	}
	return s, nil
}

func seqLag(pos, head eventstore.Position) int64 {
	if !pos.Less(head) || head.Seq < pos.Seq {
		return 0
	}
	return int64(head.Seq - pos.Seq)
}

// Ready reports an error naming every failed projection (also a failed
// rebuild) and every degraded one with its last error, for /readyz. It
// reads only the runner's memory: no query. A degraded projection is ready
// again by itself once it has caught up or committed after the outage.
func (r *Runner) Ready(ctx context.Context) error {
	var failed, degraded []string
	for _, name := range r.order {
		pr := r.projs[name]
		if d := pr.degradation(); d != nil {
			degraded = append(degraded, fmt.Sprintf("%s since %s (%s)", name, d.Since.UTC().Format(time.RFC3339), d.Error))
		}
		pr.mu.Lock()
		for _, w := range pr.workers {
			if f := w.failure(); f != nil {
				failed = append(failed, fmt.Sprintf("%s (generation %s) at %s", name, w.generation, f.Position))
			}
		}
		pr.mu.Unlock()
	}
	sort.Strings(failed)
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, "projections failed: "+strings.Join(failed, ", "))
	}
	if len(degraded) > 0 {
		parts = append(parts, "projections degraded (retrying by themselves): "+strings.Join(degraded, "; "))
	}
	if len(parts) > 0 {
		return errors.New(strings.Join(parts, "; "))
	}
	return nil
}

// FormatProgress renders a rebuild's progress as one terminal line:
//
//	[##########----------]  50.0%  500000/1000000 events  41250 ev/s  ETA 12s
func FormatProgress(p Progress, width int) string {
	if width < 10 {
		width = 10
	}
	frac := 0.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	frac = min(max(frac, 0), 1)
	n := int(frac * float64(width))
	bar := strings.Repeat("#", n) + strings.Repeat("-", width-n)
	eta := "--"
	if p.EventsPerSecond > 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %5.1f%%  %d/%d events  %.0f ev/s  ETA %s", bar, frac*100, p.Done, p.Total, p.EventsPerSecond, eta)
}

// WaitRebuilt waits until the rebuild of the named projection into
// generation has switched (its generation serves) and returns nil, calling
// progress (may be nil) after commits, at most every interval (default 1 s).
// It is what `taskqueue replay --projection NAME` runs after Rebuild, with
// progress printing FormatProgress. The Runner must be running.
func (r *Runner) WaitRebuilt(ctx context.Context, name, generation string, interval time.Duration, progress func(Progress)) error {
	if _, ok := r.projs[name]; !ok {
		return fmt.Errorf("wait for rebuild of %q: %w", name, ErrUnknownProjection)
	}
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s, err := r.StatusOf(ctx, name)
		if err != nil {
			return err
		}
		if s.Generation == generation && s.Rebuild == nil {
			return nil
		}
		if s.Rebuild != nil && s.Rebuild.Generation != generation {
			return fmt.Errorf("wait for rebuild of %s: generation %s is building instead of %s", name, s.Rebuild.Generation, generation)
		}
		if s.Rebuild == nil && s.Generation != generation {
			// Not started yet by the runner, or superseded: check the row.
			cps, err := loadCheckpoints(ctx, r.cfg.DB, name)
			if err != nil {
				return err
			}
			found := false
			for _, c := range cps {
				found = found || c.generation == generation
			}
			if !found {
				return fmt.Errorf("wait for rebuild of %s: generation %s is gone", name, generation)
			}
		}
		if progress != nil && s.Rebuild != nil {
			progress(*s.Rebuild)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
