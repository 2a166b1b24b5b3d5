package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/taskqueue/taskqueue/domain"
)

func TestDefaultCatalogIsValidAndRich(t *testing.T) {
	c, err := domain.ParseCatalog(domain.DefaultCatalogJSON())
	if err != nil {
		t.Fatalf("embedded catalog: %v", err)
	}
	skills := map[domain.SkillID]bool{}
	for _, tt := range c.Tasks() {
		skills[tt.Skill] = true
		if tt.BaseDurationMs > 10_000 {
			t.Errorf("%s takes %d ms: the walkthrough wants a few seconds", tt.ID, tt.BaseDurationMs)
		}
	}
	if n := len(c.Tasks()); n < 12 {
		t.Errorf("%d task types, want at least 12", n)
	}
	if len(skills) < 4 {
		t.Errorf("%d skills used, want at least 4", len(skills))
	}
	// The chains: wood -> planks; ore + coal -> bars -> tools.
	for typ, in := range map[domain.TaskTypeID][]domain.ItemID{
		"saw-planks": {"logs"}, "smelt-iron": {"iron-ore", "coal"}, "forge-iron-sword": {"iron-bar"},
	} {
		tt, ok := c.Task(typ)
		if !ok {
			t.Fatalf("no task type %s", typ)
		}
		for _, id := range in {
			if tt.Inputs[id] <= 0 {
				t.Errorf("%s does not consume %s", typ, id)
			}
		}
	}
	if domain.DefaultCatalog() == nil {
		t.Fatal("DefaultCatalog is nil")
	}
}

func TestCatalogMarshalsAsTheAPIShowsAndReadsBack(t *testing.T) {
	c := domain.DefaultCatalog()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var shape struct {
		Skills []map[string]any `json:"skills"`
		Items  []map[string]any `json:"items"`
		Tasks  []map[string]any `json:"tasks"`
		Levels struct {
			Max        int     `json:"max"`
			XPForLevel []int64 `json:"xpForLevel"`
		} `json:"levels"`
	}
	if err := json.Unmarshal(b, &shape); err != nil {
		t.Fatal(err)
	}
	if shape.Levels.Max != 99 || len(shape.Levels.XPForLevel) != 100 || shape.Levels.XPForLevel[2] != 83 || shape.Levels.XPForLevel[3] != 174 {
		t.Fatalf("levels %+v", shape.Levels)
	}
	for _, key := range []string{"id", "name", "skill", "levelRequired", "baseDurationMs", "inputs", "outputs", "xp"} {
		if _, ok := shape.Tasks[0][key]; !ok {
			t.Errorf("task JSON lacks %q: %v", key, shape.Tasks[0])
		}
	}
	if _, err := domain.ParseCatalog(b); err != nil {
		t.Fatalf("GET /api/catalog output is not a valid catalog file: %v", err)
	}
}

func TestLevelCurve(t *testing.T) {
	for _, tc := range []struct {
		xp    int64
		level int
	}{{0, 1}, {82, 1}, {83, 2}, {173, 2}, {174, 3}, {13_034_430, 98}, {13_034_431, 99}, {1 << 40, 99}} {
		if got := domain.LevelForXP(tc.xp); got != tc.level {
			t.Errorf("LevelForXP(%d) = %d, want %d", tc.xp, got, tc.level)
		}
	}
	table := domain.Levels().XPForLevel
	for l := 3; l < len(table); l++ {
		if table[l] <= table[l-1] {
			t.Fatalf("curve not increasing at %d", l)
		}
	}
}

// badCatalogs each break one rule; the error names the bad entry.
var badCatalogs = []struct {
	name, json, mention string
}{
	{"unknown item", `{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{"gold":1},"xp":1}]}`,
		`task "a": outputs: unknown item "gold"`},
	{"unknown skill", `{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"magic","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1}]}`,
		`task "a": unknown skill "magic"`},
	{"zero duration", `{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":0,"inputs":{},"outputs":{},"xp":1}]}`,
		`task "a": baseDurationMs 0`},
	{"negative xp", `{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":-5}]}`,
		`task "a": xp -5`},
	{"duplicate task", `{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1},
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1}]}`,
		`task "a": duplicate id`},
	{"zero quantity", `{"skills":[{"id":"s","name":"S"}],"items":[{"id":"x","name":"X"}],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{"x":0},"xp":1}]}`,
		`task "a": outputs: 0 of "x"`},
	{"cycle of nothing to start from", `{"skills":[{"id":"s","name":"S"}],"items":[{"id":"x","name":"X"},{"id":"y","name":"Y"}],"tasks":[
		{"id":"make-x","name":"X","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{"y":1},"outputs":{"x":1},"xp":1},
		{"id":"make-y","name":"Y","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{"x":1},"outputs":{"y":1},"xp":1}]}`,
		`task "make-x": can never start: input "y"`},
	{"level in an untrainable skill", `{"skills":[{"id":"s","name":"S"},{"id":"t","name":"T"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1},
		{"id":"b","name":"B","skill":"t","levelRequired":5,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1}]}`,
		`task "b": can never start: needs t level 5`},
	{"unknown field", `{"skills":[],"items":[],"tasks":[],"colour":"red"}`, `unknown field "colour"`},
	{"not JSON", `{`, `parse catalog JSON`},
	{"tampered levels", `{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":1,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1}],
		"levels":{"max":10,"xpForLevel":[0]}}`, `levels: the XP curve is fixed`},
}

func TestParseCatalogNamesTheBadEntry(t *testing.T) {
	for _, tc := range badCatalogs {
		t.Run(tc.name, func(t *testing.T) {
			c, err := domain.ParseCatalog([]byte(tc.json))
			if err == nil || c != nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, domain.ErrInvalidCatalog) {
				t.Errorf("error %v does not match ErrInvalidCatalog", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestParseCatalogReportsEveryProblem(t *testing.T) {
	_, err := domain.ParseCatalog([]byte(`{"skills":[{"id":"s","name":"S"}],"items":[],"tasks":[
		{"id":"a","name":"A","skill":"s","levelRequired":0,"baseDurationMs":1,"inputs":{},"outputs":{},"xp":1},
		{"id":"b","name":"B","skill":"s","levelRequired":1,"baseDurationMs":-1,"inputs":{},"outputs":{},"xp":1}]}`))
	var ce *domain.CatalogError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `task "a"`) || !strings.Contains(err.Error(), `task "b"`) {
		t.Fatalf("error %v", err)
	}
}

func TestCatalogCopiesDoNotLeak(t *testing.T) {
	c := domain.DefaultCatalog()
	tt, _ := c.Task("saw-planks")
	tt.Inputs["logs"] = 999
	again, _ := c.Task("saw-planks")
	if again.Inputs["logs"] == 999 {
		t.Fatal("changing a returned TaskType changed the catalog")
	}
}
