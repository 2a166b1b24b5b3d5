package projections

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// All returns taskqueue's projections, in a fixed order: what the server's
// Runner runs.
func All() []Projection { return []Projection{Queues{}, PlayerProgress{}, Analytics{}} }

// ByName returns the projection of All with that name, or
// ErrUnknownProjection.
func ByName(name string) (Projection, error) {
	for _, p := range All() {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("projection %q: %w", name, ErrUnknownProjection)
}

// Replay rebuilds one projection blue-green and waits for the switch,
// writing a progress bar to w (a terminal: each update rewrites the line)
// every interval: what `taskqueue replay --projection NAME` runs. A server
// may keep running meanwhile: it keeps serving the old generation until the
// switch. A rebuild already under way (e.g. an interrupted replay) is waited
// for instead of started again. cfg.Projections is ignored.
func Replay(ctx context.Context, cfg Config, name string, w io.Writer, interval time.Duration) error {
	p, err := ByName(name)
	if err != nil {
		return err
	}
	cfg.Projections = []Projection{p}
	r, err := NewRunner(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	gen, err := r.Rebuild(ctx, name)
	if err != nil && !errors.Is(err, ErrRebuildInProgress) {
		return err
	}
	start := time.Now()
	fmt.Fprintf(w, "rebuilding %s into generation %s\n", name, gen)
	err = r.WaitRebuilt(ctx, name, gen, interval, func(p Progress) {
		fmt.Fprintf(w, "\r%s", FormatProgress(p, 40))
	})
	if err != nil {
		fmt.Fprintln(w)
		return fmt.Errorf("replay %s: %w", name, err)
	}
	s, err := r.StatusOf(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\r%s\nswitched %s to generation %s at %s: %d events in %s\n",
		FormatProgress(Progress{Done: s.EventsApplied, Total: s.EventsApplied}, 40), name, gen, s.Position,
		s.EventsApplied, time.Since(start).Round(time.Millisecond))
	return nil
}
