package domain

import "math"

// MaxLevel is the highest skill level; XP keeps growing past it, the level
// does not.
const MaxLevel = 99

// xpForLevel[n] is the total XP at which level n starts; [0] and [1] are 0.
// The curve is the classic idle-game one: the XP to go from level l to l+1
// is about (l + 300·2^(l/7)) / 4, so early levels come in minutes and the
// last ones take weeks. It is fixed: changing it changes every player's
// level on replay.
var xpForLevel = func() [MaxLevel + 1]int64 {
	var t [MaxLevel + 1]int64
	points := 0.0
	for level := 2; level <= MaxLevel; level++ {
		l := float64(level - 1)
		points += math.Floor(l + 300*math.Pow(2, l/7))
		t[level] = int64(math.Floor(points / 4))
	}
	return t
}()

// XPForLevel returns the total XP at which level starts (0 for levels <= 1;
// the XP of MaxLevel for higher ones).
func XPForLevel(level int) int64 {
	switch {
	case level <= 1:
		return 0
	case level > MaxLevel:
		return xpForLevel[MaxLevel]
	}
	return xpForLevel[level]
}

// LevelForXP returns the level reached with xp total XP: 1 to MaxLevel.
func LevelForXP(xp int64) int {
	level := 1
	for level < MaxLevel && xp >= xpForLevel[level+1] {
		level++
	}
	return level
}

// LevelTable is the XP curve as clients see it in the catalog
// (docs/API.md: "levels").
type LevelTable struct {
	Max        int     `json:"max"`
	XPForLevel []int64 `json:"xpForLevel"`
}

// Levels returns the fixed XP curve.
func Levels() LevelTable {
	return LevelTable{Max: MaxLevel, XPForLevel: append([]int64(nil), xpForLevel[:]...)}
}

// RepetitionDuration returns how long one repetition of a task with base
// duration base and level requirement required takes at skill level level,
// in whole milliseconds: base × (1 − min(0.5, 0.01 × (level − required))),
// rounded down, never below 1 ms. Efficiency is base / actual, rounded to
// two decimals (1.0 at the requirement, at most 2.0).
func RepetitionDuration(baseMs int64, required, level int) (durationMs int64, efficiency float64) {
	speedUp := int64(level - required)
	speedUp = max(0, min(50, speedUp))
	durationMs = max(1, baseMs*(100-speedUp)/100)
	efficiency = math.Round(float64(baseMs)/float64(durationMs)*100) / 100
	return durationMs, efficiency
}
