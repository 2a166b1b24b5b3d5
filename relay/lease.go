package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections"
)

// LeaseConfig configures RunLeased.
type LeaseConfig struct {
	// DB holds the leases (table processor_leases, migration 0031).
	// Required.
	DB projections.DB
	// Name is the role the lease is for, e.g. LeaseName. Required.
	Name string
	// Owner names this instance. Required.
	Owner string
	// TTL is how long a lease holds without renewal: a killed holder's
	// role is taken over this long after its last renewal. The holder
	// renews every TTL/3. Default 10 s.
	TTL time.Duration
	// Now gives the time of the leases. Default time.Now. Instances that
	// share a lease must have clocks that agree to well within TTL.
	Now func() time.Time
	// Observer hears of the outages of the lease's database (component
	// "lease <Name>"). May be nil.
	Observer faults.Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// LeaseName is the lease of the integration-event relay: one instance
// relays at a time.
const LeaseName = "relay:integration"

func (c *LeaseConfig) setDefaults() error {
	if c.TTL <= 0 {
		c.TTL = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var errs []error
	if c.DB == nil {
		errs = append(errs, errors.New("lease: DB is required"))
	}
	if c.Name == "" || c.Owner == "" {
		errs = append(errs, errors.New("lease: Name and Owner are required"))
	}
	if c.TTL < 300*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease: TTL %s is under 300ms", c.TTL))
	}
	return errors.Join(errs...)
}

// RunLeased runs fn while this instance holds the lease cfg.Name, so that
// among the instances that call it with the same name at most one runs fn
// at a time (as long as clocks agree and a holder is not paused for longer
// than TTL): it takes the lease when it is free or expired, runs fn with a
// context that ends when the lease is lost (not renewed within TTL·2/3) or
// ctx ends, renews the lease every TTL/3 meanwhile (every TTL/12 after a
// failed renewal, until the TTL·2/3 are up), and asks again every
// TTL/3 while another instance holds it. When ctx ends it waits for fn,
// releases the lease (another instance takes it at once) and returns nil;
// it returns an error only for a bad cfg. When fn returns on its own before
// ctx ends, the lease is released and asked for again after TTL/3.
//
// Every call to the database has a deadline: a renewal must succeed
// before TTL·2/3 has passed since the last one, so a holder that cannot
// reach the database (refused, or partitioned: connections held open,
// nothing answered) stops fn before its lease expires and another instance
// may take it. The database's outages are logged once each, when they
// start and end (faults.Outage), and told to cfg.Observer.
//
// A lease is no fence: a holder that was paused past its lease may still
// act for a moment after another took over. The relay tolerates that
// (at-least-once delivery; its checkpoint is a compare-and-set).
func RunLeased(ctx context.Context, cfg LeaseConfig, fn func(ctx context.Context) error) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	log := cfg.Logger.With("component", "lease", "lease", cfg.Name, "owner", cfg.Owner)
	outage := faults.NewOutage(faults.OutageConfig{Component: "lease " + cfg.Name, Logger: log, Observer: cfg.Observer})
	every := cfg.TTL / 3
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(every):
			return true
		}
	}
	// ask takes or renews the lease within timeout, and tells the outage.
	warned := false
	ask := func(timeout time.Duration) (bool, error) {
		actx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		held, err := takeLease(actx, cfg)
		switch {
		case err == nil:
			outage.Recovered()
			warned = false
		case ctx.Err() != nil:
		case faults.Transient(err):
			outage.Failed(err)
		case !warned:
			log.Error("cannot ask for the lease; asking again", "err", err)
			warned = true
		}
		return held, err
	}
	for ctx.Err() == nil {
		held, err := ask(every)
		if err != nil || !held {
			if !wait() {
				break
			}
			continue
		}
		log.Info("lease taken: running")
		renewed := cfg.Now()
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- fn(fctx) }()
		lost := false
		next := every
	hold:
		for {
			select {
			case err := <-done:
				if ctx.Err() == nil {
					log.Warn("stopped by itself; releasing the lease", "err", err)
				}
				break hold
			case <-time.After(next):
				// The renewal must land before TTL·2/3 since the last one;
				// after a failed one it is tried again sooner.
				left := renewed.Add(2 * cfg.TTL / 3).Sub(cfg.Now())
				var held bool
				var err error
				if left > 0 {
					held, err = ask(left)
				}
				next = every
				switch {
				case left > 0 && err == nil && held:
					renewed = cfg.Now()
				case left > 0 && err == nil && !held:
					log.Warn("lease taken by another instance: stopping")
					lost = true
				case cfg.Now().Sub(renewed) >= 2*cfg.TTL/3:
					log.Warn("lease not renewed in time: stopping", "err", err)
					lost = true
				default:
					next = every / 4
				}
				if lost {
					cancel()
					<-done //nolint:errcheck // f's error: it was cancelled because the lease was lost
					break hold
				}
			}
		}
		cancel()
		if !lost {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := releaseLease(rctx, cfg); err != nil {
				log.Warn("lease not released; it expires by itself", "err", err)
			}
			rcancel()
		}
		if ctx.Err() == nil && !wait() {
			break
		}
	}
	return nil
}

// takeLease takes or renews the lease: it succeeds when the lease is free,
// expired, or already this owner's.
func takeLease(ctx context.Context, cfg LeaseConfig) (bool, error) {
	now := cfg.Now()
	held := false
	err := cfg.DB.InTx(ctx, func(tx projections.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO processor_leases (name, owner, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE processor_leases.owner = excluded.owner OR processor_leases.expires_at <= $4
			RETURNING owner`, cfg.Name, cfg.Owner, now.Add(cfg.TTL), now)
		if err != nil {
			return err
		}
		defer rows.Close()
		held = rows.Next()
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", cfg.Name, err)
	}
	return held, nil
}

// releaseLease deletes the lease if this owner holds it.
func releaseLease(ctx context.Context, cfg LeaseConfig) error {
	return cfg.DB.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM processor_leases WHERE name = $1 AND owner = $2`, cfg.Name, cfg.Owner)
		return err
	})
}

// LeaseHolder returns the owner of lease name while it is live at now, or
// "" when nobody holds it.
func LeaseHolder(ctx context.Context, db projections.Querier, name string, now time.Time) (string, error) {
	var owner string
	err := db.QueryRow(ctx, `SELECT owner FROM processor_leases WHERE name = $1 AND expires_at > $2`, name, now).Scan(&owner)
	if isNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read lease %s: %w", name, err)
	}
	return owner, nil
}
