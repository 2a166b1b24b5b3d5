package projections

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/taskqueue/taskqueue/eventstore"
)

// Projection turns events of the global log into rows of its read-model
// tables. Implementations are used by one goroutine per generation at a time.
type Projection interface {
	// Name keys the projection's checkpoint rows: renaming a projection
	// orphans its checkpoint and its tables (the new name starts from
	// position 0). Lower-case letters, digits and '_'.
	Name() string
	// Version is the version of the projection's code and schema. Raising
	// it makes the runner rebuild the projection blue-green into a new
	// generation of its tables from position 0.
	Version() int
	// Tables lists the logical tables the projection owns. Each is served by
	// a view of that name over the physical table of the active generation
	// (<table>__<generation>); a migration creates generation v1.
	Tables() []string
	// Filter selects the events the projection reads.
	Filter() eventstore.Filter
	// Apply applies events, in log order, to the tables of one generation
	// (named through t) inside tx, the runner's transaction, which also
	// moves the checkpoint. Apply must not commit, must not write outside
	// tx, and must be deterministic: replaying the same events into empty
	// tables gives the same rows. An error rolls back the whole batch.
	// events may be shared with other projections: read them, never
	// modify them.
	Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.RecordedEvent) error
}

// Tables names the physical tables of one generation of a projection.
type Tables struct{ generation string }

// Name returns the physical name of the logical table in this generation.
func (t Tables) Name(table string) string { return physical(table, t.generation) }

// Generation returns the generation's name, e.g. "v1".
func (t Tables) Generation() string { return t.generation }

func physical(table, generation string) string { return table + "__" + generation }

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// ErrUnknownProjection is returned for a name no projection of the runner has.
var ErrUnknownProjection = errors.New("unknown projection")

// ErrRebuildInProgress is returned when a rebuild is requested for a
// projection that is already rebuilding.
var ErrRebuildInProgress = errors.New("rebuild already in progress")

// ErrNotFailed is returned by Skip when the projection has not failed on the
// given event.
var ErrNotFailed = errors.New("projection has not failed on that event")

func validateProjection(p Projection) error {
	var errs []error
	if !nameRE.MatchString(p.Name()) {
		errs = append(errs, fmt.Errorf("projection name %q: want ^[a-z][a-z0-9_]{0,40}$", p.Name()))
	}
	if p.Version() < 1 {
		errs = append(errs, fmt.Errorf("projection %s: version %d < 1", p.Name(), p.Version()))
	}
	if len(p.Tables()) == 0 {
		errs = append(errs, fmt.Errorf("projection %s: owns no tables", p.Name()))
	}
	for _, t := range p.Tables() {
		if !nameRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("projection %s: table name %q: want ^[a-z][a-z0-9_]{0,40}$", p.Name(), t))
		}
	}
	return errors.Join(errs...)
}
