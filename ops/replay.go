package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/projections"
)

// AllProjections is the --projection value that names every projection.
const AllProjections = "all"

// ReplayOptions configures Replay and ReplayTo.
type ReplayOptions struct {
	// Projection is a projection's name or AllProjections. Required.
	Projection string
	// TTY redraws the progress bar in place (\r); otherwise every update
	// is a line of its own (logs, pipes). See IsTerminal.
	TTY bool
	// Interval between progress updates. Default 1 s.
	Interval time.Duration
}

// DefaultProjections are the read models the service runs, the ones
// ReplayTo builds.
func DefaultProjections() []projections.Projection {
	return []projections.Projection{projections.Queues{}, projections.PlayerProgress{}, projections.Analytics{}}
}

// selectNames returns the names opt.Projection selects among known.
func selectNames(projection string, known []string) ([]string, error) {
	switch {
	case projection == "":
		return nil, fmt.Errorf("%w: no projection named (--projection NAME or %s; known: %s)", ErrInvalid, AllProjections, strings.Join(known, ", "))
	case projection == AllProjections:
		return known, nil
	case slices.Contains(known, projection):
		return []string{projection}, nil
	}
	return nil, fmt.Errorf("%w: unknown projection %q (known: %s, or %s)", ErrInvalid, projection, strings.Join(known, ", "), AllProjections)
}

// Replay rebuilds the selected projections of a running Runner blue-green,
// one after the other, drawing each one's progress bar on w, and returns when
// each new generation serves: `taskqueue replay --projection NAME|all`. A
// projection whose rebuild is already in progress (a replay killed midway)
// is not rebuilt again: Replay waits for that rebuild to switch.
func Replay(ctx context.Context, runner *projections.Runner, w io.Writer, opt ReplayOptions) error {
	if runner == nil {
		return errors.New("replay: no projections runner (the backend runs no read models)")
	}
	names, err := selectNames(opt.Projection, runner.Names())
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	bar := progressBar{w: w, tty: opt.TTY}
	for _, name := range names {
		gen, err := runner.Rebuild(ctx, name)
		switch {
		case errors.Is(err, projections.ErrRebuildInProgress) && gen != "":
			// A rebuild left by a replay that was killed, or started by
			// another operator: finish it rather than refuse. The runners
			// build every generation they find (this one's too).
			bar.start(name + " → " + gen + " (the rebuild in progress)")
		case err != nil:
			return fmt.Errorf("replay %s: %w", name, err)
		default:
			bar.start(name + " → " + gen)
		}
		err = runner.WaitRebuilt(ctx, name, gen, opt.Interval, func(p projections.Progress) {
			bar.draw(projections.FormatProgress(p, 30))
		})
		if err != nil {
			bar.end("")
			return fmt.Errorf("replay %s: %w", name, err)
		}
		bar.end(fmt.Sprintf("%s: generation %s serves", name, gen))
	}
	return nil
}

// ReplayToOptions configures ReplayTo.
type ReplayToOptions struct {
	ReplayOptions
	// To bounds the replay: events at or before a position or a time
	// (per stream, the prefix up to the first event past it). Required.
	To Moment
	// Into is the path of the SQLite file to build; it must not exist.
	Into string
}

// ReplayToResult reports a ReplayTo.
type ReplayToResult struct {
	// Events copied into the new file and applied.
	Events int
	// Path of the SQLite file holding the log prefix and its read models.
	Path string
}

// ReplayTo builds the read models as they were at opt.To into a new SQLite
// file: it copies the log of src up to opt.To into the file and runs the
// selected projections there until they have applied it all, drawing
// progress on w: `taskqueue replay --projection NAME|all --to-position N |
// --to-time T [--into FILE]`. The serving read models are not touched.
func ReplayTo(ctx context.Context, src eventstore.Store, w io.Writer, opt ReplayToOptions) (ReplayToResult, error) {
	res := ReplayToResult{Path: opt.Into}
	var known []string
	byName := map[string]projections.Projection{}
	for _, p := range DefaultProjections() {
		known = append(known, p.Name())
		byName[p.Name()] = p
	}
	names, err := selectNames(opt.Projection, known)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if opt.To.IsZero() {
		return res, fmt.Errorf("replay: %w: no bound (--to-position or --to-time)", ErrInvalid)
	}
	if opt.Into == "" {
		return res, fmt.Errorf("replay: %w: no file to build into (--into)", ErrInvalid)
	}
	if _, err := os.Stat(opt.Into); err == nil {
		return res, fmt.Errorf("replay: %w: %s exists; name a new file", ErrInvalid, opt.Into)
	}
	dst, err := sqlite.Open(ctx, opt.Into)
	if err != nil {
		return res, fmt.Errorf("replay: create %s: %w", opt.Into, err)
	}
	defer dst.Close()

	bar := progressBar{w: w, tty: opt.TTY}
	bar.start(fmt.Sprintf("copy the log up to %s into %s", opt.To, opt.Into))
	last, n, err := copyPrefix(ctx, src, dst, opt.To)
	if err != nil {
		bar.end("")
		return res, fmt.Errorf("replay: %w", err)
	}
	res.Events = n
	bar.end(fmt.Sprintf("copied %d events", n))

	var projs []projections.Projection
	for _, name := range names {
		projs = append(projs, byName[name])
	}
	runner, err := projections.NewRunner(projections.Config{
		Store: dst, DB: projections.NewSQLiteStoreDB(dst), Projections: projs,
		Logger: discardLogger(),
	})
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = runner.Run(runCtx) }()
	defer func() { cancel(); wg.Wait() }()

	interval := opt.Interval
	if interval <= 0 {
		interval = time.Second
	}
	began := time.Now()
	bar.start("build " + strings.Join(names, ", "))
	for {
		committed := runner.Committed()
		st, err := runner.Status(ctx)
		if err != nil {
			bar.end("")
			return res, fmt.Errorf("replay: %w", err)
		}
		done, all := int64(0), true
		for _, s := range st {
			if s.State == projections.StateFailed {
				bar.end("")
				if s.Failure == nil {
					return res, fmt.Errorf("replay: projection %s failed", s.Name)
				}
				return res, fmt.Errorf("replay: projection %s failed at %s: %s", s.Name, s.Failure.Position, s.Failure.Error)
			}
			done += int64(min(s.Position.Seq, last.Seq))
			all = all && !s.Position.Less(last)
		}
		total := int64(last.Seq) * int64(len(st))
		p := projections.Progress{State: projections.StateRebuilding, Done: done, Total: total}
		if secs := time.Since(began).Seconds(); secs > 0 {
			p.EventsPerSecond = float64(done) / secs
			if p.EventsPerSecond > 0 {
				p.ETA = time.Duration(float64(total-done) / p.EventsPerSecond * float64(time.Second))
			}
		}
		bar.draw(projections.FormatProgress(p, 30))
		if all {
			bar.end(fmt.Sprintf("read models as of %s are in %s", opt.To, opt.Into))
			return res, nil
		}
		select {
		case <-ctx.Done():
			bar.end("")
			return res, fmt.Errorf("replay: %w", ctx.Err())
		case <-committed:
		case <-time.After(interval):
		}
	}
}

// copyPrefix appends to dst, in log order, every event of src that is at or
// before to, each stream cut at its first event past to. It returns dst's
// position of the last event and the number of events.
func copyPrefix(ctx context.Context, src, dst eventstore.Store, to Moment) (eventstore.Position, int, error) {
	head, err := src.Head(ctx)
	if err != nil {
		return eventstore.Start, 0, fmt.Errorf("read the head of the log: %w", err)
	}
	a := appender{store: dst}
	cut := map[string]bool{}
	for after := eventstore.Start; after.Less(head); {
		page, err := src.ReadAll(ctx, after, eventstore.Filter{}, readPage)
		if err != nil {
			return a.result.Last, a.result.Events, fmt.Errorf("read the log after %s: %w", after, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if head.Less(e.Position) || cut[e.Stream] {
				continue
			}
			if !to.includes(e) {
				cut[e.Stream] = true
				continue
			}
			if err := a.add(ctx, LineOf(e)); err != nil {
				return a.result.Last, a.result.Events, err
			}
		}
		after = page[len(page)-1].Position
	}
	err = a.flush(ctx)
	return a.result.Last, a.result.Events, err
}

// progressBar draws a progress line on a terminal (in place) or in a log.
type progressBar struct {
	w    io.Writer
	tty  bool
	last string
	open bool
}

func (b *progressBar) start(title string) {
	fmt.Fprintln(b.w, title)
	b.open = false
}

func (b *progressBar) draw(line string) {
	if line == b.last {
		return
	}
	b.last = line
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		b.open = true
		return
	}
	fmt.Fprintln(b.w, line)
}

func (b *progressBar) end(msg string) {
	if b.open {
		fmt.Fprintln(b.w)
		b.open = false
	}
	b.last = ""
	if msg != "" {
		fmt.Fprintln(b.w, msg)
	}
}

// IsTerminal reports whether f is a terminal (a character device), for
// ReplayOptions.TTY.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
