package faults

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Observer is told of a component's transient failures and of its outages
// starting and ending (metrics.Registry implements it). Its methods must be
// safe for concurrent use and fast.
type Observer interface {
	// TransientError counts one transient failure of component.
	TransientError(component string, kind Kind)
	// Degraded says whether component is in an outage now.
	Degraded(component string, degraded bool)
}

// Outage tracks the transient failures of one component (a projection, the
// due loop, the relay...): it logs one line when an outage starts and one
// when it ends (with how long it lasted and how many attempts failed), not
// one per failed attempt, tells the Observer, and paces the retries with
// exponential backoff and jitter. The zero value is not usable: use
// NewOutage. Safe for concurrent use.
type Outage struct {
	component string
	log       *slog.Logger
	obs       Observer

	mu       sync.Mutex
	bo       *backoff.ExponentialBackOff
	since    time.Time // zero when not in an outage
	last     error
	attempts int
}

// OutageConfig configures an Outage.
type OutageConfig struct {
	// Component names what fails, in the log and the metrics
	// ("projection queues", "due loop", "relay"). Required.
	Component string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer may be nil.
	Observer Observer
	// Initial is the first wait, default 100 ms; Max the longest, default
	// 5 s. Each wait is randomised by ±50% so that many components do not
	// retry in step.
	Initial, Max time.Duration
}

// NewOutage returns a tracker for cfg.Component, not in an outage.
func NewOutage(cfg OutageConfig) *Outage {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Initial <= 0 {
		cfg.Initial = 100 * time.Millisecond
	}
	if cfg.Max <= 0 {
		cfg.Max = 5 * time.Second
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = cfg.Initial, cfg.Max
	bo.RandomizationFactor, bo.Multiplier = 0.5, 2
	bo.Reset()
	return &Outage{component: cfg.Component, log: cfg.Logger, obs: cfg.Observer, bo: bo}
}

// Failed records a transient failure err and returns how long to wait
// before the next attempt. The first failure of an outage is logged at
// warning level; later ones only count.
func (o *Outage) Failed(err error) time.Duration {
	kind := Classify(err)
	o.mu.Lock()
	first := o.since.IsZero()
	if first {
		o.since = time.Now()
	}
	o.last = err
	o.attempts++
	wait := o.bo.NextBackOff()
	o.mu.Unlock()
	if o.obs != nil {
		o.obs.TransientError(o.component, kind)
		if first {
			o.obs.Degraded(o.component, true)
		}
	}
	if first {
		o.log.Warn(o.component+": a dependency is unavailable; retrying until it is back", "kind", kind.String(), "err", err)
	}
	return wait
}

// Recovered ends the outage, if there is one: it logs how long it lasted
// and resets the backoff.
func (o *Outage) Recovered() {
	o.mu.Lock()
	since, attempts := o.since, o.attempts
	o.since, o.last, o.attempts = time.Time{}, nil, 0
	o.bo.Reset()
	o.mu.Unlock()
	if since.IsZero() {
		return
	}
	if o.obs != nil {
		o.obs.Degraded(o.component, false)
	}
	o.log.Info(o.component+": recovered", "after", time.Since(since).Round(time.Millisecond).String(), "failedAttempts", attempts)
}

// Component is the name the outage was made with.
func (o *Outage) Component() string { return o.component }

// Down reports whether an outage is under way, since when, and its last
// error.
func (o *Outage) Down() (since time.Time, last error, down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.since, o.last, !o.since.IsZero()
}

// Wait records err with Failed and sleeps for the backoff it returns, or
// until ctx ends; it reports whether ctx is still alive.
func (o *Outage) Wait(ctx context.Context, err error) bool {
	t := time.NewTimer(o.Failed(err))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
