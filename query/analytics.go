package query

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Analytics asks for one of the analyst reports over a time range
// (admin-only GET /api/analytics/{report}).
type Analytics struct {
	// Report is one of the Report* names.
	Report string
	// From and To bound the days (or hours) reported, [From, To). Zero
	// values mean the last DefaultAnalyticsRange up to now. Ignored by
	// ReportQueueLengths, which is the current distribution.
	From, To time.Time
	// TaskType keeps one task type (ReportTaskDaily only).
	TaskType string
}

// The analyst reports.
const (
	ReportTaskDaily           = "task-daily"            // completions, failures, cancellations, repetitions, average efficiency per task type per day
	ReportGrantsDaily         = "grants-daily"          // XP per skill and items granted per day
	ReportActivePlayersHourly = "active-players-hourly" // distinct players with an event, per hour
	ReportQueueLengths        = "queue-lengths"         // how many players have a queue of each length, now
)

// Reports lists the report names.
var Reports = []string{ReportTaskDaily, ReportGrantsDaily, ReportActivePlayersHourly, ReportQueueLengths}

const (
	DefaultAnalyticsRange = 30 * 24 * time.Hour
	MaxAnalyticsRange     = 366 * 24 * time.Hour
)

// TaskDay is one row of ReportTaskDaily.
type TaskDay struct {
	Day               string   `json:"day"` // YYYY-MM-DD, UTC
	TaskType          string   `json:"taskType"`
	Completions       int64    `json:"completions"`
	Failures          int64    `json:"failures"`
	Cancellations     int64    `json:"cancellations"`
	Repetitions       int64    `json:"repetitions"`
	AverageEfficiency *float64 `json:"averageEfficiency"` // rounded to 6 decimals
}

// GrantDay is one row of ReportGrantsDaily.
type GrantDay struct {
	Day    string `json:"day"`
	Kind   string `json:"kind"` // xp (Name is a skill) | item (Name is an item)
	Name   string `json:"name"`
	Amount int64  `json:"amount"`
}

// ActiveHour is one row of ReportActivePlayersHourly.
type ActiveHour struct {
	Hour    time.Time `json:"hour"`
	Players int64     `json:"players"`
}

// QueueLength is one row of ReportQueueLengths.
type QueueLength struct {
	Length  int   `json:"length"`
	Players int64 `json:"players"`
}

// AnalyticsReport is the answer: exactly one of the row lists is set.
type AnalyticsReport struct {
	Report string     `json:"report"`
	From   *time.Time `json:"from,omitempty"`
	To     *time.Time `json:"to,omitempty"`
	// At is when a report of the present (queue-lengths) was taken; it
	// has no From and To.
	At           *time.Time    `json:"at,omitempty"`
	TaskDays     []TaskDay     `json:"taskDays,omitempty"`
	GrantDays    []GrantDay    `json:"grantDays,omitempty"`
	ActiveHours  []ActiveHour  `json:"activeHours,omitempty"`
	QueueLengths []QueueLength `json:"queueLengths,omitempty"`
}

// MarshalJSON writes the report's own row list even when it is empty
// ("taskDays": [] for a range without completions), as docs/API.md and the
// spec promise, and none of the others; omitempty alone dropped an empty
// list, leaving a client nothing to read.
func (r AnalyticsReport) MarshalJSON() ([]byte, error) {
	type base struct {
		Report string     `json:"report"`
		From   *time.Time `json:"from,omitempty"`
		To     *time.Time `json:"to,omitempty"`
		At     *time.Time `json:"at,omitempty"`
	}
	b := base{r.Report, r.From, r.To, r.At}
	switch r.Report {
	case ReportTaskDaily:
		return json.Marshal(struct {
			base
			TaskDays []TaskDay `json:"taskDays"`
		}{b, nonNil(r.TaskDays)})
	case ReportGrantsDaily:
		return json.Marshal(struct {
			base
			GrantDays []GrantDay `json:"grantDays"`
		}{b, nonNil(r.GrantDays)})
	case ReportActivePlayersHourly:
		return json.Marshal(struct {
			base
			ActiveHours []ActiveHour `json:"activeHours"`
		}{b, nonNil(r.ActiveHours)})
	case ReportQueueLengths:
		return json.Marshal(struct {
			base
			QueueLengths []QueueLength `json:"queueLengths"`
		}{b, nonNil(r.QueueLengths)})
	}
	return json.Marshal(b)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// AnalyticsReadModel reads the analytics_* tables.
type AnalyticsReadModel interface {
	TaskDaily(ctx context.Context, from, to time.Time, taskType string) ([]TaskDay, error)
	GrantsDaily(ctx context.Context, from, to time.Time) ([]GrantDay, error)
	ActivePlayersHourly(ctx context.Context, from, to time.Time) ([]ActiveHour, error)
	QueueLengths(ctx context.Context) ([]QueueLength, error)
}

// AnalyticsHandler answers Analytics.
type AnalyticsHandler struct {
	rm  AnalyticsReadModel
	now func() time.Time
}

// NewAnalyticsHandler returns the handler; now (default time.Now) sets the
// default range.
func NewAnalyticsHandler(rm AnalyticsReadModel, now func() time.Time) *AnalyticsHandler {
	if now == nil {
		now = time.Now
	}
	return &AnalyticsHandler{rm, now}
}

func (h *AnalyticsHandler) Handle(ctx context.Context, q Analytics) (AnalyticsReport, error) {
	known := false
	for _, r := range Reports {
		known = known || r == q.Report
	}
	if !known {
		return AnalyticsReport{}, fmt.Errorf("analytics report %q: %w", truncate(q.Report), ErrNotFound)
	}
	if q.Report == ReportQueueLengths {
		return h.queueLengths(ctx, q)
	}
	from, to := q.From.UTC(), q.To.UTC()
	if to.IsZero() {
		to = h.now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-DefaultAnalyticsRange)
	}
	switch {
	case from.After(to):
		return AnalyticsReport{}, invalid("from", "must not be after to (%s > %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	case to.Sub(from) > MaxAnalyticsRange:
		return AnalyticsReport{}, invalid("to", "the range is over %d days", int(MaxAnalyticsRange.Hours()/24))
	case q.TaskType != "" && !validTypeID(q.TaskType):
		return AnalyticsReport{}, invalid("taskType", "must be a task type ID, got %q", truncate(q.TaskType))
	}
	out := AnalyticsReport{Report: q.Report, From: &from, To: &to}
	var err error
	switch q.Report {
	case ReportTaskDaily:
		out.TaskDays, err = h.rm.TaskDaily(ctx, from, to, q.TaskType)
		if out.TaskDays == nil {
			out.TaskDays = []TaskDay{}
		}
	case ReportGrantsDaily:
		out.GrantDays, err = h.rm.GrantsDaily(ctx, from, to)
		if out.GrantDays == nil {
			out.GrantDays = []GrantDay{}
		}
	case ReportActivePlayersHourly:
		out.ActiveHours, err = h.rm.ActivePlayersHourly(ctx, from, to)
		if out.ActiveHours == nil {
			out.ActiveHours = []ActiveHour{}
		}
	}
	if err != nil {
		return AnalyticsReport{}, fmt.Errorf("analytics %s: %w", q.Report, err)
	}
	return out, nil
}

// queueLengths answers ReportQueueLengths: the distribution now, so a range
// or a task type is refused rather than ignored.
func (h *AnalyticsHandler) queueLengths(ctx context.Context, q Analytics) (AnalyticsReport, error) {
	for field, set := range map[string]bool{"from": !q.From.IsZero(), "to": !q.To.IsZero(), "taskType": q.TaskType != ""} {
		if set {
			return AnalyticsReport{}, invalid(field, "does not apply to %s, which is the distribution now", ReportQueueLengths)
		}
	}
	at := h.now().UTC()
	rows, err := h.rm.QueueLengths(ctx)
	if err != nil {
		return AnalyticsReport{}, fmt.Errorf("analytics %s: %w", q.Report, err)
	}
	if rows == nil {
		rows = []QueueLength{}
	}
	return AnalyticsReport{Report: q.Report, At: &at, QueueLengths: rows}, nil
}
