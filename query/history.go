package query

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// History asks for a page of a player's finished tasks, newest first
// (GET /api/queue/{playerId}/history).
type History struct {
	PlayerID string
	// Type keeps tasks of this task type; empty keeps all.
	Type string
	// From and To keep tasks finished in [From, To); zero means unbounded.
	From, To time.Time
	// Cursor continues after the page that returned it as NextCursor.
	Cursor string
	// Limit is the page size, 1..MaxHistoryLimit; 0 means DefaultHistoryLimit.
	Limit int
}

const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// Outcome is how a task left the queue (task_history.outcome; the API's
// history entries).
type Outcome string

// The outcomes a history entry can have.
const (
	OutcomeCompleted Outcome = "completed" // every repetition done
	OutcomeFailed    Outcome = "failed"    // a repetition could not start (TaskFailed)
	OutcomeCancelled Outcome = "cancelled" // removed by the player (TaskRemoved)
)

// HistoryEntry is one finished task (a task_history row).
type HistoryEntry struct {
	TaskID          string           `json:"taskId"`
	Type            string           `json:"type"`
	Outcome         Outcome          `json:"outcome"`
	Reason          string           `json:"reason"`
	Count           int              `json:"count"`
	RepetitionsDone int              `json:"repetitionsDone"`
	EnqueuedAt      time.Time        `json:"enqueuedAt"`
	StartedAt       *time.Time       `json:"startedAt"`
	FinishedAt      time.Time        `json:"finishedAt"`
	DurationMs      *int64           `json:"durationMs"`
	XP              int64            `json:"xp"`
	ItemsGranted    map[string]int64 `json:"itemsGranted"`
	ItemsConsumed   map[string]int64 `json:"itemsConsumed"`
	Efficiency      *float64         `json:"efficiency"`
}

// HistoryPage is one page of history.
type HistoryPage struct {
	Entries []HistoryEntry `json:"entries"`
	// NextCursor fetches the next page; empty on the last page.
	NextCursor string `json:"nextCursor"`
}

// HistoryCursor is the place after which a page starts: the last entry of
// the previous page (the order is finished_at descending, then task ID
// descending).
type HistoryCursor struct {
	FinishedAt time.Time
	TaskID     string
}

// HistoryFilter is what the read model is asked.
type HistoryFilter struct {
	Player   domain.PlayerID
	Type     string
	From, To time.Time
	After    *HistoryCursor
	Limit    int
}

// HistoryReadModel reads task_history.
type HistoryReadModel interface {
	History(ctx context.Context, f HistoryFilter) ([]HistoryEntry, error)
}

// HistoryHandler answers History.
type HistoryHandler struct {
	rm     HistoryReadModel
	cutoff func() time.Time
}

func NewHistoryHandler(rm HistoryReadModel) *HistoryHandler { return &HistoryHandler{rm: rm} }

// WithCutoff makes h serve no entry that finished before cutoff() (the
// retention's, projections.Retention.Cutoff): rows past retention stay in
// the table until the next sweep, and a rebuild re-creates them for a
// while, but a read never returns them. It returns h.
func (h *HistoryHandler) WithCutoff(cutoff func() time.Time) *HistoryHandler {
	h.cutoff = cutoff
	return h
}

// Handle validates q and returns one page.
func (h *HistoryHandler) Handle(ctx context.Context, q History) (HistoryPage, error) {
	f, err := q.filter()
	if err != nil {
		return HistoryPage{}, err
	}
	if h.cutoff != nil {
		if c := h.cutoff().UTC(); f.From.Before(c) {
			f.From = c
		}
	}
	want := f.Limit
	f.Limit++ // one more tells whether a next page exists
	entries, err := h.rm.History(ctx, f)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("read history of %s: %w", f.Player, err)
	}
	page := HistoryPage{Entries: entries}
	if len(entries) > want {
		page.Entries = entries[:want]
		last := page.Entries[want-1]
		page.NextCursor = EncodeHistoryCursor(HistoryCursor{last.FinishedAt, last.TaskID})
	}
	if page.Entries == nil {
		page.Entries = []HistoryEntry{}
	}
	return page, nil
}

func (q History) filter() (HistoryFilter, error) {
	player, err := domain.ParsePlayerID(q.PlayerID)
	if err != nil {
		return HistoryFilter{}, err
	}
	f := HistoryFilter{Player: player, Type: q.Type, From: q.From.UTC(), To: q.To.UTC(), Limit: q.Limit}
	switch {
	case q.Limit == 0:
		f.Limit = DefaultHistoryLimit
	case q.Limit < 0 || q.Limit > MaxHistoryLimit:
		return HistoryFilter{}, invalid("limit", "must be between 1 and %d, got %d", MaxHistoryLimit, q.Limit)
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return HistoryFilter{}, invalid("from", "must not be after to (%s > %s)", q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))
	}
	if q.Type != "" && !validTypeID(q.Type) {
		return HistoryFilter{}, invalid("type", "must be a task type ID (1-64 of [a-z0-9-]), got %q", truncate(q.Type))
	}
	if q.Cursor != "" {
		c, err := DecodeHistoryCursor(q.Cursor)
		if err != nil {
			return HistoryFilter{}, err
		}
		f.After = &c
	}
	return f, nil
}

const cursorPrefix = "h1|"

// EncodeHistoryCursor makes an opaque cursor.
func EncodeHistoryCursor(c HistoryCursor) string {
	raw := cursorPrefix + c.FinishedAt.UTC().Format(time.RFC3339Nano) + "|" + c.TaskID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeHistoryCursor reads a cursor made by EncodeHistoryCursor, or returns
// a *domain.ValidationError on the field "cursor".
func DecodeHistoryCursor(s string) (HistoryCursor, error) {
	bad := invalid("cursor", "is not a cursor this server returned")
	if len(s) > 512 {
		return HistoryCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return HistoryCursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return HistoryCursor{}, bad
	}
	at, id, ok := strings.Cut(rest, "|")
	if !ok {
		return HistoryCursor{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return HistoryCursor{}, bad
	}
	if _, err := domain.ParseTaskID(id); err != nil {
		return HistoryCursor{}, bad
	}
	return HistoryCursor{FinishedAt: t.UTC(), TaskID: id}, nil
}

func validTypeID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// HistoryCSVHeader is the header row WriteCSV writes.
var HistoryCSVHeader = []string{"taskId", "type", "outcome", "reason", "count", "repetitionsDone", "enqueuedAt",
	"startedAt", "finishedAt", "durationMs", "xp", "itemsGranted", "itemsConsumed", "efficiency"}

// WriteCSV writes the page as CSV (Accept: text/csv): a header row, then
// one row per entry; times RFC 3339, item maps as "item:n;item:n" sorted,
// empty cells for missing values.
func (p HistoryPage) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(HistoryCSVHeader); err != nil {
		return fmt.Errorf("write history csv: %w", err)
	}
	for _, e := range p.Entries {
		started, dur, eff := "", "", ""
		if e.StartedAt != nil {
			started = e.StartedAt.UTC().Format(time.RFC3339Nano)
		}
		if e.DurationMs != nil {
			dur = strconv.FormatInt(*e.DurationMs, 10)
		}
		if e.Efficiency != nil {
			eff = strconv.FormatFloat(*e.Efficiency, 'f', -1, 64)
		}
		rec := []string{e.TaskID, e.Type, string(e.Outcome), e.Reason, strconv.Itoa(e.Count), strconv.Itoa(e.RepetitionsDone),
			e.EnqueuedAt.UTC().Format(time.RFC3339Nano), started, e.FinishedAt.UTC().Format(time.RFC3339Nano), dur,
			strconv.FormatInt(e.XP, 10), itemsCell(e.ItemsGranted), itemsCell(e.ItemsConsumed), eff}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write history csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write history csv: %w", err)
	}
	return nil
}

func itemsCell(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.FormatInt(m[k], 10)
	}
	return strings.Join(parts, ";")
}
