package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// PlayerProgress is the "player_progress" projection: one row per player
// with XP and level per skill and the inventory.
type PlayerProgress struct{}

// PlayerProgressName is the name of the PlayerProgress projection; it keys
// its checkpoint.
const PlayerProgressName = "player_progress"

func (PlayerProgress) Name() string     { return PlayerProgressName }
func (PlayerProgress) Version() int     { return 1 }
func (PlayerProgress) Tables() []string { return []string{"player_progress"} }

// Filter reads the whole log: a stream-prefix filter makes the PostgreSQL
// store's page query much slower than reading everything, and Apply skips
// events of other streams itself.
func (PlayerProgress) Filter() eventstore.Filter { return eventstore.Filter{} }

// SkillProgress is one skill of a player.
type SkillProgress struct {
	XP    int64 `json:"xp"`
	Level int   `json:"level"`
}

type progressRow struct {
	player    string
	skills    map[string]SkillProgress
	inventory map[string]int64
	version   int64
	updatedAt time.Time
}

var progressCols = []string{"player_id", "skills", "inventory", "total_xp", "total_level", "stream_version", "updated_at"}

// Apply implements Projection.
func (PlayerProgress) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.RecordedEvent) error {
	table := t.Name("player_progress")
	players := playersOf(events)
	rows := make(map[string]*progressRow, len(players))
	for start := 0; start < len(players); start += 1000 {
		chunk := players[start:min(start+1000, len(players))]
		args := make([]any, len(chunk))
		for i, p := range chunk {
			args[i] = p
		}
		rs, err := tx.Query(ctx, Unprepared(`SELECT player_id, skills, inventory, stream_version, updated_at FROM `+table+
			` WHERE player_id IN (`+placeholders(1, len(chunk))+`)`), args...)
		if err != nil {
			return fmt.Errorf("load progress of %d players: %w", len(chunk), err)
		}
		for rs.Next() {
			r := &progressRow{}
			var skills, inv string
			var at Time
			if err := rs.Scan(&r.player, &skills, &inv, &r.version, &at); err != nil {
				rs.Close()
				return fmt.Errorf("load progress: %w", err)
			}
			r.updatedAt = at.Time
			if err := json.Unmarshal([]byte(skills), &r.skills); err != nil {
				rs.Close()
				return fmt.Errorf("load progress of %s: skills: %w", r.player, err)
			}
			if err := json.Unmarshal([]byte(inv), &r.inventory); err != nil {
				rs.Close()
				return fmt.Errorf("load progress of %s: inventory: %w", r.player, err)
			}
			rows[r.player] = r
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return fmt.Errorf("load progress: %w", err)
		}
	}
	changed := map[string]bool{}
	for i, d := range decodeEvents(ctx, events) {
		re, player, e := &events[i], d.player, d.e
		if d.err != nil {
			return d.err
		}
		if !d.ok {
			continue // not a queue stream
		}
		r := rows[player]
		if r == nil {
			r = newProgressRow(player)
			rows[player] = r
		}
		if r.applyRecorded(re, e) {
			changed[player] = true
		}
	}
	out := make([][]any, 0, len(changed))
	for _, p := range slices.Sorted(maps.Keys(changed)) {
		out = append(out, rows[p].values())
	}
	return upsert(ctx, tx, table, progressCols, progressCols[:1], excludedAll(progressCols, progressCols[:1]), out)
}

func newProgressRow(player string) *progressRow {
	return &progressRow{player: player, skills: map[string]SkillProgress{}, inventory: map[string]int64{}}
}

// applyRecorded applies the event re of the player's stream, decoded as e;
// false for an event applied before. Apply and the bulk build (bulk.go)
// both fold through it.
func (r *progressRow) applyRecorded(re *eventstore.RecordedEvent, e domain.Event) bool {
	if re.Version <= r.version {
		return false
	}
	switch e := e.(type) {
	case domain.RepetitionStarted:
		r.inventory = addItems(r.inventory, e.Consumed, -1)
	case domain.RepetitionCancelled:
		r.inventory = addItems(r.inventory, e.Refunded, 1)
	case domain.RepetitionCompleted:
		r.inventory = addItems(r.inventory, e.Granted, 1)
		if e.XP > 0 {
			s := r.skills[string(e.Skill)]
			s.XP += e.XP
			s.Level = domain.LevelForXP(s.XP)
			r.skills[string(e.Skill)] = s
		}
	}
	r.version = re.Version
	if at := e.OccurredAt().UTC(); at.After(r.updatedAt) {
		r.updatedAt = at
	}
	return true
}

// values returns the row's values in progressCols order.
func (r *progressRow) values() []any {
	var totalXP int64
	totalLevel := 0
	for _, s := range r.skills {
		totalXP += s.XP
		totalLevel += s.Level
	}
	if r.inventory == nil {
		r.inventory = map[string]int64{}
	}
	skills, _ := json.Marshal(r.skills) // plain maps: cannot fail
	inv, _ := json.Marshal(r.inventory)
	return []any{r.player, string(skills), string(inv), totalXP, totalLevel, r.version, r.updatedAt}
}
