package ops

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// ErrInvalid is wrapped by every error about an operator's bad input
// (an unknown projection, a malformed time, from after to). Nothing was
// written when it is returned.
var ErrInvalid = errors.New("invalid input")

// Moment is a point of the log: a time or a global position. The zero
// Moment is unbounded.
type Moment struct {
	// Time, when not zero, bounds by Metadata.OccurredAt.
	Time time.Time
	// Position, when HasPosition, bounds by the event's global position.
	Position    eventstore.Position
	HasPosition bool
}

// IsZero reports whether m is unbounded.
func (m Moment) IsZero() bool { return m.Time.IsZero() && !m.HasPosition }

func (m Moment) String() string {
	switch {
	case m.HasPosition:
		return "position " + m.Position.String()
	case !m.Time.IsZero():
		return m.Time.UTC().Format(time.RFC3339Nano)
	}
	return "now"
}

// includes reports whether e is at or before m (always, for the zero m).
func (m Moment) includes(e eventstore.RecordedEvent) bool {
	switch {
	case m.HasPosition:
		return e.Position.Compare(m.Position) <= 0
	case !m.Time.IsZero():
		return !e.Metadata.OccurredAt.After(m.Time)
	}
	return true
}

// timeLayouts are the forms ParseTime accepts, most precise first.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// ParseTime reads an RFC 3339 time ("2026-11-29T14:00:00Z"); without a
// zone ("2026-11-29T14:00", "2026-11-29") it is UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: time %q is not RFC 3339 (e.g. 2026-11-29T14:00:00Z or 2026-11-29)", ErrInvalid, s)
}

// ParseMoment reads a time (see ParseTime) or a global position ("42" on
// SQLite, "commit:seq" on PostgreSQL). The empty string is the zero Moment.
func ParseMoment(s string) (Moment, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Moment{}, nil
	}
	if p, err := eventstore.ParsePosition(s); err == nil {
		return Moment{Position: p, HasPosition: true}, nil
	}
	t, err := ParseTime(s)
	if err != nil {
		return Moment{}, fmt.Errorf("%w: %q is neither a time (RFC 3339, e.g. 2026-11-29T14:00:00Z) nor a position (42 or commit:seq)", ErrInvalid, s)
	}
	return Moment{Time: t}, nil
}

// Range is a half-open time range [From, To) of OccurredAt; a zero end is
// unbounded.
type Range struct {
	From, To time.Time
}

// ParseRange reads --from and --to (either may be empty) and checks that
// from is before to.
func ParseRange(from, to string) (Range, error) {
	var r Range
	var err error
	if from != "" {
		if r.From, err = ParseTime(from); err != nil {
			return Range{}, fmt.Errorf("--from: %w", err)
		}
	}
	if to != "" {
		if r.To, err = ParseTime(to); err != nil {
			return Range{}, fmt.Errorf("--to: %w", err)
		}
	}
	return r, r.Validate()
}

// Validate reports a range whose From is not before its To.
func (r Range) Validate() error {
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return fmt.Errorf("%w: --from %s is not before --to %s", ErrInvalid,
			r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	}
	return nil
}

// Contains reports whether t is in r.
func (r Range) Contains(t time.Time) bool {
	return (r.From.IsZero() || !t.Before(r.From)) && (r.To.IsZero() || t.Before(r.To))
}
