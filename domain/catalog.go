package domain

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
)

//go:embed catalog.json
var defaultCatalogJSON []byte

// Skill is a catalog skill.
type Skill struct {
	ID   SkillID `json:"id"`
	Name string  `json:"name"`
}

// Item is a catalog item.
type Item struct {
	ID   ItemID `json:"id"`
	Name string `json:"name"`
}

// TaskType is a catalog task type: what one repetition takes, consumes and
// grants. A TaskType returned by a Catalog is a copy; changing it changes
// nothing else.
type TaskType struct {
	ID             TaskTypeID       `json:"id"`
	Name           string           `json:"name"`
	Skill          SkillID          `json:"skill"`
	LevelRequired  int              `json:"levelRequired"`
	BaseDurationMs int64            `json:"baseDurationMs"`
	Inputs         map[ItemID]int64 `json:"inputs"`
	Outputs        map[ItemID]int64 `json:"outputs"`
	XP             int64            `json:"xp"`
}

func (t TaskType) clone() TaskType {
	t.Inputs = maps.Clone(t.Inputs)
	t.Outputs = maps.Clone(t.Outputs)
	if t.Inputs == nil {
		t.Inputs = map[ItemID]int64{}
	}
	if t.Outputs == nil {
		t.Outputs = map[ItemID]int64{}
	}
	return t
}

// Limits a catalog entry must respect.
const (
	MaxBaseDurationMs = 24 * 60 * 60 * 1000
	MaxXPPerRep       = 1_000_000
	MaxItemsPerRep    = 1_000_000
)

// Catalog is a validated, immutable task catalog. Safe for concurrent use.
type Catalog struct {
	skills []Skill
	items  []Item
	tasks  []TaskType
	byID   map[TaskTypeID]int
}

// catalogFile is the JSON format of a catalog file (see the package doc).
type catalogFile struct {
	Skills []Skill     `json:"skills"`
	Items  []Item      `json:"items"`
	Tasks  []TaskType  `json:"tasks"`
	Levels *LevelTable `json:"levels,omitempty"`
}

var defaultCatalog = sync.OnceValues(func() (*Catalog, error) { return ParseCatalog(defaultCatalogJSON) })

// DefaultCatalog returns the catalog embedded in the binary (catalog.json
// beside this file). Its validity is checked by the package's tests.
func DefaultCatalog() *Catalog {
	c, err := defaultCatalog()
	if err != nil {
		panic("domain: the embedded catalog is invalid: " + err.Error())
	}
	return c
}

// DefaultCatalogJSON returns the embedded catalog file, for tools that
// want to start a custom one from it.
func DefaultCatalogJSON() []byte { return bytes.Clone(defaultCatalogJSON) }

// ParseCatalog reads and validates a catalog file. Unknown JSON fields are
// an error. Every problem found is reported (errors.Join of *CatalogError,
// each matching ErrInvalidCatalog), naming the bad entry.
func ParseCatalog(data []byte) (*Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f catalogFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: parse catalog JSON: %w", ErrInvalidCatalog, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: parse catalog JSON: data after the catalog object", ErrInvalidCatalog)
	}
	c, err := newCatalog(f)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func newCatalog(f catalogFile) (*Catalog, error) {
	var problems []error
	bad := func(entry, format string, args ...any) {
		problems = append(problems, &CatalogError{Entry: entry, Problem: fmt.Sprintf(format, args...)})
	}
	if f.Levels != nil {
		want := Levels()
		if f.Levels.Max != want.Max || !slices.Equal(f.Levels.XPForLevel, want.XPForLevel) {
			bad("levels", "the XP curve is fixed; leave \"levels\" out or give it exactly as GET /api/catalog shows it")
		}
	}
	if len(f.Skills) == 0 {
		bad("skills", "no skills")
	}
	if len(f.Tasks) == 0 {
		bad("tasks", "no task types")
	}
	skills := map[SkillID]bool{}
	for i, s := range f.Skills {
		entry := fmt.Sprintf("skill %d %q", i, s.ID)
		switch {
		case !validCatalogID(string(s.ID)):
			bad(entry, "id must be 1-64 characters of [a-z0-9-]")
		case skills[s.ID]:
			bad(entry, "duplicate id")
		}
		if s.Name == "" {
			bad(entry, "no name")
		}
		skills[s.ID] = true
	}
	items := map[ItemID]bool{}
	for i, it := range f.Items {
		entry := fmt.Sprintf("item %d %q", i, it.ID)
		switch {
		case !validCatalogID(string(it.ID)):
			bad(entry, "id must be 1-64 characters of [a-z0-9-]")
		case items[it.ID]:
			bad(entry, "duplicate id")
		}
		if it.Name == "" {
			bad(entry, "no name")
		}
		items[it.ID] = true
	}
	c := &Catalog{skills: f.Skills, items: f.Items, byID: map[TaskTypeID]int{}}
	for i, t := range f.Tasks {
		entry := fmt.Sprintf("task %q", t.ID)
		if !validCatalogID(string(t.ID)) {
			bad(fmt.Sprintf("task %d %q", i, t.ID), "id must be 1-64 characters of [a-z0-9-]")
		}
		if _, dup := c.byID[t.ID]; dup {
			bad(entry, "duplicate id")
		}
		if t.Name == "" {
			bad(entry, "no name")
		}
		if !skills[t.Skill] {
			bad(entry, "unknown skill %q", t.Skill)
		}
		if t.LevelRequired < 1 || t.LevelRequired > MaxLevel {
			bad(entry, "levelRequired %d is not between 1 and %d", t.LevelRequired, MaxLevel)
		}
		if t.BaseDurationMs <= 0 || t.BaseDurationMs > MaxBaseDurationMs {
			bad(entry, "baseDurationMs %d is not between 1 and %d", t.BaseDurationMs, MaxBaseDurationMs)
		}
		if t.XP <= 0 || t.XP > MaxXPPerRep {
			bad(entry, "xp %d is not between 1 and %d", t.XP, MaxXPPerRep)
		}
		for _, side := range []struct {
			name string
			m    map[ItemID]int64
		}{{"inputs", t.Inputs}, {"outputs", t.Outputs}} {
			for _, id := range sortedKeys(side.m) {
				if !items[id] {
					bad(entry, "%s: unknown item %q", side.name, id)
				}
				if n := side.m[id]; n <= 0 || n > MaxItemsPerRep {
					bad(entry, "%s: %d of %q is not between 1 and %d", side.name, n, id, MaxItemsPerRep)
				}
			}
		}
		c.byID[t.ID] = i
		c.tasks = append(c.tasks, t.clone())
	}
	if len(problems) == 0 {
		problems = append(problems, c.checkReachable()...)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return c, nil
}

// checkReachable finds task types a player starting with nothing (empty
// inventory, every skill at level 1) can never start: inputs that no
// startable task produces (a "cycle of nothing to start from"), or a level
// requirement above 1 in a skill no startable task trains.
func (c *Catalog) checkReachable() []error {
	producible := map[ItemID]bool{}
	trained := map[SkillID]bool{}
	startable := make([]bool, len(c.tasks))
	for changed := true; changed; {
		changed = false
		for i, t := range c.tasks {
			if startable[i] || (t.LevelRequired > 1 && !trained[t.Skill]) {
				continue
			}
			ok := true
			for id := range t.Inputs {
				if !producible[id] {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
			startable[i], changed = true, true
			trained[t.Skill] = true
			for id := range t.Outputs {
				producible[id] = true
			}
		}
	}
	var problems []error
	for i, t := range c.tasks {
		if startable[i] {
			continue
		}
		var why []string
		for _, id := range sortedKeys(t.Inputs) {
			if !producible[id] {
				why = append(why, fmt.Sprintf("input %q is produced by no task a new player can reach and nobody starts with it", id))
			}
		}
		if t.LevelRequired > 1 && !trained[t.Skill] {
			why = append(why, fmt.Sprintf("needs %s level %d but no reachable task trains %s", t.Skill, t.LevelRequired, t.Skill))
		}
		problems = append(problems, &CatalogError{Entry: fmt.Sprintf("task %q", t.ID), Problem: "can never start: " + joinWords(why)})
	}
	return problems
}

func joinWords(s []string) string {
	out := ""
	for i, w := range s {
		if i > 0 {
			out += "; "
		}
		out += w
	}
	return out
}

func validCatalogID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// Task returns the task type with that ID (a copy), and false when the
// catalog has none.
func (c *Catalog) Task(id TaskTypeID) (TaskType, bool) {
	i, ok := c.byID[id]
	if !ok {
		return TaskType{}, false
	}
	return c.tasks[i].clone(), true
}

// Tasks returns every task type in file order (copies).
func (c *Catalog) Tasks() []TaskType {
	out := make([]TaskType, len(c.tasks))
	for i, t := range c.tasks {
		out[i] = t.clone()
	}
	return out
}

// Skills returns every skill in file order.
func (c *Catalog) Skills() []Skill { return slices.Clone(c.skills) }

// Items returns every item in file order.
func (c *Catalog) Items() []Item { return slices.Clone(c.items) }

// MarshalJSON encodes the catalog as GET /api/catalog returns it: the file
// format plus "levels", the fixed XP curve.
func (c *Catalog) MarshalJSON() ([]byte, error) {
	levels := Levels()
	f := catalogFile{Skills: c.Skills(), Items: c.Items(), Tasks: c.Tasks(), Levels: &levels}
	if f.Skills == nil {
		f.Skills = []Skill{}
	}
	if f.Items == nil {
		f.Items = []Item{}
	}
	return json.Marshal(f)
}
