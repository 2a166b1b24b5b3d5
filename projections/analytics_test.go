package projections

import (
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// The analytics count each event in its UTC hour and day, whatever the
// zone of its time: an event a moment before midnight UTC and one at
// midnight fall in different days and hours, and a batch that goes back
// to a day it left counts into that day's row again.
func TestAnalyticsCountByUTCHourAndDay(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	before := time.Date(2026, 12, 8, 0, 59, 59, 999_000_000, berlin) // 23:59:59.999 UTC on the 7th
	midnight := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	a := newAnalyticsBatch()
	for _, e := range []domain.Event{
		domain.RepetitionCompleted{Type: "chop", Skill: "wood", XP: 1, CompletedAt: before},
		domain.RepetitionCompleted{Type: "chop", Skill: "wood", XP: 2, CompletedAt: midnight},
		domain.RepetitionCompleted{Type: "chop", Skill: "wood", XP: 4, CompletedAt: before.Add(-time.Hour)},
	} {
		a.add("p1", e)
	}
	wantHours := map[time.Time]int64{
		time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC): 1,
		time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC): 1,
		midnight: 1,
	}
	rows := a.hourRows()
	if len(rows) != len(wantHours) {
		t.Fatalf("hour rows %v, want %v", rows, wantHours)
	}
	for _, r := range rows {
		h := r[0].(time.Time)
		if h.Location() != time.UTC || wantHours[h] != r[2].(int64) || r[1] != "p1" {
			t.Fatalf("hour row %v, want one of %v (UTC)", r, wantHours)
		}
	}
	wantXP := map[string]int64{"2026-12-07": 5, "2026-12-08": 2}
	for _, r := range a.grantRows(false) {
		if r[1] != "xp" || wantXP[r[0].(string)] != r[3].(int64) {
			t.Fatalf("grant row %v, want XP by day %v", r, wantXP)
		}
		delete(wantXP, r[0].(string))
	}
	if len(wantXP) != 0 {
		t.Fatalf("no grant rows for the days %v", wantXP)
	}
	tasks := a.taskRows(false)
	if len(tasks) != 2 || tasks[0][0] != "2026-12-07" || tasks[0][5] != int64(2) || tasks[1][0] != "2026-12-08" || tasks[1][5] != int64(1) {
		t.Fatalf("task rows %v, want 2 repetitions on 2026-12-07 and 1 on 2026-12-08", tasks)
	}
}
