package domain

import (
	"strings"
)

// PlayerID identifies a player: 1–64 characters of [A-Za-z0-9_-]. Build
// one with ParsePlayerID.
type PlayerID string

// TaskID identifies one task in a queue: 1–64 characters of [A-Za-z0-9_-]
// (the command layer makes UUIDs). Unique within a queue's stream.
type TaskID string

// TaskTypeID, SkillID and ItemID name catalog entries.
type (
	TaskTypeID string
	SkillID    string
	ItemID     string
)

// StreamPrefix starts the stream ID of every queue: "queue-<playerId>".
// Renaming it orphans every stored queue.
const StreamPrefix = "queue-"

// MaxIDLength bounds player and task IDs.
const MaxIDLength = 64

// ParsePlayerID checks s and returns it as a PlayerID, or a
// *ValidationError on the field "playerId".
func ParsePlayerID(s string) (PlayerID, error) {
	if !validID(s) {
		return "", invalid("playerId", "must be 1-%d characters of [A-Za-z0-9_-], got %q", MaxIDLength, truncate(s))
	}
	return PlayerID(s), nil
}

// ParseTaskID checks s and returns it as a TaskID, or a *ValidationError
// on the field "taskId".
func ParseTaskID(s string) (TaskID, error) {
	if !validID(s) {
		return "", invalid("taskId", "must be 1-%d characters of [A-Za-z0-9_-], got %q", MaxIDLength, truncate(s))
	}
	return TaskID(s), nil
}

// Stream returns the ID of the player's queue stream.
func (p PlayerID) Stream() string { return StreamPrefix + string(p) }

// PlayerFromStream returns the player whose queue stream is stream, and
// false when stream is not a valid queue stream ID.
func PlayerFromStream(stream string) (PlayerID, bool) {
	rest, ok := strings.CutPrefix(stream, StreamPrefix)
	if !ok || !validID(rest) {
		return "", false
	}
	return PlayerID(rest), true
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
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
