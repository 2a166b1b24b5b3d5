package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

func TestHistoryCursorRoundTrip(t *testing.T) {
	c := HistoryCursor{FinishedAt: time.Date(2026, 11, 29, 14, 0, 1, 123456000, time.UTC), TaskID: "t-42"}
	got, err := DecodeHistoryCursor(EncodeHistoryCursor(c))
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "%%%", "aDF8eHx5", EncodeHistoryCursor(HistoryCursor{c.FinishedAt, "bad id"}), strings.Repeat("a", 600)} {
		if _, err := DecodeHistoryCursor(bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("cursor %q: %v, want a validation error", bad, err)
		}
	}
}

func TestHistoryCSV(t *testing.T) {
	start := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
	dur, eff := int64(3000), 1.25
	p := HistoryPage{Entries: []HistoryEntry{{
		TaskID: "t1", Type: "chop-wood", Outcome: "completed", Count: 1, RepetitionsDone: 1,
		EnqueuedAt: start, StartedAt: &start, FinishedAt: start.Add(3 * time.Second), DurationMs: &dur, XP: 10,
		ItemsGranted: map[string]int64{"oak-logs": 1, "logs": 2}, Efficiency: &eff,
	}, {TaskID: "t2", Type: "saw-planks", Outcome: "failed", Reason: "missing logs, needs 2", EnqueuedAt: start, FinishedAt: start}}}
	var b bytes.Buffer
	if err := p.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := "taskId,type,outcome,reason,count,repetitionsDone,enqueuedAt,startedAt,finishedAt,durationMs,xp,itemsGranted,itemsConsumed,efficiency\n" +
		"t1,chop-wood,completed,,1,1,2026-11-29T14:00:00Z,2026-11-29T14:00:00Z,2026-11-29T14:00:03Z,3000,10,logs:2;oak-logs:1,,1.25\n" +
		"t2,saw-planks,failed,\"missing logs, needs 2\",0,0,2026-11-29T14:00:00Z,,2026-11-29T14:00:00Z,,0,,,\n"
	if b.String() != want {
		t.Fatalf("csv:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Bad input is refused before any read.
func TestAnalyticsValidation(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	h := NewAnalyticsHandler(nil, func() time.Time { return now })
	for _, c := range []struct {
		q     Analytics
		field string
	}{
		{Analytics{Report: ReportTaskDaily, From: now, To: now.Add(-time.Hour)}, "from"},
		{Analytics{Report: ReportTaskDaily, From: now.AddDate(-2, 0, 0), To: now}, "to"},
		{Analytics{Report: ReportTaskDaily, TaskType: "Bad Type"}, "taskType"},
	} {
		_, err := h.Handle(context.Background(), c.q)
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("%+v: %v, want a validation error on %s", c.q, err, c.field)
		}
	}
	if _, err := h.Handle(context.Background(), Analytics{Report: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown report: %v", err)
	}
}

// A report without rows still carries its (empty) row list, and only its
// own: a client reads report.taskDays without checking it is there.
func TestAnalyticsReportAlwaysHasItsRows(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for report, want := range map[string]string{
		ReportTaskDaily:           `{"report":"task-daily","from":"2026-12-06T00:00:00Z","to":"2026-12-06T00:00:00Z","taskDays":[]}`,
		ReportGrantsDaily:         `{"report":"grants-daily","from":"2026-12-06T00:00:00Z","to":"2026-12-06T00:00:00Z","grantDays":[]}`,
		ReportActivePlayersHourly: `{"report":"active-players-hourly","from":"2026-12-06T00:00:00Z","to":"2026-12-06T00:00:00Z","activeHours":[]}`,
	} {
		b, err := json.Marshal(AnalyticsReport{Report: report, From: &now, To: &now})
		if err != nil || string(b) != want {
			t.Errorf("%s: %s, %v; want %s", report, b, err, want)
		}
	}
	b, _ := json.Marshal(AnalyticsReport{Report: ReportQueueLengths, At: &now})
	if want := `{"report":"queue-lengths","at":"2026-12-06T00:00:00Z","queueLengths":[]}`; string(b) != want {
		t.Errorf("queue-lengths: %s; want %s", b, want)
	}
}
